"""Two detector worker processes share the partitions; one is SIGKILLed mid-stream, after a background
checkpoint has committed, and restarted.

Every reading must end up in InfluxDB exactly once and the alert topic must carry exactly the
events an uninterrupted engine produces for the same readings (after dropping repeats by id).
"""

from __future__ import annotations

import asyncio
import re
import signal
import time

import numpy as np
import pytest

from detectors.engine import DetectorEngine
from wardwatch.bus import open_bus
from wardwatch.columns import ReadingColumns
from devservices import free_port
from wardwatch.models import AlertEvent, Reading
from wardwatch.lineprotocol import RAW_FIELDS
from wardwatch.store import InfluxStore, flux_string

from .helpers import spawn_worker

pytestmark = pytest.mark.integration
RAW = " or ".join(f"r._field == {flux_string(f)}" for f in RAW_FIELDS)  # a vitals point's raw values: one per reading

N_PATIENTS, SECONDS = 30, 120


def make_readings(base: int) -> list[Reading]:
    rng = np.random.default_rng(5)
    out = []
    for s in range(SECONDS):
        for p in range(N_PATIENTS):
            desat = p % 5 == 0 and 40 <= s < 80  # every fifth patient desaturates for 40 s
            for metric, unit, v in (("heart_rate", "/min", 75 + rng.normal(0, 2)),
                                    ("spo2", "%", (86 if desat else 97) + rng.normal(0, 0.5)),
                                    ("resp_rate", "/min", 16 + rng.normal(0, 1))):
                out.append(Reading(patient=f"k{p:02d}", device=f"dev-k{p:02d}", metric=metric,
                                   value=round(min(v, 100), 1), unit=unit, ts=base + 1000 * s))
    return out


async def produce(bus, readings: list[Reading]) -> None:
    producer = bus.producer()
    await producer.start()
    try:
        await producer.send_many(bus.topics.readings, [(r.patient.encode(), r.model_dump_json().encode()) for r in readings])
    finally:
        await producer.stop()


async def read_alert_topic(bus) -> dict[str, str]:
    """event_id -> its JSON; a repeated id must carry identical content."""
    consumer = bus.consumer(bus.topics.alerts, group_id=None)
    await consumer.start()
    seen: dict[str, str] = {}
    try:
        while batches := await consumer.getmany(timeout_ms=2000, max_records=10_000):
            for msgs in batches.values():
                for m in msgs:
                    e = AlertEvent.from_json(m.value)
                    assert seen.setdefault(e.event_id, e.model_dump_json()) == e.model_dump_json(), \
                        "a replayed event must be identical to the first copy"
    finally:
        await consumer.stop()
    return seen


async def total_points(store: InfluxStore, bucket: str) -> int:
    rows = await store.query(f'from(bucket: {flux_string(bucket)}) |> range(start: 0)'
                             ' |> filter(fn: (r) => r._measurement == "vitals")'
                             f' |> filter(fn: (r) => {RAW})'
                             ' |> group() |> count()')
    return int(rows[0]["_value"]) if rows else 0


async def committed_somewhere(bus, settings) -> bool:
    progress = await bus.group_progress(settings.consumer_group, bus.topics.readings)
    return any(committed for committed, _ in progress.values())


async def test_sigkilled_worker_loses_nothing_and_repeats_no_alarm(settings, tmp_path):
    bus = open_bus(settings)
    await bus.ensure_topics()
    base = int(time.time() * 1000) - 3_600_000
    readings = make_readings(base)
    expected = DetectorEngine(stale_after_ms=10**12).process(ReadingColumns.from_readings(readings)).events
    expected_ids = {e.event_id for e in expected}
    assert len(expected_ids) >= 12  # six desaturating patients raise and clear two alarms each

    ports = [free_port(), free_port()]
    a, _ = spawn_worker(settings, tmp_path, "a", ports[0])
    b, _ = spawn_worker(settings, tmp_path, "b", ports[1])
    store = InfluxStore(settings)
    try:
        third = len(readings) // 3
        await produce(bus, readings[:third])
        deadline = time.monotonic() + 60
        while await total_points(store, settings.influx_bucket) < third // 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
        # After a background checkpoint (state and offsets committed behind the loop), mid-stream.
        while not await committed_somewhere(bus, settings) and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
        assert await committed_somewhere(bus, settings), "a background checkpoint committed offsets"
        a.send_signal(signal.SIGKILL)  # no chance to flush or commit what came after
        a.wait(10)
        await produce(bus, readings[third:2 * third])
        a, _ = spawn_worker(settings, tmp_path, "a2", ports[0])
        await produce(bus, readings[2 * third:])
        deadline = time.monotonic() + 120
        while await total_points(store, settings.influx_bucket) < len(readings) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert await total_points(store, settings.influx_bucket) == len(readings)
        # Read the whole alerts topic, again until the workers have published their last alarms.
        seen: dict[str, str] = {}
        deadline = time.monotonic() + 30
        while set(seen) != expected_ids and time.monotonic() < deadline:
            seen = await read_alert_topic(bus)
        assert set(seen) == expected_ids, "no alarm lost, none invented"
        alerts_in_db = await store.query(f'from(bucket: {flux_string(settings.influx_bucket)}) |> range(start: 0)'
                                         ' |> filter(fn: (r) => r._measurement == "alerts" and r._field == "alert_id")'
                                         ' |> group() |> count()')
        assert int(alerts_in_db[0]["_value"]) == len(expected_ids)
        logs = "".join((tmp_path / f"{n}.log").read_text() for n in ("b", "a2"))
        assert re.search(r"restored state of [1-9]\d* patients", logs), "the takeover loaded the checkpointed state"
    finally:
        store.close()
        for p in (a, b):
            if p.poll() is None:
                p.terminate()
                p.wait(20)
