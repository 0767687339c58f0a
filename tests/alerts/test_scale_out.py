"""Two alert-service instances behind nginx (deploy/nginx/wardwatch-alerts.conf), real Kafka and a
headless Chromium: the instance a nurse page and a websocket client use is killed; both go on with
the other, see every alarm raised meanwhile exactly once and keep their acknowledgements. A token
revoked on one instance's machine is refused by the other within 5 s."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
import websockets

from alerts.service import AlertService
from devservices import free_port
from wardwatch.auth import TokenStore
from wardwatch.bus import open_bus
from wardwatch.models import AlertEvent, AlertEventType, PatientRecord
from wardwatch.registry import Registry
from wardwatch.token_sync import publish_tokens

from ..detectors.helpers import worker_env
from .conftest import raised

pytestmark = [pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = ROOT / "deploy" / "nginx" / "wardwatch-alerts.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def healthz(port: int) -> dict:
    try:
        return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())
    except OSError:
        return {}


def spawn_alerts(settings, data_dir: Path) -> tuple[subprocess.Popen, int]:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(worker_env(settings, data_dir), WARDWATCH_ALERTS_PORT=str(port), WARDWATCH_ESCALATE_AFTER_S="3600")
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "alerts", "--port", str(port)], env=env, cwd=ROOT,
                            stdout=open(data_dir / "alerts.log", "ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "seq" not in healthz(port):
        assert proc.poll() is None, (data_dir / "alerts.log").read_text()[-3000:]
        time.sleep(0.2)
    return proc, port


def nginx_in_front(tmp: Path, ports: list[int]) -> tuple[subprocess.Popen, int]:
    """nginx with the shipped configuration, its upstream pointed at our instances."""
    listen = free_port()
    conf = NGINX_CONF.read_text()
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n" for p in ports)
    head, rest = conf.split("upstream wardwatch_alerts {\n", 1)
    body, tail = rest.split("}\n", 1)
    body = "".join(line + "\n" for line in body.splitlines() if not line.strip().startswith("server "))
    conf = head + "upstream wardwatch_alerts {\n" + body + servers + "}\n" + tail.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    (tmp / "logs").mkdir(parents=True, exist_ok=True)
    (tmp / "site.conf").write_text(conf)
    (tmp / "nginx.conf").write_text(
        f"daemon off;\nworker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/logs/error.log info;\n"
        f"events {{ worker_connections 1024; }}\nhttp {{\n  access_log {tmp}/logs/access.log;\n"
        f"  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;\n  include {tmp}/site.conf;\n}}\n")
    proc = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf")])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "seq" not in healthz(listen):
        time.sleep(0.1)
    assert "seq" in healthz(listen), (tmp / "logs" / "error.log").read_text()[-2000:]
    return proc, listen


class Feed:
    """A websocket client as a nurse station runs one: resumes by seq on every reconnect, tries each
    address in turn, and keeps every event it was shown."""

    def __init__(self, urls: list[str], token: str) -> None:
        self.urls, self.token = urls, token
        self.events: list[dict] = []
        self.seq: int | None = None
        self.ws = None
        self.connected_to: list[str] = []
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        attempt = 0
        while True:
            url = self.urls[min(attempt, len(self.urls) - 1)]
            attempt += 1
            try:
                async with websockets.connect(url, open_timeout=3) as ws:
                    await ws.send(orjson.dumps({"type": "auth", "token": self.token}).decode())
                    async for raw in ws:
                        msg = orjson.loads(raw)
                        if msg["type"] == "hello":
                            self.connected_to.append(url)
                            await ws.send(orjson.dumps({"type": "subscribe", "wards": ["*"], "since": self.seq}).decode())
                        elif msg["type"] == "snapshot":
                            self.seq = msg["seq"]
                            self.ws = ws
                        elif msg["type"] in ("batch", "replay"):
                            self.ws = ws
                            for e in msg["events"]:
                                if self.seq is None or e["seq"] > self.seq:
                                    self.events.append(e)
                                    self.seq = e["seq"]
            except (OSError, websockets.ConnectionClosed, asyncio.TimeoutError):
                pass
            self.ws = None
            await asyncio.sleep(0.3)

    def ids(self, type_: str) -> list[str]:
        return [e["alert"]["id"] for e in self.events if e["type"] == type_]

    async def until(self, cond, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{what} not seen within {timeout}s ({len(self.events)} events)")

    async def ack(self, alert_id: str) -> None:
        await self.until(lambda: self.ws is not None, 10, "a connection")
        await self.ws.send(orjson.dumps({"type": "ack", "alert_id": alert_id}).decode())

    async def close(self) -> None:
        self._task.cancel()


async def admitted_ward(settings) -> None:
    bus = open_bus(settings)
    await bus.ensure_topics()
    await Registry(settings.registry_path, bus).admit_many(
        [PatientRecord(patient=f"p{i}", ward="w7", bed=str(i)) for i in range(8)])


@pytest.mark.browser
async def test_killed_instance_page_and_client_go_on_with_the_other_each_alarm_once(settings, tmp_path):
    from playwright.async_api import async_playwright

    from .test_nurse_page_browser import ARGS, CHROMIUM

    if not Path(NGINX).exists():
        pytest.fail("nginx is missing: apt-get install -y nginx-light")
    await admitted_ward(settings)
    bus = open_bus(settings)
    # The token is made on instance A's machine; B knows it only from the tokens topic.
    store_a = TokenStore(tmp_path / "a" / "tokens.sqlite3")
    token, principal = store_a.create("nurse", "nurse-7")
    await publish_tokens(bus, [store_a.row(principal.token_id)])
    a, port_a = spawn_alerts(settings, tmp_path / "a")
    b, port_b = spawn_alerts(settings, tmp_path / "b")
    lb, port_lb = nginx_in_front(tmp_path / "nginx", [port_a, port_b])
    producer = bus.producer()
    await producer.start()
    feed = None
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = await (await browser.new_context(viewport={"width": 1400, "height": 900})).new_page()
            await page.goto(f"http://127.0.0.1:{port_lb}/")
            await page.fill("#token", token)
            await page.fill("#wards", "w7")
            await page.click("button[type=submit]")
            await page.wait_for_selector("[data-testid=tile][data-patient=p1]", timeout=15_000)
            # Which instance the balancer gave the page: the websocket client joins it there.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any(healthz(p).get("clients") for p in (port_a, port_b)):
                await asyncio.sleep(0.2)
            victim, victim_port = (a, port_a) if healthz(port_a).get("clients") else (b, port_b)
            feed = Feed([f"ws://127.0.0.1:{victim_port}/ws", f"ws://127.0.0.1:{port_lb}/ws"], token)

            base = int(time.time() * 1000) - 60_000
            before = [raised("p1", onset=base), raised("p2", onset=base + 1)]
            await producer.send_many(bus.topics.alerts, [(e.alert.patient.encode(), e.to_json()) for e in before])
            alarm = [f"[data-testid=alarm][data-alert-id='{e.alert.id}']" for e in before]
            for sel in alarm:
                await page.wait_for_selector(sel, timeout=10_000)
            await feed.until(lambda: set(feed.ids("raised")) == {e.alert.id for e in before}, 10, "the first alarms")
            # The page acknowledges one bed (what the nurse has seen for a moment), the client the other.
            await asyncio.sleep(2)
            await page.click("[data-testid=bed-group][data-patient=p1] [data-testid=ack-bed]")
            await feed.ack(before[1].alert.id)
            await feed.until(lambda: len(feed.ids("acknowledged")) == 2, 10, "both acknowledgements")
            await page.wait_for_selector(f"{alarm[1]}[data-state=acknowledged]", timeout=10_000)

            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            meanwhile = [raised(f"p{i}", onset=base + 10 + i) for i in range(3, 7)]
            await producer.send_many(bus.topics.alerts, [(e.alert.patient.encode(), e.to_json()) for e in meanwhile])

            want = {e.alert.id for e in before + meanwhile}
            await feed.until(lambda: set(feed.ids("raised")) == want, 45, "the alarms raised meanwhile")
            for e in meanwhile:
                await page.wait_for_selector(f"[data-testid=alarm][data-alert-id='{e.alert.id}']", timeout=30_000)
            await asyncio.sleep(2)  # a duplicate, if any, would have arrived by now
            for e in before + meanwhile:
                assert await page.locator(f"[data-testid=alarm][data-alert-id='{e.alert.id}']").count() == 1
            for sel in alarm:  # the acknowledgements made on the killed instance hold on the other
                assert await page.get_attribute(sel, "data-state") == "acknowledged"
            assert sorted(feed.ids("raised")) == sorted(want), "each alarm once on the client"
            assert sorted(feed.ids("acknowledged")) == sorted(e.alert.id for e in before)
            assert len({e["event_id"] for e in feed.events}) == len(feed.events), "no event twice"
            assert feed.connected_to[-1].endswith(f":{port_lb}/ws"), "the client went on through the balancer"
            survivor = port_b if victim is a else port_a
            assert healthz(survivor).get("clients") == 2, "page and client are both on the other instance now"
            await browser.close()
    finally:
        if feed is not None:
            await feed.close()
        await producer.stop()
        for p in (lb, a, b):
            if p.poll() is None:
                p.terminate()
                p.wait(15)


async def test_token_revoked_on_one_instance_is_refused_by_the_other_within_5s(settings, tmp_path):
    await admitted_ward(settings)
    bus = open_bus(settings)
    s_a = settings.model_copy(update={"data_dir": tmp_path / "a", "alerts_port": free_port()})
    s_b = settings.model_copy(update={"data_dir": tmp_path / "b", "alerts_port": free_port()})
    store_a = TokenStore(s_a.tokens_path)
    token, principal = store_a.create("nurse", "nurse-7")
    await publish_tokens(bus, [store_a.row(principal.token_id)])
    services = [AlertService(s, bus=open_bus(s)) for s in (s_a, s_b)]
    readies = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(svc.run("127.0.0.1", s.alerts_port, r)) for svc, s, r in zip(services, (s_a, s_b), readies)]
    try:
        for r in readies:
            await asyncio.wait_for(r.wait(), 30)
        url_b = f"ws://127.0.0.1:{s_b.alerts_port}/ws"

        async def hello(url: str):
            ws = await websockets.connect(url)
            await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
            return ws, orjson.loads(await asyncio.wait_for(ws.recv(), 5))

        deadline = time.monotonic() + 5
        while True:  # B learns of the token from the topic
            ws, first = await hello(url_b)
            if first.get("type") == "hello" or time.monotonic() > deadline:
                break
            await ws.close()
            await asyncio.sleep(0.2)
        assert first["type"] == "hello", "instance B accepts a token made on A's machine"
        await ws.send(orjson.dumps({"type": "subscribe", "wards": ["w7"]}).decode())
        await asyncio.wait_for(ws.recv(), 5)

        assert store_a.revoke(principal.token_id)  # what `wardwatch token revoke` does on A's machine
        t0 = time.monotonic()
        await publish_tokens(bus, [store_a.row(principal.token_id)])
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 5 - (time.monotonic() - t0))
        assert closed.value.rcvd.code == 4401
        assert time.monotonic() - t0 < 5.0, "B closed the revoked token's socket within 5 s"
        ws2 = await websockets.connect(url_b)
        await ws2.send(orjson.dumps({"type": "auth", "token": token}).decode())
        with pytest.raises(websockets.ConnectionClosed) as refused:
            await asyncio.wait_for(ws2.recv(), 5)
        assert refused.value.rcvd.code == 4401 and time.monotonic() - t0 < 5.0
        # And the instance where it was revoked refuses it too.
        ws3 = await websockets.connect(f"ws://127.0.0.1:{s_a.alerts_port}/ws")
        await ws3.send(orjson.dumps({"type": "auth", "token": token}).decode())
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws3.recv(), 5)
    finally:
        for svc in services:
            svc.stop.set()
        for t in tasks:
            await asyncio.wait_for(t, 15)


async def test_an_action_on_one_instance_is_seen_on_the_other_with_the_same_seq(settings, tmp_path):
    """Acknowledge on A, escalate on the owner: B's view, seq and audit trail are A's."""
    await admitted_ward(settings)
    settings = settings.model_copy(update={"escalate_after_s": 1.0})
    s_a = settings.model_copy(update={"data_dir": tmp_path / "a", "alerts_port": free_port()})
    s_b = settings.model_copy(update={"data_dir": tmp_path / "b", "alerts_port": free_port()})
    services = [AlertService(s, bus=open_bus(s)) for s in (s_a, s_b)]
    readies = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(svc.run("127.0.0.1", s.alerts_port, r)) for svc, s, r in zip(services, (s_a, s_b), readies)]
    bus = open_bus(settings)
    producer = bus.producer()
    await producer.start()
    try:
        for r in readies:
            await asyncio.wait_for(r.wait(), 30)
        acked, left = raised("p1", onset=1), raised("p2", onset=2)
        await producer.send_many(bus.topics.alerts, [(e.alert.patient.encode(), e.to_json()) for e in (acked, left)])
        a, b = services
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (a.log.alarm(acked.alert.id) and b.log.alarm(acked.alert.id)):
            await asyncio.sleep(0.1)
        ack = AlertEvent(event_id=AlertEvent.make_id(acked.alert.id, AlertEventType.acknowledged, 5), at=5,
                         type=AlertEventType.acknowledged, alert=acked.alert, by="nurse-7")
        assert await a.record_action(ack) is not None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (b.log.alarm(acked.alert.id)[0].state.value != "acknowledged"
                                               or b.log.alarm(left.alert.id)[0].escalation_level < 2):
            await asyncio.sleep(0.1)
        assert b.log.alarm(acked.alert.id)[0].state.value == "acknowledged"
        assert b.log.alarm(left.alert.id)[0].escalation_level == 2  # escalated twice, on one instance's timer
        await asyncio.sleep(1.5)
        assert a.log.last_seq() == b.log.last_seq()
        assert a.log.since(0, None, set()) == b.log.since(0, None, set()), "the same events, in the same order"
        escalations = [e for e in b.log.since(0, None, set()) if e["type"] == "escalated"]
        assert len(escalations) == 2, "each escalation once"
        assert sum(svc.ownership.escalates for svc in services) == 1, "one instance owns the timers"
    finally:
        await producer.stop()
        for svc in services:
            svc.stop.set()
        for t in tasks:
            await asyncio.wait_for(t, 15)


async def test_alarms_raised_as_an_instance_dies_reach_the_other_within_2s(settings, tmp_path):
    """Kill -9 one of two instances; an alarm on every alerts partition reaches a client of the other
    within 2 s. With one copier per partition (a consumer group) the dead one's partitions waited for
    the group's 6 s session timeout and a rebalance."""
    from wardwatch.kafka import partition_for

    await admitted_ward(settings)
    bus = open_bus(settings)
    store = TokenStore(tmp_path / "tokens.sqlite3")
    token, principal = store.create("nurse", "nurse-7")
    await publish_tokens(bus, [store.row(principal.token_id)])
    a, port_a = spawn_alerts(settings, tmp_path / "a")
    b, port_b = spawn_alerts(settings, tmp_path / "b")
    producer = bus.producer()
    await producer.start()
    feed = None
    try:
        inputs = 3 * settings.readings_partitions
        deadline = time.monotonic() + 30  # the escalation group has settled: each holds part of it
        while time.monotonic() < deadline:
            docs = [healthz(port_a), healthz(port_b)]
            if sum(d.get("copying", 0) for d in docs) == inputs and all(d.get("copying") for d in docs):
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"the instances did not settle: {docs}")
        feed = Feed([f"ws://127.0.0.1:{port_b}/ws"], token)
        await feed.until(lambda: feed.seq is not None, 10, "the survivor's snapshot")

        n = settings.readings_partitions
        patients, covered = [], set()
        for i in range(1000):  # one patient per alerts partition
            p = partition_for(f"x{i}".encode(), n)
            if p not in covered:
                covered.add(p)
                patients.append(f"x{i}")
            if len(covered) == n:
                break
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        alarms = [raised(p, onset=int(time.time() * 1000)) for p in patients]
        t0 = time.monotonic()
        await producer.send_many(bus.topics.alerts, [(e.alert.patient.encode(), e.to_json()) for e in alarms])
        await feed.until(lambda: set(feed.ids("raised")) >= {e.alert.id for e in alarms}, 15, "every alarm")
        took = time.monotonic() - t0
        assert took < 2.0, f"the alarms took {took:.1f} s to reach the survivor's client"
        assert sorted(feed.ids("raised")) == sorted(e.alert.id for e in alarms), "each alarm once"
    finally:
        if feed is not None:
            await feed.close()
        await producer.stop()
        for p in (a, b):
            if p.poll() is None:
                p.terminate()
                p.wait(15)
