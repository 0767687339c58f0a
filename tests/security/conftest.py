"""The alert service and the ingest app against the real Kafka and InfluxDB, with every kind of caller.

One stack per module (starting it per case would dominate the table's hundreds of cases): wards w7
(p0-p2) and w8 (p3-p5), an open alarm on each ward, and a caller per role, ward-scoped (w7) and
not, plus no token, a forged one and a revoked one. Escalation is slow here so that an alarm of
another ward stays another ward's for the whole table.

The ingest fixture runs the ingest behind real uvicorn (the connection limits live there) with short
timeouts and a small token cache, so that the limits show within a test's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass

import httpx
import orjson
import pytest
import websockets
import uvicorn

from ingest import httpserver
from tests.ingest.conftest import drain  # noqa: F401  (the dead-letter reader, for the ingest tests)

from alerts.service import AlertService
from ingest.server import create_app
from wardwatch.auth import Role, TokenStore
from wardwatch.bus import open_bus
from devservices import free_port
from wardwatch.models import PatientRecord
from wardwatch.registry import Registry
from wardwatch.settings import Settings

from ..alerts.conftest import raised, send_events, ward  # noqa: F401  (ward: the fixture, for tests that need escalation)


@dataclass(frozen=True)
class Caller:
    label: str
    token: str | None
    role: Role | None = None  # None: no valid token
    wards: tuple[str, ...] = ()


def callers(tokens: TokenStore) -> list[Caller]:
    out = [Caller("no token", None), Caller("forged token", "ww_nurse_0000_forged")]
    revoked, principal = tokens.create(Role.admin, "revoked-admin")
    tokens.revoke(principal.token_id)  # before any use, so no cache anywhere has it as valid
    out.append(Caller("revoked token", revoked))
    for role in Role:
        for wards in ((), ("w7",)):
            label = f"{role.value}{' w7' if wards else ''}"
            out.append(Caller(label, tokens.create(role, label, wards)[0], role, wards))
    return out


def stack_settings(services, tmp_path, **extra) -> Settings:
    tag = uuid.uuid4().hex[:8]
    services.influx.create_database(f"ww_{tag}")
    return Settings(backend="kafka", **services.kafka.client_settings("admin"), topic_prefix=f"t{tag}.",
                    influx_url=services.influx.url, influx_token=services.influx.token,
                    influx_bucket=f"ww_{tag}/autogen", data_dir=tmp_path / "data", readings_partitions=3,
                    consumer_group=f"g{tag}", alerts_port=free_port(), **extra)


class Stack:
    settings: Settings
    service: AlertService
    callers: list[Caller]
    alarms: dict[str, str]  # ward -> alert id of an open alarm there
    ingest: httpx.AsyncClient
    url: str
    http: str


@pytest.fixture(scope="module")
async def stack(services, tmp_path_factory):
    s = Stack()
    s.settings = stack_settings(services, tmp_path_factory.mktemp("security"), escalate_after_s=3600)
    bus = open_bus(s.settings)
    await bus.ensure_topics()
    registry = Registry(s.settings.registry_path, bus)
    await registry.admit_many([PatientRecord(patient=f"p{i}", ward="w7" if i < 3 else "w8", bed=str(i),
                                             devices=[f"mon-{i}"]) for i in range(6)]
                              + [PatientRecord(patient="p9", ward="w9", bed="9")])
    s.callers = callers(TokenStore(s.settings.tokens_path))
    s.service = AlertService(s.settings, bus=bus)
    ready = asyncio.Event()
    task = asyncio.create_task(s.service.run("127.0.0.1", s.settings.alerts_port, ready))
    await asyncio.wait_for(ready.wait(), 30)
    s.url, s.http = f"ws://127.0.0.1:{s.settings.alerts_port}/ws", f"http://127.0.0.1:{s.settings.alerts_port}"
    # A detector worker's health and metrics server (the worker loop itself is not needed for them).
    from detectors.worker import DetectorWorker

    detect_port = free_port()
    detect_server = await DetectorWorker(s.settings, bus=bus).serve_health("127.0.0.1", detect_port)
    s.detect_http = f"http://127.0.0.1:{detect_port}"
    producer = bus.producer()
    await producer.start()
    s.bus, s.producer = bus, producer
    events = {"w7": raised("p1"), "w8": raised("p4")}
    await send_events(s, list(events.values()))
    await until(lambda: all(s.service.log.alarm(e.alert.id) for e in events.values()))
    s.alarms = {w: e.alert.id for w, e in events.items()}
    app = create_app(s.settings, bus)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as client:
            s.ingest = client
            yield s
    await producer.stop()
    await detect_server.wait_closed()
    s.service.stop.set()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 15)


async def until(condition, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def authed(url: str, token: str | None):
    """A socket after auth: (socket, None), or (None, close code) when the service refused it."""
    ws = await websockets.connect(url)
    await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
    try:
        hello = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    except websockets.ConnectionClosed as exc:
        return None, exc.rcvd.code
    assert hello["type"] == "hello"
    return ws, None


async def answer(ws, msg: dict, timeout: float = 5.0) -> dict:
    """The reply to ``msg``: its error or its own reply, else the pong of a ping sent after it (the
    socket handles messages in order, so whatever ``msg`` answers arrives before that pong)."""
    await ws.send(orjson.dumps(msg).decode())
    if msg["type"] != "ping":
        await ws.send(orjson.dumps({"type": "ping"}).decode())
    first = None
    while True:
        reply = orjson.loads(await asyncio.wait_for(ws.recv(), timeout))
        if reply["type"] == "pong":
            return first or reply
        if reply["type"] not in ("batch", "heartbeat", "monitoring") and first is None:  # feed, not replies
            first = reply


HEADER_TIMEOUT_S, BODY_TIMEOUT_S, TOKEN_CACHE = 2.0, 3.0, 256


@pytest.fixture
async def ingest(settings):
    settings = settings.model_copy(update={"ingest_header_timeout_s": HEADER_TIMEOUT_S, "ingest_body_timeout_s": BODY_TIMEOUT_S,
                                           "token_cache_size": TOKEN_CACHE, "enforce_registry": False,
                                           "ingest_max_backlog": 1_000_000})
    bus = open_bus(settings)
    await bus.ensure_topics()
    token = TokenStore(settings.tokens_path).create("gateway")[0]
    app = create_app(settings, bus)
    port = free_port()
    server = uvicorn.Server(httpserver.config(app, settings, "127.0.0.1", port))
    task = asyncio.create_task(server.serve())
    for _ in range(300):
        if server.started:
            break
        await asyncio.sleep(0.1)
    assert server.started, "uvicorn did not start"

    class Ingest:
        pass

    g = Ingest()
    g.settings, g.bus, g.app, g.token, g.port = settings, bus, app, token, port
    g.url = f"http://127.0.0.1:{port}"
    g.auth = {"Authorization": f"Bearer {token}"}
    yield g
    server.should_exit = True
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 20)
