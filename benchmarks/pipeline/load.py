"""Load for the pipeline benchmark: simulated gateways for N patients at 1 Hz, produced in batches.

A fixed share of patients deteriorates (SpO2 falls below 90 % and stays there for 30 s) at random
times, so every build has alarms to raise and their latency can be measured.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np

from wardwatch.codec import encode_readings
from wardwatch.columns import ReadingColumns
from wardwatch.kafka import make_producer, send_batch
from wardwatch.metrics_catalog import METRIC_INDEX, Metric
from wardwatch.models import reading_id
from wardwatch.settings import Settings

METRICS = (("heart_rate", 78.0, 6.0), ("spo2", 96.5, 1.0), ("resp_rate", 16.0, 2.0))  # in the canonical unit


class Ward:
    def __init__(self, n_patients: int, seed: int = 7, deteriorating: float = 0.02,
                 sick_window: tuple[float, float] = (5.0, 40.0)) -> None:
        self.n = n_patients
        self.rng = np.random.default_rng(seed)
        self.patients = [f"bench-{i:05d}" for i in range(n_patients)]
        self.sick = self.rng.random(n_patients) < deteriorating
        self.sick_start = self.rng.uniform(*sick_window, n_patients)  # seconds into a phase

    def records(self, idx: np.ndarray, now_ms: int, t_s: float) -> list[tuple[bytes, bytes]]:
        noise = self.rng.standard_normal((len(idx), len(METRICS)))
        ids, pids, devices, metrics, values = [], [], [], [], []
        for j, i in enumerate(idx):
            pid = self.patients[i]
            dev = f"{pid}-w"
            for k, (metric, mean, sd) in enumerate(METRICS):
                v = mean + sd * noise[j, k]
                if metric == "spo2":
                    if self.sick[i] and self.sick_start[i] <= t_s < self.sick_start[i] + 30:
                        v = 85.0 + noise[j, k]
                    v = min(v, 100.0)
                ids.append(reading_id(dev, metric, now_ms))
                pids.append(pid)
                devices.append(dev)
                metrics.append(METRIC_INDEX[Metric(metric)])
                values.append(round(float(v), 1))
        n = len(pids)
        cols = ReadingColumns(np.array(ids, dtype=object), np.array(pids, dtype=object), np.array(devices, dtype=object),
                              np.array(metrics, dtype=np.int8), np.array(values, dtype=np.float64),
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
