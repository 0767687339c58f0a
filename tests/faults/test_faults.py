"""Fault tests against real servers of their own: a broker restart, an InfluxDB outage of a minute,
and a flood of duplicates and late readings. After each, every accepted reading is in InfluxDB
exactly once and every alarm reached the alerts topic exactly once (after dropping repeats by id),
and the time to recover is reported.

(A worker SIGKILLed mid-stream: tests/detectors/test_worker_group_kill.py. The alert service
restarted while browsers are connected: tests/alerts/test_nurse_page_browser.py.)
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
import json
import random
import time
import urllib.request
import uuid

import pytest

from detectors.engine import DetectorEngine
from wardwatch.bus import open_bus
from wardwatch.columns import ReadingColumns
from devservices import start_services
from wardwatch.settings import Settings
from wardwatch.store import InfluxStore

from ..detectors.helpers import spawn_worker
from ..detectors.test_worker_group_kill import make_readings, produce, read_alert_topic, total_points

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.fixture(scope="module")
def own_services():
    """Servers these tests may stop and restart without disturbing the rest of the suite."""
    svc = start_services()
    yield svc
    svc.stop()


@pytest.fixture
def fault_settings(own_services, tmp_path) -> Settings:
    tag = uuid.uuid4().hex[:8]
    own_services.influx.create_database(f"f_{tag}")
    return Settings(**own_services.kafka.client_settings("admin"), topic_prefix=f"f{tag}.", influx_url=own_services.influx.url,
                    influx_token=own_services.influx.token, influx_bucket=f"f_{tag}/autogen", data_dir=tmp_path,
                    readings_partitions=3, consumer_group=f"fg{tag}", stale_after_s=10**9)


@pytest.fixture
async def run(fault_settings, tmp_path):
    """Topics, the test readings, one worker process and a store client, cleaned up after the test."""
    bus = open_bus(fault_settings)
    await bus.ensure_topics()
    proc, port = spawn_worker(fault_settings, tmp_path, "w")
    store = InfluxStore(fault_settings)
    try:
        yield SimpleNamespace(bus=bus, readings=make_readings(int(time.time() * 1000) - 3_600_000), proc=proc,
                              port=port, store=store)
    finally:
        store.close()
        proc.terminate()
        proc.wait(20)


def health(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())
    except OSError:
        return {"ok": None}


async def wait_for_points(store, bucket: str, n: int, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if await total_points(store, bucket) >= n:
                return time.monotonic() - t0
        except Exception:
            pass
        await asyncio.sleep(0.5)
    raise AssertionError(f"not all {n} readings stored within {timeout}s")


async def alert_ids(bus, expected: set[str] | None = None) -> dict[str, str]:
    """The alerts topic, read again until it holds the expected events (or 30 s pass)."""
    deadline = time.monotonic() + 30
    seen = await read_alert_topic(bus)
    while expected is not None and set(seen) != expected and time.monotonic() < deadline:
        await asyncio.sleep(1)
        seen = await read_alert_topic(bus)
    return seen


def expected_events(readings) -> set[str]:
    return {e.event_id for e in DetectorEngine(stale_after_ms=10**12).process(ReadingColumns.from_readings(readings)).events}


async def test_broker_restart_loses_nothing(run, fault_settings, own_services):
    bus, readings, proc, store = run.bus, run.readings, run.proc, run.store
    half = len(readings) // 2
    await produce(bus, readings[:half])
    await wait_for_points(store, fault_settings.influx_bucket, half, 60)
    t_down = time.monotonic()
    own_services.kafka.restart()
    t_up = time.monotonic()
    await produce(bus, readings[half:])
    recovered = await wait_for_points(store, fault_settings.influx_bucket, len(readings), 120)
    print(f"\n[fault] broker restart: down {t_up - t_down:.1f}s, all readings stored {recovered:.1f}s after it was back")
    assert await total_points(store, fault_settings.influx_bucket) == len(readings)
    await asyncio.sleep(2)
    expected = expected_events(readings)
    assert set(await alert_ids(bus, expected)) == expected
    assert proc.poll() is None, "the worker rode out the restart"


async def test_influxdb_outage_of_a_minute_fails_loud_and_loses_nothing(run, fault_settings, own_services):
    bus, readings, port, store = run.bus, run.readings, run.port, run.store
    third = len(readings) // 3
    await produce(bus, readings[:third])
    await wait_for_points(store, fault_settings.influx_bucket, third, 60)
    own_services.influx.stop()
    await produce(bus, readings[third:])
    red = None
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:  # a minute without InfluxDB
        h = health(port)
        if h.get("ok") is False and red is None:
            red = time.monotonic() - t0
        await asyncio.sleep(1)
    assert red is not None and red < 30, "the worker's health check goes red while InfluxDB is down"
    own_services.influx.start()
    recovered = await wait_for_points(store, fault_settings.influx_bucket, len(readings), 120)
    print(f"\n[fault] InfluxDB outage 60s: health red after {red:.0f}s, all stored {recovered:.1f}s after restart")
    assert await total_points(store, fault_settings.influx_bucket) == len(readings)
    expected = expected_events(readings)
    assert set(await alert_ids(bus, expected)) == expected
    for _ in range(20):
        if health(port).get("ok"):
            break
        await asyncio.sleep(0.5)
    assert health(port)["ok"] is True


async def test_flood_of_duplicates_and_late_readings(run, fault_settings):
    bus, readings, store = run.bus, run.readings, run.store
    await produce(bus, readings)
    rng = random.Random(3)
    replayed = readings * 2  # every reading again, twice over...
    rng.shuffle(replayed)  # ...and out of order: late for the patient it belongs to
    t0 = time.monotonic()
    await produce(bus, replayed)
    await wait_for_points(store, fault_settings.influx_bucket, len(readings), 60)
    await asyncio.sleep(3)
    print(f"\n[fault] flood of {len(replayed)} duplicates and late readings absorbed in {time.monotonic() - t0:.1f}s")
    assert await total_points(store, fault_settings.influx_bucket) == len(readings)
    expected = expected_events(readings)
    assert set(await alert_ids(bus, expected)) == expected, "late copies raise nothing new"
