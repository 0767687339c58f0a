"""A monitor sends the a103l ECG and pleth as waveform chunks over Kafka: no asystole alarm, a
technical one; the same ECG with the pleth gone flat raises asystole."""

from __future__ import annotations

import json
import time

import orjson
import pytest
import wfdb

from wardwatch.bus import open_bus

from .helpers import run_worker_until_alerts

pytestmark = pytest.mark.integration


async def test_waveform_chunks_through_the_worker(settings, shared_data):
    rec = wfdb.rdrecord(str(shared_data / "wfdb" / "a103l" / "a103l"))
    w = rec.p_signal[285 * 250:301 * 250]
    t0 = int(time.time() * 1000) - 20_000
    chunk = {"kind": "waveform", "patient": "a103l", "device": "monitor-1", "fs": 250, "t0": t0,
             "ecg": w[:, 0].round(4).tolist(), "pleth": w[:, 2].round(4).tolist()}
    flat = chunk | {"patient": "flatpleth", "pleth": [0.5] * len(w)}  # sent as json.dumps spaces it: '"kind": "waveform"'
    bus = open_bus(settings)
    await bus.ensure_topics()
    events, worker = await run_worker_until_alerts(settings, bus, [
        (b"a103l", orjson.dumps(chunk)), (b"flatpleth", json.dumps(flat).encode()), (b"a103l", b'{"kind":"waveform","patient":"x"}')], 2)
    got = {(e.alert.patient, e.alert.condition, e.alert.kind.value, e.alert.priority.value) for e in events}
    assert got == {("a103l", "ecg_signal_poor", "technical", "low"), ("flatpleth", "asystole", "physiological", "high")}
    assert worker.metrics.rejected.labels("schema")._value.get() == 1
