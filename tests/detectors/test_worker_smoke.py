import time

import pytest

from wardwatch.bus import open_bus
from wardwatch.models import Reading
from wardwatch.store import InfluxStore

from .helpers import run_worker_until_alerts

pytestmark = pytest.mark.integration


async def test_worker_stores_readings_and_publishes_an_alarm(settings):
    bus = open_bus(settings)
    await bus.ensure_topics()
    now = int(time.time() * 1000) - 120_000
    readings = [Reading(patient="p1", device="d1", metric="spo2", value=97 if i < 20 else 84, unit="%", ts=now + 1000 * i)
                for i in range(60)]
    items = [(r.patient.encode(), r.model_dump_json().encode()) for r in readings] + [(b"p1", b"{not json")]
    events, worker = await run_worker_until_alerts(settings, bus, items, 2)
    # SpO2 84 % is below both limits: the critical one (5 s delay) alarms first, then the 90 % one (15 s).
    assert [(e.type.value, e.alert.condition) for e in events] == [("raised", "spo2_critical"), ("raised", "spo2_low")]
    assert events[0].alert.priority.value == "high" and events[0].alert.message == "SpO₂ critically low: 84% for 5 s (alarm limit 85%)"
    store = InfluxStore(settings)
    rows = await store.query_series("vitals", "p1", now - 1, now + 120_000, fields=["spo2"])
    store.close()
    assert len(rows) == 60
    assert worker.metrics.rejected.labels("malformed_json")._value.get() == 1
