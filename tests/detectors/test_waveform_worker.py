"""A monitor sends the a103l ECG and pleth as waveform chunks over Kafka: no asystole alarm, a
technical one; the same ECG with the pleth gone flat raises asystole."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
import wfdb

from detectors.worker import DetectorWorker
from wardwatch.bus import open_bus
from wardwatch.models import AlertEvent

pytestmark = pytest.mark.integration


async def test_waveform_chunks_through_the_worker(settings, shared_data):
    rec = wfdb.rdrecord(str(shared_data / "wfdb" / "a103l" / "a103l"))
    w = rec.p_signal[285 * 250:301 * 250]
    t0 = int(time.time() * 1000) - 20_000
    chunk = {"kind": "waveform", "patient": "a103l", "device": "monitor-1", "fs": 250, "t0": t0,
             "ecg": w[:, 0].round(4).tolist(), "pleth": w[:, 2].round(4).tolist()}
    flat = chunk | {"patient": "flatpleth", "pleth": [0.5] * len(w)}
    bus = open_bus(settings)
    await bus.ensure_topics()
    producer = bus.producer()
    await producer.start()
    await producer.send_many(bus.topics.readings, [(b"a103l", orjson.dumps(chunk)), (b"flatpleth", orjson.dumps(flat)),
                                                   (b"a103l", b'{"kind":"waveform","patient":"x"}')])
    await producer.stop()
    worker = DetectorWorker(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    alerts = bus.consumer(bus.topics.alerts, group_id=None)
    await alerts.start()
    events = []
    deadline = time.monotonic() + 30
    while len(events) < 2 and time.monotonic() < deadline:
        for msgs in (await alerts.getmany(timeout_ms=500)).values():
            events += [AlertEvent.from_json(m.value) for m in msgs]
    await alerts.stop()
    stop.set()
    await task
    got = {(e.alert.patient, e.alert.condition, e.alert.kind.value, e.alert.priority.value) for e in events}
    assert got == {("a103l", "ecg_signal_poor", "technical", "low"), ("flatpleth", "asystole", "physiological", "high")}
    assert worker.metrics.rejected.labels("schema")._value.get() == 1
