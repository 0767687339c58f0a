"""`wardwatch demo`, as a new user runs it: one process, replayed real patients, the nurse page live."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import websockets

from devservices import free_port

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


async def test_demo_shows_live_patients_and_alarms_and_keeps_history(tmp_path):
    port = free_port()
    env = dict(os.environ, WARDWATCH_DATA_DIR=str(tmp_path))
    env.pop("WARDWATCH_BACKEND", None)
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "demo", "--duration", "60", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        token = None
        deadline = time.monotonic() + 60
        while token is None and time.monotonic() < deadline:
            line = await asyncio.to_thread(proc.stdout.readline)
            m = re.search(r"nurse with:\s+(\S+)", line)
            token = m.group(1) if m else None
        assert token, "the demo prints a nurse login"
        await asyncio.sleep(20)  # let the replayed patients run a while
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws")
        await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
        await ws.recv()
        await ws.send(orjson.dumps({"type": "subscribe", "wards": ["ward-1"]}).decode())
        snap = orjson.loads(await ws.recv())
        await ws.close()
        assert len(snap["patients"]) == 18 and len(snap["vitals"]) >= 15
        assert any(v["values"].get("spo2") for v in snap["vitals"])
        assert snap["alarms"], "replayed real patients raise alarms"
        patient = snap["vitals"][0]["patient"]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            r = await http.get("/api/history", params={"patient": patient, "start": int(time.time() * 1000) - 600_000},
                               headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["vitals"], "the embedded store keeps the history"
        chromium = shutil.which("chromium")
        if chromium:  # a picture of the page for people; the browser tests check the behaviour
            from playwright.async_api import async_playwright

            ARTIFACTS.mkdir(exist_ok=True)
            async with async_playwright() as pw:
                b = await pw.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu",
                                                                            "--disable-background-networking", "--no-first-run"])
                page = await b.new_page(viewport={"width": 1600, "height": 1000})
                await page.goto(f"http://127.0.0.1:{port}/")
                await page.fill("#token", token)
                await page.click("button[type=submit]")
                await page.wait_for_selector("[data-testid=alarm]", timeout=10_000)
                await page.screenshot(path=str(ARTIFACTS / "demo-nurse-station.png"), full_page=True)
                await b.close()
    finally:
        proc.terminate()
        proc.wait(20)
