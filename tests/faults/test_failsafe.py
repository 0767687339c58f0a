"""Fail-safe against the real servers: what an unlucky gateway and an unlucky server room do.

A request resent alone in a quiet minute; InfluxDB down while an alarm is due to escalate; the
alert service and a detector worker each frozen for 15 s (SIGSTOP, SIGCONT: a long GC pause or a
VM stall, longer than the consumer group's session); every detector worker killed. After each,
every reading is stored once and every alarm reaches the feed once, and while it lasts the fault
shows (health red, "monitoring stopped" on the page), never calm.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
import websockets

from wardwatch.auth import TokenStore
from wardwatch.bus import open_bus
from devservices import free_port
from wardwatch.models import Reading
from wardwatch.settings import Settings
from wardwatch.store import InfluxStore

from ..alerts.conftest import raised
from ..detectors.helpers import spawn_worker, worker_env
from ..detectors.test_worker_group_kill import make_readings, produce, total_points
from .test_faults import alert_ids, expected_events, fault_settings, health, own_services, wait_for_points  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.faults]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class Procs:
    """Processes of one test, always stopped afterwards (SIGCONT first: a stopped process ignores TERM)."""

    def __init__(self) -> None:
        self.all: list[subprocess.Popen] = []

    def add(self, proc):
        self.all.append(proc)
        return proc

    def stop(self) -> None:
        for p in self.all:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.terminate()
        for p in self.all:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture
def procs():
    p = Procs()
    yield p
    p.stop()


def spawn_alerts(settings: Settings, data_dir: Path, **env) -> tuple[subprocess.Popen, int]:
    port = free_port()
    e = dict(worker_env(settings, data_dir), WARDWATCH_ALERTS_PORT=str(port),
             **{f"WARDWATCH_{k.upper()}": str(v) for k, v in env.items()})
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "alerts", "--port", str(port)], env=e,
                            stdout=open(data_dir / "alerts.log", "ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc, port
        except urllib.error.HTTPError:
            return proc, port  # up, and not (yet) healthy
        except OSError:
            time.sleep(0.2)
    raise AssertionError("alert service did not start:\n" + (data_dir / "alerts.log").read_text()[-3000:])


class Nurse:
    """A nurse's feed that reconnects and resumes by seq, as the page does; counts what it saw."""

    def __init__(self, port: int, token: str) -> None:
        self.url, self.token = f"ws://127.0.0.1:{port}/ws", token
        self.events: list[dict] = []
        self.monitoring: list[dict] = []
        self.seq: int | None = None
        self.reconnects = 0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                async with websockets.connect(self.url, open_timeout=5) as ws:
                    await ws.send(orjson.dumps({"type": "auth", "token": self.token}).decode())
                    async for raw in ws:
                        msg = orjson.loads(raw)
                        if msg["type"] == "hello":
                            self.monitoring.append(msg["monitoring"])
                            await ws.send(orjson.dumps({"type": "subscribe", "wards": ["*"], "since": self.seq}).decode())
                        elif msg["type"] == "snapshot":
                            self.seq = msg["seq"]
                        elif msg["type"] in ("batch", "replay"):
                            for e in msg["events"]:
                                if self.seq is None or e["seq"] > self.seq:
                                    self.events.append(e)
                                    self.seq = e["seq"]
                        elif msg["type"] == "monitoring":
                            self.monitoring.append(msg)
                        elif msg["type"] == "resync":
                            await ws.send(orjson.dumps({"type": "subscribe", "wards": ["*"], "since": self.seq}).decode())
            except (OSError, websockets.ConnectionClosed, asyncio.TimeoutError):
                pass
            self.reconnects += 1
            await asyncio.sleep(0.5)

    def ids(self, type_: str = "raised") -> list[str]:
        return [e["alert"]["id"] for e in self.events if e["type"] == type_]

    async def until(self, cond, timeout: float, what: str) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if cond():
                return time.monotonic() - t0
            await asyncio.sleep(0.2)
        raise AssertionError(f"{what} not seen within {timeout}s (events: {len(self.events)}, monitoring: {self.monitoring[-3:]})")

    def each_event_once(self) -> bool:
        seen = [e["event_id"] for e in self.events]
        return len(seen) == len(set(seen))

    async def close(self) -> None:
        self._task.cancel()


@contextlib.asynccontextmanager
async def nurse_page(port: int, token: str):
    from playwright.async_api import async_playwright

    from ..alerts.test_nurse_page_browser import ARGS, CHROMIUM

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await (await browser.new_context(viewport={"width": 1400, "height": 900})).new_page()
        await page.goto(f"http://127.0.0.1:{port}/")
        await page.fill("#token", token)
        await page.click("button[type=submit]")
        try:
            yield page
        finally:
            await browser.close()


async def alert_service_with_a_nurse(settings: Settings, data_dir: Path, procs: Procs, **env):
    """An alert-service process, a nurse following its feed, and a producer for alarm events."""
    bus = open_bus(settings)
    await bus.ensure_topics()
    alerts, port = spawn_alerts(settings, data_dir, **env)
    procs.add(alerts)
    producer = bus.producer()
    await producer.start()
    return bus, alerts, port, Nurse(port, nurse_token(settings)), producer


def nurse_token(settings: Settings) -> str:
    return TokenStore(settings.tokens_path).create("nurse", "fault-nurse")[0]


def ok_of(port: int) -> bool | None:
    return health(port).get("ok")


async def test_a_request_resent_alone_in_a_quiet_minute_is_absorbed(fault_settings, tmp_path, procs):
    bus = open_bus(fault_settings)
    await bus.ensure_topics()
    proc, port = spawn_worker(fault_settings, tmp_path, "w")
    procs.add(proc)
    store = InfluxStore(fault_settings)
    readings = [Reading(patient="q1", device="dq1", metric="spo2", unit="%", value=84.0 if i >= 10 else 97.0,
                        ts=int(time.time() * 1000) - 120_000 + 1000 * i) for i in range(40)]
    await produce(bus, readings)
    await wait_for_points(store, fault_settings.influx_bucket, len(readings), 60)
    await asyncio.sleep(3)  # quiet: nothing else arrives, the worker has committed
    await produce(bus, readings)  # the gateway never saw our reply and sends the same request again
    await asyncio.sleep(5)
    assert proc.poll() is None, "the worker survived the resend"
    assert ok_of(port) is True
    assert await total_points(store, fault_settings.influx_bucket) == len(readings)
    expected = expected_events(readings)
    assert expected and set(await alert_ids(bus, expected)) == expected
    store.close()


async def test_escalation_happens_on_time_while_influxdb_is_down(fault_settings, tmp_path, procs, own_services):
    bus, _, port, nurse, producer = await alert_service_with_a_nurse(fault_settings, tmp_path, procs, escalate_after_s=4)
    try:
        own_services.influx.stop()
        event = raised("e1", onset=int(time.time() * 1000) - 20_000)
        await producer.send_many(bus.topics.alerts, [(b"e1", event.to_json())])
        await nurse.until(lambda: event.alert.id in nurse.ids(), 15, "the alarm")
        took = await nurse.until(lambda: event.alert.id in nurse.ids("escalated"), 20, "its escalation")
        print(f"\n[fault] escalation during an InfluxDB outage reached the feed {took:.1f}s after the alarm")
        t0 = time.monotonic()
        while ok_of(port) is not False and time.monotonic() - t0 < 20:
            await asyncio.sleep(0.5)
        assert ok_of(port) is False, "health is red while actions cannot be stored"
    finally:
        own_services.influx.start()
    store = InfluxStore(fault_settings)
    t0 = time.monotonic()
    rows = []
    while time.monotonic() - t0 < 60 and not rows:
        rows = await store.query_series("alerts", "e1", 0, int(time.time() * 1000) + 60_000, fields=["alert_id"],
                                        tags={"event": "escalated"})
        await asyncio.sleep(1)
    store.close()
    assert rows, "the escalation is stored once InfluxDB is back"
    await nurse.until(lambda: ok_of(port) is True, 40, "health green again")
    assert nurse.each_event_once(), "no event shown twice"
    assert nurse.ids().count(event.alert.id) == 1 and 1 <= nurse.ids("escalated").count(event.alert.id) <= 2
    await nurse.close()
    await producer.stop()


async def test_alert_service_frozen_15s_rejoins_and_shows_every_alarm_once(fault_settings, tmp_path, procs):
    bus, alerts, port, nurse, producer = await alert_service_with_a_nurse(fault_settings, tmp_path, procs,
                                                                          escalate_after_s=3600)
    base = int(time.time() * 1000) - 60_000
    before, during, after = raised("f1", onset=base), raised("f2", onset=base + 1), raised("f3", onset=base + 2)
    await producer.send_many(bus.topics.alerts, [(b"f1", before.to_json())])
    await nurse.until(lambda: before.alert.id in nurse.ids(), 15, "the first alarm")
    os.kill(alerts.pid, signal.SIGSTOP)
    await asyncio.sleep(2)
    await producer.send_many(bus.topics.alerts, [(b"f2", during.to_json())])  # a new patient's alarm meanwhile
    await asyncio.sleep(13)
    os.kill(alerts.pid, signal.SIGCONT)
    took = await nurse.until(lambda: during.alert.id in nurse.ids(), 45, "the alarm raised during the freeze")
    await producer.send_many(bus.topics.alerts, [(b"f3", after.to_json())])
    await nurse.until(lambda: after.alert.id in nurse.ids(), 45, "an alarm raised after the freeze")
    print(f"\n[fault] alert service frozen 15s: the alarm raised meanwhile shown {took:.1f}s after SIGCONT")
    await asyncio.sleep(2)
    assert sorted(nurse.ids()) == sorted({before.alert.id, during.alert.id, after.alert.id}), "each alarm once"
    assert nurse.each_event_once(), "no event shown twice"
    await nurse.until(lambda: ok_of(port) is True, 30, "health green again")
    await nurse.close()
    await producer.stop()


async def test_a_detector_worker_frozen_15s_loses_nothing_and_repeats_nothing(fault_settings, tmp_path, procs):
    bus = open_bus(fault_settings)
    await bus.ensure_topics()
    a, _ = spawn_worker(fault_settings, tmp_path, "a")
    b, _ = spawn_worker(fault_settings, tmp_path, "b")
    procs.add(a), procs.add(b)
    store = InfluxStore(fault_settings)
    readings = make_readings(int(time.time() * 1000) - 3_600_000)
    half = len(readings) // 2
    await asyncio.sleep(3)  # both in the group
    await produce(bus, readings[:half])
    await wait_for_points(store, fault_settings.influx_bucket, half, 60)
    os.kill(a.pid, signal.SIGSTOP)
    await produce(bus, readings[half:])
    await asyncio.sleep(15)
    os.kill(a.pid, signal.SIGCONT)
    recovered = await wait_for_points(store, fault_settings.influx_bucket, len(readings), 120)
    print(f"\n[fault] worker frozen 15s: all readings stored {recovered:.1f}s after SIGCONT")
    assert await total_points(store, fault_settings.influx_bucket) == len(readings)
    expected = expected_events(readings)
    assert set(await alert_ids(bus, expected)) == expected
    assert a.poll() is None and b.poll() is None
    store.close()


async def test_every_worker_killed_shows_monitoring_stopped_until_one_is_back(fault_settings, tmp_path, procs):
    bus = open_bus(fault_settings)
    await bus.ensure_topics()
    stall = 6
    alerts, port = spawn_alerts(fault_settings, tmp_path, monitor_stall_s=stall)
    worker, _ = spawn_worker(fault_settings, tmp_path, "w")
    procs.add(alerts), procs.add(worker)
    store = InfluxStore(fault_settings)
    nurse = Nurse(port, nurse_token(fault_settings))
    readings = make_readings(int(time.time() * 1000) - 3_600_000)
    third = len(readings) // 3
    await produce(bus, readings[:third])
    await wait_for_points(store, fault_settings.influx_bucket, third, 60)
    await nurse.until(lambda: nurse.monitoring and nurse.monitoring[-1]["ok"], 10, "monitoring running")
    worker.kill()
    worker.wait()
    await produce(bus, readings[third:])  # readings wait, nobody processes them
    # (it may say "delayed" first, from the rate before the kill, until the stall is judged)
    took = await nurse.until(lambda: nurse.monitoring[-1].get("state") == "stopped", stall + 15, "'monitoring stopped'")
    print(f"\n[fault] every worker killed: 'monitoring stopped' on the feed {took:.1f}s after readings waited"
          f" ({nurse.monitoring[-1]['reason']})")
    assert ok_of(port) is False
    async with nurse_page(port, nurse_token(fault_settings)) as page:  # what the nurse sees
        banner = page.locator("[data-testid=monitoring-stopped]")
        await banner.wait_for(state="visible", timeout=15_000)
        assert "MONITORING STOPPED" in await banner.inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "monitoring-stopped.png"))
        again, _ = spawn_worker(fault_settings, tmp_path, "w2")
        procs.add(again)
        await nurse.until(lambda: nurse.monitoring[-1]["ok"] is True, 60, "monitoring running again")
        await banner.wait_for(state="hidden", timeout=15_000)
    await wait_for_points(store, fault_settings.influx_bucket, len(readings), 120)
    assert await total_points(store, fault_settings.influx_bucket) == len(readings)
    expected = expected_events(readings)
    assert set(await alert_ids(bus, expected)) == expected
    await nurse.close()
    store.close()
