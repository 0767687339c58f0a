"""Alarms and actions are on two topics, read together in no order across them: a new alert-service
instance replaying both must still end with what the nurses did."""

from __future__ import annotations

import asyncio

import pytest

from alerts.service import AlertService
from wardwatch.bus import open_bus
from devservices import free_port
from wardwatch.models import AlertEvent, AlertEventType

from .conftest import raised

pytestmark = pytest.mark.integration


async def test_a_replayed_raise_does_not_reopen_a_resolved_alarm(settings):
    bus = open_bus(settings)
    await bus.ensure_topics()
    alarms = [raised(f"p{i}", onset=i) for i in range(30)]
    resolves = [AlertEvent(event_id=AlertEvent.make_id(e.alert.id, AlertEventType.resolved, e.at + 1),
                           type=AlertEventType.resolved, alert=e.alert, at=e.at + 1, by="nurse-1") for e in alarms]
    producer = bus.producer()
    await producer.start()
    await producer.send_many(bus.topics.alerts, [(e.alert.patient.encode(), e.to_json()) for e in alarms])
    await producer.send_many(bus.topics.actions, [(e.alert.patient.encode(), e.to_json()) for e in resolves])
    await producer.stop()
    settings = settings.model_copy(update={"alerts_port": free_port()})
    service = AlertService(settings, bus=bus)
    ready = asyncio.Event()
    task = asyncio.create_task(service.run("127.0.0.1", settings.alerts_port, ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        for _ in range(100):
            if service.log.last_seq() >= 60:
                break
            await asyncio.sleep(0.1)
        assert service.log.last_seq() == 60
        assert service.log.open_alarms(None, set()) == []
    finally:
        service.stop.set()
        await asyncio.wait_for(task, 15)
