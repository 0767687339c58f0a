"""Kafka security against the real SASL/SCRAM broker of the dev stack: who may connect, and who may
write alarms and nurses' actions (the ACLs of wardwatch/kafka_acls.py on the default topic prefix)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import pytest
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed, TopicAuthorizationFailedError

from alerts.service import AlertService
from wardwatch.bus import open_bus
from devservices import free_port
from wardwatch.kafka import make_consumer, make_producer
from wardwatch.models import AlertEvent, AlertEventType
from wardwatch.settings import Settings
from wardwatch.topics import Topics

from ..alerts.conftest import raised

pytestmark = pytest.mark.integration

ACL_PREFIX = Settings().topic_prefix  # what start_services granted the service principals
T = Topics(ACL_PREFIX)


@pytest.fixture
def as_principal(services, tmp_path):
    """Settings of a client authenticating as one principal, on the prefix the ACLs cover."""

    def make(principal: str, **extra) -> Settings:
        return Settings(**(services.kafka.client_settings(principal) | extra), topic_prefix=ACL_PREFIX,
                        influx_url=services.influx.url, influx_token=services.influx.token,
                        influx_bucket=services.influx.bucket, data_dir=tmp_path / principal)

    return make


async def produce(settings: Settings, topic: str, events: list[AlertEvent]) -> None:
    producer = make_producer(settings, request_timeout_ms=5000)
    await producer.start()
    try:
        for e in events:
            await producer.send_and_wait(topic, e.to_json(), key=e.alert.patient.encode())
    finally:
        await producer.stop()


def resolved(alarm: AlertEvent, by: str = "forger") -> AlertEvent:
    at = alarm.at + 1000
    return AlertEvent(event_id=AlertEvent.make_id(alarm.alert.id, AlertEventType.resolved, at),
                      type=AlertEventType.resolved, alert=alarm.alert, at=at, by=by)


def patient() -> str:
    return f"sec-{uuid.uuid4().hex[:8]}"


async def test_wrong_password_is_refused_at_connect(as_principal, caplog):
    settings = as_principal("gateway", kafka_password="not-the-password")
    producer = make_producer(settings)
    with pytest.raises(KafkaConnectionError):  # aiokafka reports the broker's refusal as "unable to bootstrap"
        await producer.start()
    await producer.stop()
    assert SaslAuthenticationFailed.__name__ in caplog.text


async def test_unauthenticated_plaintext_client_cannot_connect(as_principal):
    settings = as_principal("admin", kafka_security_protocol="PLAINTEXT")
    producer = make_producer(settings, request_timeout_ms=3000)
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(producer.start(), 20)
    await producer.stop()


@pytest.mark.parametrize("principal", ["gateway", "ingest", "alerts"])
async def test_only_the_detectors_may_write_alarms(as_principal, principal):
    settings = as_principal(principal)
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(settings, T.alerts, [raised(patient())])


async def test_detector_writes_alarms(as_principal):
    settings = as_principal("detector")
    alarm = raised(patient())
    await produce(settings, T.alerts, [alarm])
    seen = await read_until(as_principal("admin"), T.alerts, alarm.event_id)
    assert seen == alarm.event_id


@pytest.mark.parametrize("principal", ["gateway", "ingest", "detector"])
async def test_only_the_alert_service_may_write_actions(as_principal, principal):
    settings = as_principal(principal)
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(settings, T.actions, [resolved(raised(patient()))])


async def read_until(settings: Settings, topic: str, event_id: str, timeout: float = 15.0) -> str | None:
    consumer = make_consumer(settings, topic)
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=200)).values():
                for m in msgs:
                    if AlertEvent.from_json(m.value).event_id == event_id:
                        return event_id
        return None
    finally:
        await consumer.stop()


async def test_forged_resolve_never_reaches_the_alert_service(as_principal):
    """The issue's attack: a `resolved` produced straight to Kafka. The alert service, running as its
    own principal, sees the detector's alarm; the gateway's forged resolve is refused on both topics,
    so the alarm stays open; the service's own record of a nurse's resolve does reach the topic."""
    settings = as_principal("alerts", alerts_port=free_port())
    service = AlertService(settings, bus=open_bus(settings))
    ready = asyncio.Event()
    task = asyncio.create_task(service.run("127.0.0.1", settings.alerts_port, ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        alarm = raised(patient())
        await produce(as_principal("detector"), T.alerts, [alarm])
        for _ in range(100):
            if service.log.alarm(alarm.alert.id):
                break
            await asyncio.sleep(0.1)
        assert service.log.alarm(alarm.alert.id), "the detector's alarm did not reach the alert service"

        forged = resolved(alarm)
        for topic in (T.actions, T.alerts):
            with pytest.raises(TopicAuthorizationFailedError):
                await produce(as_principal("gateway"), topic, [forged])
        await asyncio.sleep(1.0)
        assert alarm.alert.id in {a["id"] for a in service.log.open_alarms(None, set())}

        genuine = resolved(alarm, by="nurse-1")
        assert await service.record_action(genuine, None) is not None
        assert alarm.alert.id not in {a["id"] for a in service.log.open_alarms(None, set())}
        assert await read_until(as_principal("admin"), T.actions, genuine.event_id)

        # Its own principal is enough for storing the monitors' alarms too (the position's group).
        for _ in range(150):
            if service.monitor_history.status() == {"writes": True, "behind": 0, "ok": True}:
                break
            await asyncio.sleep(0.1)
        assert service.monitor_history.status() == {"writes": True, "behind": 0, "ok": True}
        assert service.monitor_history.failing_since is None and service.supervisor.health()[0]
    finally:
        service.stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 15)


async def test_the_pipeline_runs_on_its_service_principals(as_principal):
    """The ACLs are enough for the real code: a gateway's readings, a detector worker (consumer group,
    state, limits, vitals) and its alarm, each client on its own principal."""
    from detectors.worker import DetectorWorker
    from wardwatch.models import Reading

    who = patient()
    gateway = as_principal("gateway")
    now = int(time.time() * 1000) - 120_000
    readings = [Reading(patient=who, device=f"d-{who}", metric="spo2", value=97 if i < 20 else 84, unit="%",
                        ts=now + 1000 * i) for i in range(60)]
    producer = open_bus(gateway).producer()
    await producer.start()
    await producer.send_many(T.readings,
                             [(r.patient.encode(), r.model_dump_json().encode()) for r in readings])
    await producer.stop()
    detector = as_principal("detector", consumer_group=f"{Settings().consumer_group}-{uuid.uuid4().hex[:6]}")
    worker = DetectorWorker(detector)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        consumer = make_consumer(as_principal("alerts"), T.alerts)
        await consumer.start()
        conditions = []
        deadline = time.monotonic() + 30
        while len(conditions) < 2 and time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=300)).values():
                conditions += [e.alert.condition for e in map(AlertEvent.from_json, (m.value for m in msgs))
                               if e.alert.patient == who]
        await consumer.stop()
    finally:
        stop.set()
        await task
    assert conditions == ["spo2_critical", "spo2_low"]


def test_docker_compose_grants_what_the_plan_grants():
    """docker-compose's kafka-setup writes the ACLs out by hand (the image has no Python): keep them equal."""
    from pathlib import Path

    from wardwatch.kafka_acls import service_grants

    compose = (Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text()
    lines = {line.strip() for line in compose.splitlines() if line.strip().startswith("acl --")}
    plan = {"acl " + " ".join(g.rule_args()) for g in service_grants(Topics("wardwatch."), "wardwatch-detectors")}
    assert lines == plan


@pytest.mark.parametrize("principal,allowed", [("ingest", True), ("gateway", True), ("detector", False),
                                               ("alerts", False)])
async def test_only_ingest_and_gateways_may_write_the_monitors_alarms(as_principal, principal, allowed):
    """The device-alarms topic (IHE PCD-04 alarms): written by ingest and device gateways, read by the alert service."""
    producer = make_producer(as_principal(principal), request_timeout_ms=5000)
    await producer.start()
    try:
        send = producer.send_and_wait(T.device_alarms, b"{}", key=patient().encode())
        if allowed:
            await send
        else:
            with pytest.raises(TopicAuthorizationFailedError):
                await send
    finally:
        await producer.stop()
