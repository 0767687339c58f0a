"""A limits message of the wrong shape (valid JSON, from a client that is not ours) is ignored, with a
warning: it never stops the worker from processing the patient's readings, or anyone else's."""

from __future__ import annotations

import time

import orjson

from detectors.engine import DetectorEngine
from detectors.scores.news2 import News2Stage
from detectors.worker import DetectorWorker
from wardwatch.bus import MemoryBus
from wardwatch.models import Reading
from wardwatch.settings import Settings

from .helpers import columns
from .test_worker_stateful import FlakyStore


def test_limits_of_the_wrong_shape_for_a_patient_not_seen_yet_do_not_break_the_engine():
    engine = DetectorEngine(stages=[News2Stage()])
    for wrong in ({"spo2": 88}, {"disabled": ["spo2_low"]}):
        try:
            engine.set_limits("p1", wrong)
        except Exception:
            pass  # refusing it is fine; keeping it for later is not
    out = engine.process(columns(["p1"] * 20, ["spo2"] * 20, [80.0] * 20, [1_700_000_000_000 + 1000 * i for i in range(20)]))
    assert "spo2_low" in {e.alert.condition for e in out.events}  # the default limits hold


async def test_a_malformed_limits_message_is_ignored_and_every_patients_readings_are_processed():
    settings = Settings(backend="embedded", readings_partitions=1, stale_after_s=10**9)
    bus = MemoryBus(settings)
    await bus.ensure_topics()
    producer = bus.producer()
    await producer.send_many(bus.topics.limits, [(b"p1", orjson.dumps({"patient": "p1", "limits": {"spo2": 88}}))])
    store = FlakyStore()
    worker = DetectorWorker(settings, bus=bus, store=store,
                            engine_factory=lambda: DetectorEngine(stages=[News2Stage()], stale_after_ms=10**12))
    await worker.start()
    try:
        now = int(time.time() * 1000)
        items = [(p.encode(), Reading(patient=p, device=f"d-{p}", metric="spo2", unit="%", value=97.0,
                                      ts=now - 10_000).model_dump_json().encode()) for p in ("p1", "p2")]
        await producer.send_many(bus.topics.readings, items)
        for _ in range(3):
            await worker.step(timeout_ms=0)
        stored = {k[0] for k in store.points if k[0].startswith("vitals,")}
        assert stored == {"vitals,patient=p1", "vitals,patient=p2"}
        assert worker.metrics.quarantined._value.get() == 0
    finally:
        await worker.close()
