"""`wardwatch detect --processes 2`: two worker processes in one group share the partitions, a
child that dies is restarted, and SIGTERM stops them all cleanly; nothing is lost, no alarm repeats."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from detectors.engine import DetectorEngine
from wardwatch.bus import open_bus
from wardwatch.columns import ReadingColumns
from wardwatch.store import InfluxStore

from .helpers import worker_env
from .test_worker_group_kill import N_PATIENTS, make_readings, produce, read_alert_topic, total_points

pytestmark = pytest.mark.integration


def two_free_ports() -> int:
    """A port p with p + 1 free too (worker i serves its health on p + i)."""
    for _ in range(100):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            p = a.getsockname()[1]
            try:
                b.bind(("127.0.0.1", p + 1))
            except OSError:
                continue
            return p
    raise RuntimeError("no two consecutive free ports")


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


async def health(port: int) -> dict | None:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(f"http://127.0.0.1:{port}/healthz")).json()
    except (httpx.HTTPError, ValueError):
        return None


async def until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if got := await check():
            return got
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


async def test_two_processes_share_the_partitions_survive_a_dead_child_and_stop_on_sigterm(settings, tmp_path):
    bus = open_bus(settings)
    await bus.ensure_topics()
    readings = make_readings(int(time.time() * 1000) - 3_600_000)
    expected = {e.event_id for e in DetectorEngine(stale_after_ms=10**12).process(ReadingColumns.from_readings(readings)).events}
    port = two_free_ports()
    parent = subprocess.Popen([sys.executable, "-m", "app.cli", "detect", "--processes", "2", "--metrics-port", str(port)],
                              env=worker_env(settings, tmp_path), stdout=open(tmp_path / "pool.log", "ab"),
                              stderr=subprocess.STDOUT)
    store = InfluxStore(settings)
    try:
        half = len(readings) // 2
        await produce(bus, readings[:half])

        async def both_share() -> bool:
            docs = [await health(port), await health(port + 1)]
            # Each patient lives in exactly one member: its partition's.
            return all(docs) and all(d["patients"] > 0 for d in docs) and sum(d["patients"] for d in docs) == N_PATIENTS

        await until(both_share, 90, "both processes to hold their share of the patients")
        first, _ = children(parent.pid)
        subprocess.run(["kill", "-KILL", str(first)], check=True)  # a child dies mid-stream
        await produce(bus, readings[half:])

        async def replaced() -> bool:
            kids = children(parent.pid)
            return len(kids) == 2 and first not in kids and await health(port) is not None

        await until(replaced, 60, "the dead child to be restarted on its port")

        async def all_stored() -> bool:
            return await total_points(store, settings.influx_bucket) == len(readings)

        await until(all_stored, 120, "every reading stored")
        seen: dict = {}

        async def all_alarms() -> bool:
            seen.update(await read_alert_topic(bus))  # a repeated id must carry identical content
            return set(seen) == expected

        await until(all_alarms, 30, "the alarms of one uninterrupted engine")
        assert set(seen) == expected, "no alarm lost, none invented"

        kids = children(parent.pid)
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(60) == 0
        assert not any(Path(f"/proc/{k}").exists() and "zombie" not in Path(f"/proc/{k}/status").read_text()
                       for k in kids), "SIGTERM stops every child"
        assert await total_points(store, settings.influx_bucket) == len(readings)  # stored once
    finally:
        store.close()
        if parent.poll() is None:
            parent.kill()
            parent.wait(20)
