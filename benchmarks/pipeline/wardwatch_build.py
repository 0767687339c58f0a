"""The WardWatch build of the pipeline benchmark: detector worker(s) and the alert service as their
own processes, and a websocket client that times each alarm from its reading to the screen."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import orjson

from wardwatch.auth import TokenStore
from devservices import die_with_parent, free_port
from wardwatch.settings import Settings

LIVE_START_MS = [0]  # alarms of readings produced before the live phase are not timed
_state: dict = {}


async def start_wardwatch(settings: Settings, env: dict, workdir: Path, workers: int) -> dict[str, subprocess.Popen]:
    port = free_port()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    token, _ = TokenStore(settings.tokens_path).create("nurse", "bench-probe")
    env = dict(env, WARDWATCH_STALE_AFTER_S="3600", WARDWATCH_ESCALATE_AFTER_S="3600")
    procs = {}
    for i in range(workers):
        procs[f"detect-{i}"] = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "--log-level", "WARNING", "detect", "--metrics-port", str(free_port())],
            env=env, stdout=open(workdir / f"detect-{i}.log", "wb"), stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    procs["alerts"] = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "--log-level", "WARNING", "alerts", "--port", str(port)],
        env=env, stdout=open(workdir / "alerts.log", "wb"), stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    _state.update(port=port, token=token)
    return procs


async def wardwatch_latency(settings: Settings, stop: asyncio.Event, lat: list[float], ward) -> None:
    import websockets

    url = f"ws://127.0.0.1:{_state['port']}/ws"
    for _ in range(200):
        try:
            ws = await websockets.connect(url, max_size=64 << 20)
            break
        except OSError:
            await asyncio.sleep(0.2)
    await ws.send(orjson.dumps({"type": "auth", "token": _state["token"]}).decode())
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
                if e["type"] == "raised" and e["alert"]["kind"] == "physiological" and LIVE_START_MS[0] \
                        and e["at"] >= LIVE_START_MS[0]:
                    lat.append(now - e["at"])
    finally:
        await ws.close()
