"""A record the engine cannot process is set aside, never the worker: the rest of its batch is
processed, the record is on the dead-letter topic with the error, and a technical alarm and a red
health check say so."""

from __future__ import annotations

import time

import orjson

from detectors.scores.news2 import News2Stage
from detectors.engine import DetectorEngine
from detectors.worker import DetectorWorker
from wardwatch.bus import MemoryBus
from wardwatch.models import AlertEvent, Reading
from wardwatch.settings import Settings

from .test_worker_stateful import FlakyStore

POISON = 66.6


class BrittleEngine(DetectorEngine):
    """An engine with a bug that one value triggers, half-way through changing its state."""

    def process(self, cols, now_ms=None):
        out = super().process(cols, now_ms)
        if (cols.value == POISON).any():
            raise FloatingPointError("a bug this reading triggers")
        return out


async def test_a_poison_record_goes_to_the_dead_letter_topic_and_the_rest_is_processed():
    settings = Settings(backend="embedded", readings_partitions=3, stale_after_s=10**9)
    bus = MemoryBus(settings)
    await bus.ensure_topics()
    store = FlakyStore()
    worker = DetectorWorker(settings, bus=bus, store=store,
                            engine_factory=lambda: BrittleEngine(stages=[News2Stage()], stale_after_ms=10**12))
    await worker.start()
    t0 = int(time.time() * 1000) - 600_000
    readings = [Reading(patient=f"p{i % 5}", device=f"d{i % 5}", metric="heart_rate", unit="/min",
                        value=POISON if i == 37 else 70.0 + i % 3, ts=t0 + 1000 * (i // 5)) for i in range(100)]
    producer = bus.producer()
    await producer.send_many(bus.topics.readings, [(r.patient.encode(), r.model_dump_json().encode()) for r in readings])
    for _ in range(5):  # the batch raises, the worker rewinds, the replay is split around the culprit
        await worker.step(timeout_ms=0)
    worker._last_commit = 0.0
    await worker.step(timeout_ms=0)

    stored = {k for k in store.points if k[0].startswith("vitals,")}
    assert len(stored) == 99, "every other reading of the batch is stored"
    dead = [orjson.loads(m.value) for msgs in (await _all(bus, bus.topics.deadletter)).values() for m in msgs]
    assert [d["reason"] for d in dead] == ["processing_error"]
    assert orjson.loads(dead[0]["payload"])["value"] == POISON and "FloatingPointError" in dead[0]["detail"]
    events = [AlertEvent.from_json(m.value) for msgs in (await _all(bus, bus.topics.alerts)).values() for m in msgs]
    technical = [e for e in events if e.alert.condition == "processing_error"]
    assert [e.alert.patient for e in technical] == [readings[37].patient]
    ok, doc = worker.health()
    assert not ok and doc["quarantined_recently"]
    # Later batches are processed on the fast path again.
    assert worker._suspect == {}
    await worker.close()


async def _all(bus, topic):
    reader = bus.consumer(topic, group_id=None)
    await reader.start()
    got = await reader.getmany(timeout_ms=0, max_records=100_000)
    await reader.stop()
    return got
