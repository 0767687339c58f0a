"""Where the pipeline benchmark times alarms: the alert service (``wardwatch alerts``, the same
process for every build that raises alarms) and a nurse's websocket on it, or, for the raw
pass-through that raises none, the output topic. The alerts topic is timed too, for every build
that raises alarms: the part of the latency before the alert service.

Each probe appends ``(at, latency)`` pairs: the reading time behind an event (the gateway's
wall-clock time of the reading that raised it) and the milliseconds until the probe had it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from devservices import die_with_parent, free_port
from wardwatch.auth import TokenStore
from wardwatch.settings import Settings


@dataclass
class AlertService:
    proc: subprocess.Popen
    port: int
    token: str  # a nurse's


def start_alert_service(settings: Settings, env: dict, workdir: Path) -> AlertService:
    """``wardwatch alerts`` for the build's topic prefix, with a nurse token for the probe."""
    port = free_port()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    token, _ = TokenStore(settings.tokens_path).create("nurse", "bench-probe")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "--log-level", "WARNING", "alerts", "--port", str(port)],
        env=env, stdout=open(workdir / "alerts.log", "wb"), stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    return AlertService(proc, port, token)


async def websocket_latency(service: AlertService, stop: asyncio.Event, lat: list[tuple[int, float]]) -> None:
    """A nurse's page subscribed to every ward: each physiological alarm raised, timed on arrival."""
    import websockets

    url = f"ws://127.0.0.1:{service.port}/ws"
    for _ in range(300):
        try:
            ws = await websockets.connect(url, max_size=64 << 20)
            break
        except OSError:
            if service.proc.poll() is not None:
                raise RuntimeError(f"the alert service exited with {service.proc.returncode}")
            await asyncio.sleep(0.2)
    else:
        raise RuntimeError("the alert service did not open its socket")
    await ws.send(orjson.dumps({"type": "auth", "token": service.token}).decode())
    await ws.recv()
    await ws.send(orjson.dumps({"type": "subscribe", "wards": ["*"]}).decode())
    try:
        while not stop.is_set():
            try:
                msg = orjson.loads(await asyncio.wait_for(ws.recv(), 0.5))
            except asyncio.TimeoutError:
                continue
            if msg.get("type") != "batch":
                continue
            now = time.time() * 1000
            for e in msg["events"]:
                if e["type"] == "raised" and e["alert"]["kind"] == "physiological":
                    lat.append((e["at"], now - e["at"]))
    finally:
        await ws.close()


def reading_time(value: bytes) -> int | None:
    """A pass-through's copy of a reading: its time."""
    return orjson.loads(value)["ts"]


def raised_at(value: bytes) -> int | None:
    """An alarm event on the alerts topic: the reading time of a physiological alarm raised, else None."""
    e = orjson.loads(value)
    return e["at"] if e["type"] == "raised" and e["alert"]["kind"] == "physiological" else None


async def topic_latency(settings: Settings, topic: str, stop: asyncio.Event, lat: list[tuple[int, float]],
                        pick=reading_time) -> None:
    """Records on ``topic`` timed on arrival: ``pick`` gives the reading time behind one (None: not timed)."""
    from wardwatch.kafka import make_consumer

    c = make_consumer(settings, topic, auto_offset_reset="latest")
    await c.start()
    try:
        while not stop.is_set():
            batches = await c.getmany(timeout_ms=200, max_records=50_000)
            now = time.time() * 1000
            for msgs in batches.values():
                for m in msgs:
                    if (at := pick(m.value)) is not None:
                        lat.append((at, now - at))
    finally:
        await c.stop()
