"""The monitors' own alarms on the nurse page, in a real headless Chromium against the real Kafka: a
device alarm (IHE PCD-04, on the device-alarms topic) appears in its own list with the monitor's
priority, source, state and text and the warning that acknowledging it here does not silence the
monitor; a nurse acknowledges it; its end at the monitor is shown.
"""

from __future__ import annotations

import pytest

from alerts.service import device_alert_id
from ingest.formats import hl7v2_alarms
from wardwatch.models import DeviceAlarm, now_ms

from ..ingest.test_hl7_alarms import mindray_spo2_low
from .test_device_alarms import hl7_time
from .test_nurse_page_browser import ARGS, ARTIFACTS, CHROMIUM

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def report(ago_s: int, **kw) -> DeviceAlarm:
    text = mindray_spo2_low(when=hl7_time(ago_s), pid="p1^^^Hospital^MR", **kw)
    (a,) = hl7v2_alarms.parse_alarm_message(text).items
    return DeviceAlarm(**a, received=now_ms())


async def test_device_alarm_is_shown_apart_with_the_bedside_warning_and_can_be_acknowledged(ward):
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    start = report(20)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await (await browser.new_context(viewport={"width": 1400, "height": 900})).new_page()
        await page.goto(ward.http + "/")
        await page.fill("#token", ward.tokens["nurse"])
        await page.fill("#wards", "w7")
        await page.click("button[type=submit]")
        await page.wait_for_selector("[data-testid=tile][data-patient=p1]", timeout=10_000)
        await ward.producer.send_many(ward.bus.topics.device_alarms, [(b"p1", start.model_dump_json().encode())])
        item = f"[data-testid=device-alarm][data-alert-id='{device_alert_id(start)}']"  # the monitor's id and the patient
        await page.wait_for_selector(item, timeout=5000)
        text = (await page.inner_text(item)).lower()  # innerText follows the CSS upper-casing of the priority
        assert "low spo2" in text and "monitor pm" in text and "mdc_puls_oxim_sat_o2" in text
        assert "active at the monitor" in text and "does not silence the monitor at the bedside" in text
        note = await page.inner_text("[data-testid=device-alarm-note]")
        assert "does not silence the monitor at the bedside" in note.lower()
        # Kept apart: not in WardWatch's own alarm list.
        assert await page.locator("[data-testid=alarm-list] [data-testid=alarm]").count() == 0
        await page.screenshot(path=str(ARTIFACTS / "nurse-device-alarm.png"), full_page=True)

        await page.click(f"{item} button[data-act=ack]")
        await page.wait_for_selector(f"{item}[data-state=acknowledged]", timeout=3000)
        assert "acknowledged in wardwatch by nurse-tester" in (await page.inner_text(item)).lower()

        silenced = report(10, phase="continue", inactivation="alert-acknowledged")
        await ward.producer.send_many(ward.bus.topics.device_alarms, [(b"p1", silenced.model_dump_json().encode())])
        # (a selector, not a function: the page's CSP forbids evaluating strings)
        await page.wait_for_selector(f"{item} [data-testid=device-alarm-state]:has-text('acknowledged at the monitor')",
                                     timeout=5000)
        end = report(5, phase="end", state="inactive")
        await ward.producer.send_many(ward.bus.topics.device_alarms, [(b"p1", end.model_dump_json().encode())])
        await page.wait_for_selector(item, state="detached", timeout=5000)  # ended, and acknowledged: over
        await browser.close()
