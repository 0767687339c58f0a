"""The nurse page in a real headless Chromium (Debian's), against the real Kafka.

A real patient (MIMIC-II s25047) is replayed through the detector engine; its SpO2 alarm reaches
the page within a second, a nurse acknowledges it, a second browser on the same ward sees that,
and a dropped feed shows the banner and recovers with the alarm raised meanwhile shown once.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import wfdb

from alerts.service import AlertService
from detectors.engine import DetectorEngine
from wardwatch.models import AlertEventType

from ..detectors.helpers import columns

pytestmark = [pytest.mark.integration, pytest.mark.browser]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


def replay_s25047(shared_data: Path, patient: str):
    """MIMIC-II s25047 numerics (1/min), at its own pace, re-timed to end now, through the engine:
    its output as the worker stores it."""
    rec = wfdb.rdrecord(str(shared_data / "wfdb" / "s25047" / "s25047-2704-05-04-10-44n"))
    names = {"HR": "heart_rate", "SpO2": "spo2", "RESP": "resp_rate", "PULSE": "pulse_rate", "NBPSys": "sbp"}
    base = int(time.time() * 1000) - 60_000 * len(rec.p_signal)
    ps, ms, vs, ts = [], [], [], []
    for i, row in enumerate(rec.p_signal):
        for j, name in enumerate(rec.sig_name):
            if name in names and not np.isnan(row[j]):
                ps.append(patient), ms.append(names[name]), vs.append(float(row[j])), ts.append(base + 60_000 * i)
    return DetectorEngine(stale_after_ms=10**12).process(columns(ps, ms, vs, ts))


def replay_real_patient(shared_data: Path, patient: str):
    """s25047 through the engine (:func:`replay_s25047`), as the nurse page's test uses it."""
    out = replay_s25047(shared_data, patient)
    return out.events, out.snapshots


async def test_nurse_sees_acknowledges_and_recovers_from_a_dropped_feed(ward, shared_data):
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    events, snapshots = replay_real_patient(shared_data, "p1")
    spo2 = [e for e in events if e.alert.condition == "spo2_low" and e.type is AlertEventType.raised][0]
    await ward.producer.send_many(ward.bus.topics.vitals, [(s.patient.encode(), s.model_dump_json().encode())
                                                            for s in snapshots[-3:]])
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        nurse_a = await (await browser.new_context(viewport={"width": 1400, "height": 900})).new_page()
        nurse_b = await (await browser.new_context(viewport={"width": 420, "height": 860})).new_page()  # a phone
        for page in (nurse_a, nurse_b):
            await page.goto(ward.http + "/")
            await page.fill("#token", ward.tokens["nurse"])
            await page.fill("#wards", "w7")
            await page.click("button[type=submit]")
            await page.wait_for_selector("[data-testid=tile][data-patient=p1]", timeout=10_000)

        # The real patient's alarm appears within a second of reaching the alerts topic.
        t0 = time.monotonic()
        await ward.producer.send_many(ward.bus.topics.alerts, [(b"p1", spo2.to_json())])
        selector = f"[data-testid=alarm][data-alert-id='{spo2.alert.id}']"
        await nurse_a.wait_for_selector(selector, timeout=1000)
        assert time.monotonic() - t0 < 1.0
        await nurse_b.wait_for_selector(selector, timeout=1000)
        await nurse_a.screenshot(path=str(ARTIFACTS / "nurse-alarm.png"), full_page=True)

        await asyncio.sleep(1.6)  # the bed's Acknowledge takes only alarms shown long enough to have been seen
        await nurse_a.click("[data-testid=bed-group][data-patient=p1] [data-testid=ack-bed]")
        await nurse_b.wait_for_selector(f"{selector}[data-state=acknowledged]", timeout=3000)
        assert "acknowledged by nurse-tester" in await nurse_b.inner_text(selector)
        await nurse_b.screenshot(path=str(ARTIFACTS / "nurse-phone-acknowledged.png"), full_page=True)

        # The feed drops: the service stops. The banner must say so.
        ward.service.stop.set()
        await nurse_a.wait_for_selector("[data-testid=stale-banner]:not(.hidden)", timeout=15_000)
        await nurse_a.screenshot(path=str(ARTIFACTS / "nurse-feed-down.png"), full_page=True)
        # Alarms raised meanwhile are not lost: they are shown once when the feed is back.
        meanwhile = [e for e in events if e.type is AlertEventType.raised and e.alert.id != spo2.alert.id]
        await ward.producer.send_many(ward.bus.topics.alerts, [(b"p1", e.to_json()) for e in meanwhile])
        await asyncio.sleep(1.0)
        service = AlertService(ward.settings, bus=ward.bus)
        ready = asyncio.Event()
        task = asyncio.create_task(service.run("127.0.0.1", ward.settings.alerts_port, ready))
        await asyncio.wait_for(ready.wait(), 30)
        try:
            await nurse_a.wait_for_selector("[data-testid=stale-banner].hidden", state="attached", timeout=20_000)
            for e in meanwhile:
                await nurse_a.wait_for_selector(f"[data-testid=alarm][data-alert-id='{e.alert.id}']", timeout=10_000)
            await asyncio.sleep(1.5)  # a duplicate, if any, would have arrived by now
            for e in meanwhile + [spo2]:
                assert await nurse_a.locator(f"[data-testid=alarm][data-alert-id='{e.alert.id}']").count() == 1
            await nurse_a.screenshot(path=str(ARTIFACTS / "nurse-recovered.png"), full_page=True)
        finally:
            service.stop.set()
            await asyncio.wait_for(task, 15)
        await browser.close()


async def test_a_station_whose_token_expires_within_a_day_says_so_ahead_and_one_that_never_expires_does_not(ward):
    """An expired token closes the feed: a station screen must say so while there is time to act."""
    from playwright.async_api import async_playwright

    from wardwatch.auth import TokenStore

    store = TokenStore(ward.settings.tokens_path)
    expiring, _ = store.create("nurse", "station-7", ("w7",), expires_in=3 * 3600)
    lasting, _ = store.create("nurse", "station-8", ("w7",))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pages = {}
        for name, token in (("expiring", expiring), ("lasting", lasting)):
            page = pages[name] = await (await browser.new_context()).new_page()
            await page.goto(ward.http + "/")
            await page.fill("#token", token)
            await page.fill("#wards", "w7")
            await page.click("button[type=submit]")
            await page.wait_for_selector("#station:not(.hidden)", timeout=10_000)
        notice = pages["expiring"].locator("[data-testid=token-expiry]")
        await notice.wait_for(state="visible", timeout=5_000)
        assert "expires in 2 h 59 min" in await notice.text_content() or "expires in 3 h 0 min" in await notice.text_content()
        assert await pages["lasting"].locator("[data-testid=token-expiry]").is_hidden()
        await browser.close()


async def test_a_detector_group_far_behind_shows_monitoring_delayed_with_its_estimate(ward, monkeypatch):
    """Workers that move but are ten minutes behind are not calm: every alarm comes that much late."""
    from playwright.async_api import async_playwright

    import alerts.monitoring as monitoring

    monkeypatch.setattr(monitoring, "MIN_SPAN_S", 1.0)  # judge the rate after 1 s of it, not 10
    t0 = time.monotonic()

    async def far_behind(group, topic):  # 600,000 readings wait; the group commits 1,000 a second
        done = int((time.monotonic() - t0) * 1000)
        return {0: (done, 600_000 + done)}

    monkeypatch.setattr(ward.service.bus, "group_progress", far_behind)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await (await browser.new_context()).new_page()
        await page.goto(ward.http + "/")
        await page.fill("#token", ward.tokens["nurse"])
        await page.fill("#wards", "w7")
        await page.click("button[type=submit]")
        banner = page.locator("[data-testid=monitoring-stopped]")
        await banner.wait_for(state="visible", timeout=15_000)
        text = await banner.text_content()
        behind = re.search(r"about (\d+)s behind", text)
        # 600 s at the rate measured; the rate is measured over 1 s here, so a loaded machine moves it
        assert "MONITORING DELAYED" in text and behind and 200 <= int(behind[1]) <= 3000, text
        await browser.close()
    health = ward.service.health()[1]
    assert not health["ok"] and health["monitoring"]["state"] == "delayed"
