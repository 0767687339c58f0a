"""Waveform chunks from a gateway whose clock is wrong are held to the time window readings are held
to: dead-lettered, never judged (a chunk from next year must not stand for the patient's newest ECG)."""

from __future__ import annotations

import time

import orjson

from detectors.engine import DetectorEngine
from detectors.scores.news2 import News2Stage
from detectors.worker import DetectorWorker
from wardwatch.bus import MemoryBus
from wardwatch.models import AlertEvent
from wardwatch.settings import Settings

from .test_engine_properties import ecg_chunk
from .test_worker_poison import _all
from .test_worker_stateful import FlakyStore


def chunk(patient: str, t0: int, beating: bool = False) -> bytes:
    return orjson.dumps({"kind": "waveform", "patient": patient, "device": "mon-1", "fs": 250, "t0": t0,
                         "ecg": ecg_chunk(beating).round(4).tolist()})


async def test_a_waveform_chunk_from_the_far_future_is_dead_lettered_and_asystole_is_still_raised():
    settings = Settings(backend="embedded", readings_partitions=1, stale_after_s=10**9)
    bus = MemoryBus(settings)
    await bus.ensure_topics()
    worker = DetectorWorker(settings, bus=bus, store=FlakyStore(),
                            engine_factory=lambda: DetectorEngine(stages=[News2Stage()], stale_after_ms=10**12))
    await worker.start()
    now = int(time.time() * 1000)
    producer = bus.producer()
    await producer.send_many(bus.topics.readings, [(b"p1", chunk("p1", now + 365 * 86_400_000)),  # a clock a year ahead
                                                   (b"p1", chunk("p1", now - 20_000))])
    for _ in range(3):
        await worker.step(timeout_ms=0)
    dead = [orjson.loads(m.value) for msgs in (await _all(bus, bus.topics.deadletter)).values() for m in msgs]
    assert [d["reason"] for d in dead] == ["future_timestamp"]
    events = [AlertEvent.from_json(m.value) for msgs in (await _all(bus, bus.topics.alerts)).values() for m in msgs]
    assert [(e.alert.condition, e.type.value) for e in events] == [("asystole", "raised")]
    assert events[0].at <= now
    await worker.close()
