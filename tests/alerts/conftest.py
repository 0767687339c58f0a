"""An alert service running in-process against the real Kafka and InfluxDB, with tokens for each role."""

from __future__ import annotations

import asyncio
import contextlib

import orjson
import pytest
import websockets

from alerts.service import AlertService
from wardwatch.auth import TokenStore
from wardwatch.bus import open_bus
from devservices import free_port
from wardwatch.models import Alert, AlertEvent, AlertEventType, AlertKind, PatientRecord, Priority, alert_id
from wardwatch.registry import Registry


@contextlib.asynccontextmanager
async def running_ward(settings, escalate_after_s: float):
    """Two wards of patients in the registry, a running alert service, and a token per role."""
    settings = settings.model_copy(update={"escalate_after_s": escalate_after_s, "alerts_port": free_port()})
    bus = open_bus(settings)
    await bus.ensure_topics()
    registry = Registry(settings.registry_path, bus)
    await registry.admit_many([PatientRecord(patient=f"p{i}", ward="w7" if i < 3 else "w8", bed=str(i)) for i in range(6)])
    tokens = TokenStore(settings.tokens_path)
    tok = {role: tokens.create(role, f"{role}-tester")[0] for role in ("nurse", "clinician", "admin", "gateway")}
    service = AlertService(settings, bus=bus)
    ready = asyncio.Event()
    task = asyncio.create_task(service.run("127.0.0.1", settings.alerts_port, ready))
    await asyncio.wait_for(ready.wait(), 30)
    producer = bus.producer()
    await producer.start()

    class Ward:
        pass

    w = Ward()
    w.settings, w.bus, w.service, w.tokens, w.producer, w.registry = settings, bus, service, tok, producer, registry
    w.url = f"ws://127.0.0.1:{settings.alerts_port}/ws"
    w.http = f"http://127.0.0.1:{settings.alerts_port}"
    try:
        yield w
    finally:
        await producer.stop()
        service.stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 15)


@pytest.fixture
async def ward(settings):
    """A ward whose unacknowledged alarms escalate after 1.5 s (escalation tests)."""
    async with running_ward(settings, 1.5) as w:
        yield w


@pytest.fixture
async def calm_ward(settings):
    """A ward whose alarms do not escalate during a test (what a nurse sees before escalation)."""
    async with running_ward(settings, 3600) as w:
        yield w


def raised(patient: str, condition: str = "spo2_low", onset: int = 1_000, priority: Priority = Priority.high) -> AlertEvent:
    aid = alert_id(patient, condition, onset)
    alert = Alert(id=aid, patient=patient, kind=AlertKind.physiological, priority=priority, condition=condition,
                  message=f"{condition} on {patient}", values={"spo2": 86.0}, onset=onset, raised_at=onset + 15_000,
                  updated_at=onset + 15_000, latched=priority is Priority.high)
    return AlertEvent(event_id=AlertEvent.make_id(aid, AlertEventType.raised, onset + 15_000), type=AlertEventType.raised,
                      alert=alert, at=onset + 15_000)


async def send_events(w, events: list[AlertEvent]) -> None:
    await w.producer.send_many(w.bus.topics.alerts, [(e.alert.patient.encode(), e.to_json()) for e in events])


async def until(condition, timeout: float = 5.0) -> bool:
    """Whether ``condition()`` came true within ``timeout`` seconds (polled; the service folds in the background)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def connect(w, token: str | None, wards=("w7",), since=None):
    ws = await websockets.connect(w.url)
    await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
    hello = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    assert hello["type"] == "hello"
    await ws.send(orjson.dumps({"type": "subscribe", "wards": list(wards), "since": since}).decode())
    first = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    return ws, first


async def collect_events(ws, want: int, timeout: float = 10.0) -> list[dict]:
    """Event messages (from batches and replays) until ``want`` arrived or time ran out."""
    got: list[dict] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(got) < want and loop.time() < deadline:
        try:
            msg = orjson.loads(await asyncio.wait_for(ws.recv(), max(0.05, deadline - loop.time())))
        except asyncio.TimeoutError:
            break
        if msg["type"] in ("batch", "replay"):
            got.extend(msg["events"])
    return got

