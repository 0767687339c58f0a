"""Withdrawals on the readings topic as any Kafka client may write them (compact or spaced JSON):
the worker stores each in InfluxDB, and a malformed one, one with a time out of the accepted
window or a reason that would break its line goes to the dead-letter topic with its reason,
without stalling the store lane or the readings beside them."""

from __future__ import annotations

import asyncio
import json
import time

import orjson
import pytest

from detectors.worker import DetectorWorker
from wardwatch.bus import open_bus
from wardwatch.models import Reading, RejectedInput
from wardwatch.store import InfluxStore

from ..ingest.conftest import drain

pytestmark = pytest.mark.integration


async def test_withdrawals_are_stored_and_a_malformed_one_is_kept_with_its_reason(settings):
    bus = open_bus(settings)
    await bus.ensure_topics()
    t = int(time.time() * 1000) - 30_000
    readings = [Reading(patient="p1", device="mon-1", metric="spo2", value=v, unit="%", ts=t + 1000 * i)
                for i, v in enumerate((96.0, 70.0, 97.0))]
    ours = {"kind": "retraction", "patient": "p1", "device": "mon-1", "metric": "spo2", "ts": t + 1000,
            "reason": "HL7 OBX-11 W"}
    theirs = ours | {"metric": "heart_rate", "reason": "vendor gateway"}  # json.dumps spaces it: '"kind": "retraction"'
    broken = {"kind": "retraction", "patient": "p1", "metric": "spo2"}  # no device, no time
    # Neither may stall the store lane: a time InfluxDB cannot hold, a reason that would end the line.
    far = ours | {"ts": 10**16}
    newline = ours | {"reason": "wrong\nvitals,patient=p1 spo2=0 0"}
    producer = bus.producer()
    await producer.start()
    await producer.send_many(bus.topics.readings, [(b"p1", r.model_dump_json().encode()) for r in readings]
                             + [(b"p1", orjson.dumps(ours)), (b"p1", json.dumps(theirs).encode()),
                                (b"p1", orjson.dumps(broken)), (b"p1", orjson.dumps(far)),
                                (b"p1", orjson.dumps(newline))])
    await producer.stop()

    store = InfluxStore(settings)
    worker = DetectorWorker(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        deadline = time.monotonic() + 60
        while len(rows := await store.query_series("retractions", "p1", t - 1, t + 10_000)) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
    finally:
        stop.set()
        await task
    assert sorted((r["field"], r["time"], r["value"]) for r in rows) == [
        ("heart_rate", t + 1000, "vendor gateway"), ("spo2", t + 1000, "HL7 OBX-11 W")]
    spo2 = [(r["time"], r["value"]) for r in await store.query_series("vitals", "p1", t - 1, t + 10_000, fields=["spo2"])]
    assert spo2 == [(t, 96.0), (t + 1000, 70.0), (t + 2000, 97.0)]  # stored as sent; the history leaves 70 out
    dead = [RejectedInput.model_validate_json(m.value) for m in await drain(bus, bus.topics.deadletter, 3)]
    assert sorted((d.reason, d.detail.split(":")[0]) for d in dead) == [
        ("future_timestamp", "retraction"), ("schema", "retraction"), ("schema", "retraction")]
    store.close()
