"""Load for the pipeline benchmark: simulated gateways for N patients at 1 Hz, produced in batches.

The patients are :class:`ingest.sources.synthetic.SyntheticWard`'s. A fixed share of them
deteriorates (SpO2 falls below 90 % and stays there for 30 s) at random times, so every build has
alarms to raise and their latency can be measured.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np

from ingest.sources.synthetic import NAMES, SyntheticWard
from wardwatch.codec import encode_readings
from wardwatch.columns import ReadingColumns
from wardwatch.kafka import make_producer, send_batch
from wardwatch.metrics_catalog import METRIC_INDEX, Metric
from wardwatch.models import reading_id
from wardwatch.settings import Settings

METRICS = (("heart_rate", "/min"), ("spo2", "%"), ("resp_rate", "/min"))  # SyntheticWard's vitals, in order
assert [m for m, _ in METRICS] == NAMES


class Ward:
    """The ward of ``ingest.sources.synthetic`` as the pipeline's load: clean readings (no artefacts),
    and a share of patients whose SpO2 drops to about 85 % at once for 30 s at a time drawn from
    ``sick_window`` (seconds into a phase), sent as gateways' JSON, any subset of patients at a time."""

    def __init__(self, n_patients: int, seed: int = 7, deteriorating: float = 0.02,
                 sick_window: tuple[float, float] = (5.0, 40.0)) -> None:
        self.ward = SyntheticWard(n_patients, seed=seed, deteriorating=deteriorating, prefix="bench",
                                  sick_window=sick_window, ramp_s=0, drift=(0.0, -11.5, 0.0), episode_s=30.0,
                                  artefacts=False)
        self.n = n_patients
        self.patients = self.ward.patients.tolist()

    def records(self, idx: np.ndarray, now_ms: int, t_s: float) -> list[tuple[bytes, bytes]]:
        values = np.round(self.ward.vitals(t_s, idx), 1)
        ids, pids, devices, metrics, flat = [], [], [], [], []
        for j, i in enumerate(idx):
            pid = self.patients[i]
            dev = f"{pid}-w"
            for k, (metric, _) in enumerate(METRICS):
                ids.append(reading_id(dev, metric, now_ms))
                pids.append(pid)
                devices.append(dev)
                metrics.append(METRIC_INDEX[Metric(metric)])
                flat.append(float(values[j, k]))
        n = len(pids)
        cols = ReadingColumns(np.array(ids, dtype=object), np.array(pids, dtype=object), np.array(devices, dtype=object),
                              np.array(metrics, dtype=np.int8), np.array(flat, dtype=np.float64),
                              np.full(n, now_ms, dtype=np.int64), np.full(n, now_ms, dtype=np.int64),
                              np.full(n, np.nan, dtype=np.float32))
        return encode_readings(cols, received=now_ms)


async def produce_live(settings: Settings, topic: str, ward: Ward, seconds: float, ticks_per_s: int = 10) -> int:
    """Every patient once a second, spread over ``ticks_per_s`` sends; timestamps are wall-clock."""
    producer = make_producer(settings)
    await producer.start()
    parts = sorted(await producer.partitions_for(topic))
    sent = 0
    start = time.monotonic()
    groups = np.array_split(np.arange(ward.n), ticks_per_s)
    tick = 0
    try:
        while (elapsed := time.monotonic() - start) < seconds:
            idx = groups[tick % ticks_per_s]
            now_ms = int(time.time() * 1000)
            sent += await send_batch(producer, topic, ward.records(idx, now_ms, elapsed), parts)
            tick += 1
            await asyncio.sleep(max(0.0, start + tick / ticks_per_s - time.monotonic()))
    finally:
        await producer.stop()
    return sent


async def prefill(settings: Settings, topic: str, ward: Ward, seconds_of_data: int) -> int:
    """``seconds_of_data`` seconds of the ward's readings, produced as fast as possible (for capacity)."""
    producer = make_producer(settings)
    await producer.start()
    parts = sorted(await producer.partitions_for(topic))
    base = int(time.time() * 1000) - seconds_of_data * 1000
    sent = 0
    try:
        for s in range(seconds_of_data):
            sent += await send_batch(producer, topic, ward.records(np.arange(ward.n), base + 1000 * s, float(s)), parts)
    finally:
        await producer.stop()
    return sent
