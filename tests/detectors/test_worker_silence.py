"""Device silence is about readings arriving, not about the monitor's clock: a monitor whose clock is
minutes behind (or a gateway that forwards every reading a few minutes late) is not silent, and must
not raise and clear ``device_silent`` every time the worker looks."""

from __future__ import annotations

import time

from detectors.engine import DetectorEngine
from detectors.scores.news2 import News2Stage
from detectors.worker import DetectorWorker
from wardwatch.bus import MemoryBus
from wardwatch.models import AlertEvent, Reading
from wardwatch.settings import Settings

from .test_worker_poison import _all
from .test_worker_stateful import FlakyStore


async def test_a_monitor_whose_clock_is_five_minutes_behind_is_not_a_silent_device():
    settings = Settings(backend="embedded", readings_partitions=1, stale_after_s=60)
    bus = MemoryBus(settings)
    await bus.ensure_topics()
    worker = DetectorWorker(settings, bus=bus, store=FlakyStore(),
                            engine_factory=lambda: DetectorEngine(stages=[News2Stage()], stale_after_ms=60_000))
    await worker.start()
    producer = bus.producer()
    try:
        for s in range(5):  # a reading a second, each stamped by a clock 5 min behind; the worker keeps up
            now = int(time.time() * 1000)
            r = Reading(patient="p1", device="mon-1", metric="heart_rate", unit="/min", value=80.0, ts=now - 300_000)
            await producer.send_many(bus.topics.readings, [(b"p1", r.model_dump_json().encode())])
            for _ in range(2):
                await worker.step(timeout_ms=0)
        events = [AlertEvent.from_json(m.value) for msgs in (await _all(bus, bus.topics.alerts)).values() for m in msgs]
        assert [(e.alert.condition, e.type.value) for e in events] == []
    finally:
        await worker.close()


def test_a_lagging_monitor_that_stops_sending_is_silent_a_timeout_after_its_last_reading_arrived():
    from .helpers import columns

    engine = DetectorEngine(stages=[News2Stage()], stale_after_ms=60_000)
    wall = 1_700_000_000_000
    for s in range(5):
        engine.process(columns(["p1"], ["heart_rate"], [80.0], [wall + 1000 * s - 300_000]), wall + 1000 * s)
        assert engine.tick(wall + 1000 * s).events == []
    assert engine.tick(wall + 4000 + 60_000).events == []
    raised = engine.tick(wall + 4000 + 60_001).events
    assert [(e.alert.condition, e.type.value) for e in raised] == [("device_silent", "raised")]
    # its onset is on reading time (the last reading's + the timeout): a replay raises the same alert
    assert raised[0].alert.onset == wall + 4000 - 300_000 + 60_000
