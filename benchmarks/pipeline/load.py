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
from wardwatch.codec import RULES
from wardwatch.kafka import make_producer, send_batch
from wardwatch.metrics_catalog import METRIC_INDEX, Metric
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
        self._templates()

    def records(self, idx: np.ndarray, now_ms: int, t_s: float) -> list[tuple[bytes, bytes]]:
        """The readings of patients ``idx`` at ``now_ms``, as the gateway client writes them
        (``encode_readings(..., checked=True)``'s template: ``test_naive_rules`` checks they are the
        same bytes). In a hospital the gateways run on machines of their own; here they share the two
        cores with every build, so they are written straight from per-patient templates: a tick
        fills in only the id, the value and the times (the id is ``device:vital:time``, unique and
        stable like ``reading_id``, without its hash)."""
        values = np.round(self.ward.vitals(t_s, idx), 1).tolist()
        tail = f'"ts":{now_ms},"received":{now_ms},"quality":null}}'
        keys, heads, out = self._keys, self._heads, []
        append = out.append
        for i, row in zip(idx.tolist(), values):
            key = keys[i]
            for (head, mid, unit), v in zip(heads[i], row):
                append((key, f'{head}{now_ms}{mid}{v!r}{unit}{tail}'.encode()))
        return out

    def _templates(self) -> None:
        # Per patient and vital: the JSON up to the id's time, from there to the value, and the unit
        # (key order and spelling are encode_readings' template).
        names, units = RULES.names, RULES.units
        self._keys = [p.encode() for p in self.patients]
        self._heads = []
        for pid in self.patients:
            dev = f"{pid}-w"
            row = []
            for k, (metric, _) in enumerate(METRICS):
                m = METRIC_INDEX[Metric(metric)]
                row.append((f'{{"id":"{dev}:{k}:', f'","patient":"{pid}","device":"{dev}","metric":"{names[m]}","value":',
                            f',"unit":"{units[m]}",'))
            self._heads.append(row)


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
