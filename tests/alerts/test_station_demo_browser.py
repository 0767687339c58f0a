"""`wardwatch demo` in headless Chromium: the ward screen and the chart of the replayed MIMIC-II
s25047, whose desaturation is marked on the chart at the stored alarm's time; axe-core on both pages."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time

import httpx
import pytest

from devservices import free_port

from .test_nurse_page_browser import ARGS, ARTIFACTS, CHROMIUM
from .test_station_browser import axe_violations, until

pytestmark = [pytest.mark.browser]
PATIENT = "mimic-s25047"


async def test_the_demo_charts_the_desaturation_of_a_real_patient(tmp_path):
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    env = dict(os.environ, WARDWATCH_DATA_DIR=str(tmp_path))
    env.pop("WARDWATCH_BACKEND", None)
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "demo", "--duration", "400", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        tokens: dict[str, str] = {}
        deadline = time.monotonic() + 60
        while len(tokens) < 2 and time.monotonic() < deadline:
            line = await asyncio.to_thread(proc.stdout.readline)
            if m := re.search(r"(nurse|clinician) with:\s+(\S+)", line):
                tokens[m.group(1)] = m.group(2)
        assert len(tokens) == 2, "the demo prints a nurse and a clinician login"
        # Wait for the replayed desaturation to be stored (the demo replays s25047 from its start).
        desat = None
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {tokens['clinician']}"}) as http:
            deadline = time.monotonic() + 300
            while desat is None and time.monotonic() < deadline:
                await asyncio.sleep(5)
                now = int(time.time() * 1000)
                h = (await http.get("/api/history", params={"patient": PATIENT, "start": now - 3600_000, "stop": now})).json()
                desat = next((a for a in h["alarms"] if a["condition"] in ("spo2_low", "spo2_critical")
                              and a["event"] == "raised"), None)
        assert desat, "s25047's desaturation raised an alarm in the demo"

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = await (await browser.new_context(viewport={"width": 1600, "height": 1000})).new_page()
            await page.goto(base + "/")
            await page.fill("#token", tokens["clinician"])
            await page.fill("#wards", "ward-1")
            await page.click("button[type=submit]")
            await page.wait_for_selector(f"[data-testid=tile][data-patient={PATIENT}]", timeout=15_000)
            await page.wait_for_selector("[data-testid=bed-group]", timeout=15_000)
            await page.screenshot(path=str(ARTIFACTS / "demo-station.png"))
            assert await axe_violations(page) == []

            await page.click(f"[data-testid=tile][data-patient={PATIENT}] [data-testid=tile-chart]")
            await page.wait_for_selector(f"[data-testid=alarm-marker][data-alert-id='{desat['alert_id']}']", timeout=15_000)
            marker = page.locator(f"[data-testid=alarm-marker][data-alert-id='{desat['alert_id']}']").first
            assert abs(int(await marker.get_attribute("data-time")) - desat["time"]) <= 60_000
            captions = await page.eval_on_selector_all("[data-testid=chart] figcaption", "cs => cs.map(c => c.textContent)")
            assert "SpO₂ (%)" in captions and "Heart rate (/min)" in captions
            assert await page.get_attribute("[data-testid=chart]:has(figcaption:text-is('SpO₂ (%)'))", "data-axis-y") == "%"
            await until(page, "document.querySelector('#status').dataset.every !== undefined", 10)
            await page.click("button[data-range='900000']")  # the demo's minutes, close up
            await until(page, "Number(document.querySelector('#status').dataset.every) < 5000 && document.querySelector('#status').textContent.includes('–')", 10)
            await page.wait_for_selector(f"[data-testid=alarm-marker][data-alert-id='{desat['alert_id']}']", timeout=10_000)
            await page.screenshot(path=str(ARTIFACTS / "demo-chart-s25047.png"), full_page=True)
            assert await axe_violations(page) == []
            await browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
