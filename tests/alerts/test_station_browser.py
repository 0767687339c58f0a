"""The patient chart and the ward screen in a real headless Chromium, on the real Kafka and InfluxDB.

MIMIC-II s25047 is replayed through the detector engine and its output stored as the worker
stores it; a clinician opens its chart from the nurse page, and the nurse page is driven through
a ward's alarms, stale values and a dropped feed. axe-core (vendored, tests/alerts/vendor/) checks
both pages. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from wardwatch import alarm_texts
from wardwatch.alarm_rules import DEFAULT_RULES
from wardwatch.lineprotocol import retraction_line
from wardwatch.models import Alert, AlertEvent, AlertEventType, AlertKind, PatientRecord, Priority, VitalsSnapshot, alert_id
from wardwatch.registry import Registry
from wardwatch.store import InfluxStore

from .test_nurse_page_browser import ARGS, ARTIFACTS, CHROMIUM, replay_s25047

pytestmark = [pytest.mark.integration, pytest.mark.browser]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
RULE = {r.condition: r for r in DEFAULT_RULES}


async def until(page, expression: str, timeout: float = 10.0) -> None:
    """Wait until a JS expression is true (wait_for_function evaluates strings, which the pages' CSP forbids)."""
    deadline = time.monotonic() + timeout
    while not await page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        await asyncio.sleep(0.1)


async def axe_violations(page) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is now (injected through the
    devtools protocol, as the pages' CSP refuses inline scripts)."""
    if not await page.evaluate("typeof axe !== 'undefined'"):
        await page.evaluate(AXE.read_text() + "\n;0")
    result = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


async def sign_in(page, base: str, token: str, wards: str = "w7") -> None:
    await page.goto(base + "/")
    await page.fill("#token", token)
    await page.fill("#wards", wards)
    await page.click("button[type=submit]")
    await page.wait_for_selector("[data-testid=tile]", timeout=45_000)


def event(patient: str, condition: str, message: str, at: int, kind=AlertKind.physiological,
          priority=Priority.high, values=None) -> AlertEvent:
    aid = alert_id(patient, condition, at - 15_000)
    alert = Alert(id=aid, patient=patient, kind=kind, priority=priority, condition=condition, message=message,
                  values=values or {}, onset=at - 15_000, raised_at=at, updated_at=at, latched=priority is Priority.high)
    return AlertEvent(event_id=AlertEvent.make_id(aid, AlertEventType.raised, at), type=AlertEventType.raised,
                      alert=alert, at=at)


async def test_a_clinician_reads_the_chart_of_a_replayed_real_patient(ward, shared_data):
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    out = replay_s25047(shared_data, "p1")
    desat = next(e for e in out.events if e.alert.condition == "spo2_low" and e.type is AlertEventType.raised)
    store = InfluxStore(ward.settings)
    # The monitor withdrew one SpO2 reading (its reason as a device wrote it: text, never markup).
    await store.write_lines(out.lines + [retraction_line("p1", "spo2", "<b>HL7 OBX-11 W</b>", desat.at)])
    store.close()
    off = [e for e in out.events if e.alert.condition == "sensor_off_spo2"]
    off_start, off_end = off[-2].alert.onset, off[-1].at  # the last time the SpO2 probe was off
    await ward.producer.send_many(ward.bus.topics.vitals, [(s.patient.encode(), s.model_dump_json().encode())
                                                            for s in out.snapshots[-2:]])
    # The monitor's own alarm a second after WardWatch's (in the alert service's view of the alert
    # log, where the fold of a PCD-04 report puts it: tests/alerts/test_device_alarms.py).
    monitor = event("p1", "device:MDC_EVT_LO", alarm_texts.device_alarm("Low SpO2"), desat.at + 1000,
                    kind=AlertKind.device, priority=Priority.medium)
    ward.service.log.append(monitor, "w7")

    # The store averages the clean field on its own: a sensor-off zero never enters the clean line,
    # it is a mark. 10-minute windows over the probe-off stretch: the clean mean stays up where the
    # raw mean (which takes the zeros) drops.
    q = {"patient": "p1", "start": off_start - 3600_000, "stop": off_end + 600_000, "every": 600_000}
    async with httpx.AsyncClient(base_url=ward.http, headers={"Authorization": f"Bearer {ward.tokens['clinician']}"}) as http:
        h = (await http.get("/api/history", params=q)).json()
        raw, clean = dict(map(tuple, h["vitals"]["spo2"])), dict(map(tuple, h["clean"]["spo2"]))
        straddle = [t for t in raw if off_start <= t and t - 600_000 <= off_end]
        # How far the raw mean drops depends on where the epoch-aligned windows fall on the stretch
        # (the time of the run), so the check is that the clean mean never takes a zero in.
        assert straddle and all(t not in clean or clean[t] >= raw[t] for t in straddle), (straddle, raw, clean)
        assert min(clean.values()) > 10
        # At the readings' own resolution, the off stretch has no clean value and its zeros are marks.
        q = {"patient": "p1", "start": off_start, "stop": off_end - 60_000}
        h = (await http.get("/api/history", params=q)).json()
        assert h["every_ms"] is None and h["clean"].get("spo2", []) == []
        assert h["marks"]["spo2"] and all(v < 10 for _, v in h["marks"]["spo2"])

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await (await browser.new_context(viewport={"width": 1440, "height": 1000})).new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await sign_in(page, ward.http, ward.tokens["clinician"])
        # One click from the tile, the same login, the patient chosen from the ward list.
        await page.click("[data-testid=tile][data-patient=p1] [data-testid=tile-chart]")
        await page.wait_for_selector("[data-testid=alarm-marker]", timeout=45_000)
        assert await page.input_value("[data-testid=patient-select]") == "p1"
        options = await page.eval_on_selector_all("[data-testid=patient-select] option", "os => os.map(o => o.value)")
        assert set(options) == {"p0", "p1", "p2"}  # ward w7 only
        assert await page.locator("#token").count() == 0, "no token field: the nurse station's login is used"

        # Axes with units and clinical names.
        charts = await page.eval_on_selector_all(
            "[data-testid=chart]", "cs => cs.map(c => [c.querySelector('figcaption').textContent, c.dataset.axisX, c.dataset.axisY, c.querySelectorAll('.u-axis').length])")
        by_title = {c[0]: c for c in charts}
        assert {"Heart rate (/min)", "SpO₂ (%)", "Respiration rate (/min)", "Systolic blood pressure (mmHg)"} <= set(by_title)
        assert by_title["SpO₂ (%)"][1:] == ["Time", "%", 2]
        assert not any("_" in c[0] for c in charts), [c[0] for c in charts]
        # Every value axis reads as distinct numbers, however small the range (the risk is ~0.005).
        # (uPlot draws the labels on a canvas; the axis keeps the texts it drew.)
        ticks = await page.evaluate("state.charts.map(u => [u.root.parentElement.querySelector('figcaption').textContent,"
                                    " u.axes[1]._values])")
        for title, labels in ticks:
            assert labels and len(labels) >= 2 and len(set(labels)) == len(labels), (title, labels)
        # And for a range as narrow as a low risk's, which the data above may not have had.
        narrow = await page.evaluate("""async () => {
            const el = document.createElement('div'); document.body.appendChild(el);
            const t = state.stop / 1000, ys = [0.0052, 0.0054, 0.0056, 0.0058];
            const u = makeChart(el, 'narrow', 'score', [[t - 180, t - 120, t - 60, t], ys], [{label: 'narrow'}], []);
            await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));  // drawn
            const out = [u.axes[1]._values, u.axes[1]._splits];
            state.charts.splice(state.charts.indexOf(u), 1); u.destroy(); el.remove(); return out;
        }""")
        labels, splits = narrow
        assert len(labels) >= 3 and len(set(labels)) == len(labels), labels
        assert all(abs(float(t) - v) < 1e-9 for t, v in zip(labels, splits)), narrow

        # The desaturation's alarm marker at the stored event's time (within a minute).
        marker = page.locator(f"[data-testid=alarm-marker][data-alert-id='{desat.alert.id}']").first
        assert abs(int(await marker.get_attribute("data-time")) - desat.at) <= 60_000
        assert "high priority alarm: SpO₂ low" in await marker.get_attribute("aria-label")
        # The chart says which reading it leaves out, and why.
        note = page.locator("[data-testid=withdrawn]")
        assert await note.is_visible()
        text = await note.inner_text()
        assert "1 reading withdrawn by the sender: SpO₂ at " in text and "(<b>HL7 OBX-11 W</b>)" in text, text
        assert await note.locator("b").count() == 0
        await page.screenshot(path=str(ARTIFACTS / "chart-s25047.png"), full_page=True)

        # The sensor-off stretch is a gap in the clean line (null), with the raw zeros as marks, not a zero.
        gap = await page.evaluate("""([t0, t1]) => {
            const u = state.charts.find(c => c.root.parentElement.querySelector('figcaption').textContent === 'SpO₂ (%)');
            const xs = u.data[0], idx = xs.map((x, i) => i).filter(i => xs[i] * 1000 >= t0 && xs[i] * 1000 <= t1);
            return {n: idx.length, clean: idx.map(i => u.data[1][i]), marks: idx.map(i => u.data[2][i])};
        }""", [off_start + 10_000, off_end - 60_000])
        assert gap["n"] > 0 and all(v is None for v in gap["clean"]), gap
        assert any(m is not None and m < 10 for m in gap["marks"]), gap

        # Zooming in asks the store again: the resolution follows the zoom.
        await page.click("button[data-range='21600000']")
        await until(page, "document.querySelector('#status').dataset.every > 10000", 10)
        wide = int(await page.get_attribute("#status", "data-every"))
        over = page.locator("[data-testid=chart] .u-over").first
        box = await over.bounding_box()
        await page.mouse.move(box["x"] + box["width"] * 0.80, box["y"] + 30)
        await page.mouse.down()
        await page.mouse.move(box["x"] + box["width"] * 0.84, box["y"] + 30, steps=4)
        await page.mouse.up()
        await until(page, f"Number(document.querySelector('#status').dataset.every) < {wide}", 10)
        narrow = int(await page.get_attribute("#status", "data-every"))
        assert narrow < wide / 5, (wide, narrow)
        await page.screenshot(path=str(ARTIFACTS / "chart-zoomed.png"), full_page=False)

        # NEWS2 with its reasons on hover.
        await page.click("button[data-range='21600000']")
        await page.wait_for_selector("[data-testid=chart] figcaption:text('NEWS2 (points)')")
        news = page.locator("[data-testid=chart]", has=page.locator("figcaption:text('NEWS2 (points)')")).locator(".u-over")
        nbox = await news.bounding_box()
        await page.mouse.move(nbox["x"] + nbox["width"] * 0.9, nbox["y"] + nbox["height"] / 2)
        await until(page, "document.querySelector('[data-testid=score-reasons]').textContent.includes(' – ')", 5)
        reasons = await page.inner_text("[data-testid=score-reasons]")
        assert reasons.startswith("NEWS2 (points) ") and ("points for " in reasons or "not measured: " in reasons), reasons
        assert "_" not in reasons and "+" not in reasons, reasons  # words, not the stage's short forms

        # A clinician changes a limit with a reason; the audit trail shows it.
        await page.select_option("#limit-cond", "spo2:low")
        await page.fill("#limit-value", "88")
        await page.fill("#limit-why", "COPD, target 88-92 %")
        await page.click("#limit-form button[type=submit]")
        await page.wait_for_selector("[data-testid=limit-status]:text('Limit changed')", timeout=45_000)
        await page.wait_for_selector("[data-testid=audit-row]:text('COPD, target 88-92 %')", timeout=45_000)
        row = await page.inner_text("[data-testid=audit-row]:text('COPD')")
        assert "clinician-tester (clinician)" in row and '"low":88' in row
        # The table may still be the render of a load that was read before the change; it follows.
        await page.wait_for_selector("#limits tr[data-condition=spo2_low]:has-text('below 88')", timeout=10_000)
        # The alarm's own trail: raised by the detector, acknowledged by whom.
        await page.click(f"#alarms tr[data-alert-id='{desat.alert.id}']")
        await page.wait_for_selector("[data-testid=audit-row]:text('raised')")
        # The monitor's own alarm is in the table too, named as the catalogue names it.
        row = await page.inner_text(f"#alarms tr[data-alert-id='{monitor.alert.id}']")
        assert "Monitor alarm" in row and "Monitor: Low SpO2" in row and "device:" not in row.split("Monitor: ")[0], row
        await page.screenshot(path=str(ARTIFACTS / "chart-limit-changed.png"), full_page=True)

        # Export: CSV and FHIR files, and a PNG of the charts.
        for button, suffix in (("#csv", ".csv"), ("#fhir", ".fhir.json"), ("#png", ".png")):
            async with page.expect_download() as dl:
                await page.click(button)
            d = await dl.value
            assert d.suggested_filename == f"p1-chart{suffix}"
            assert Path(await d.path()).stat().st_size > 100

        assert await axe_violations(page) == []
        assert errors == []
        await browser.close()


async def test_the_ward_screen_groups_alarms_by_bed_and_stays_honest(calm_ward):
    ward = calm_ward
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    now = int(time.time() * 1000)
    spo2 = event("p1", "spo2_low", alarm_texts.limit_raised(RULE["spo2_low"], 86, 90), now - 120_000)
    probe = event("p1", "sensor_off_heart_rate", alarm_texts.sensor_off("heart_rate", 10_000), now - 60_000,
                  kind=AlertKind.technical, priority=Priority.medium)
    hr = event("p2", "hr_high", alarm_texts.limit_raised(RULE["hr_high"], 142, 130), now - 300_000, priority=Priority.medium)
    other_ward = event("p4", "spo2_low", alarm_texts.limit_raised(RULE["spo2_low"], 80, 90), now - 10_000)
    vitals = [VitalsSnapshot(patient="p1", ts=now, values={"heart_rate": 0.0, "spo2": 86.0, "resp_rate": 22.0},
                             value_ts={"heart_rate": now - 20_000, "spo2": now, "resp_rate": now},
                             stale_metrics=["heart_rate"], news2=6),
              VitalsSnapshot(patient="p2", ts=now, values={"heart_rate": 142.0, "spo2": 97.0, "sbp": 118.0},
                             value_ts={"heart_rate": now, "spo2": now, "sbp": now - 3 * 3600_000}, news2=3)]
    await ward.producer.send_many(ward.bus.topics.vitals, [(v.patient.encode(), v.model_dump_json().encode()) for v in vitals])
    await ward.producer.send_many(ward.bus.topics.alerts, [(e.alert.patient.encode(), e.to_json()) for e in (hr, spo2, probe, other_ward)])

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await (await browser.new_context(viewport={"width": 1440, "height": 900})).new_page()
        await sign_in(page, ward.http, ward.tokens["nurse"])
        await page.wait_for_selector(f"[data-testid=alarm][data-alert-id='{probe.alert.id}']", timeout=45_000)

        # Grouped by bed, the bed with the high alarm first; p4 (ward w8) not here.
        groups = await page.eval_on_selector_all("[data-testid=bed-group]", "gs => gs.map(g => g.dataset.patient)")
        assert groups == ["p1", "p2"]
        rows = await page.eval_on_selector_all("[data-testid=bed-group][data-patient=p1] [data-testid=alarm]",
                                               "as => as.map(a => [a.dataset.alertId, a.className])")
        assert [r[0] for r in rows] == [spo2.alert.id, probe.alert.id]
        assert "technical" in rows[1][1] and "technical" not in rows[0][1]
        counts = {p: await page.inner_text(f"[data-testid=count-{p}]") for p in ("high", "medium", "low", "technical")}
        assert counts == {"high": "▲ 1 high", "medium": "◆ 1 medium", "low": "● 0 low", "technical": "⚙ 1 technical"}
        texts = await page.eval_on_selector_all("[data-testid=alarm-text]", "ts => ts.map(t => t.textContent)")
        assert "SpO₂ low: 86% for 15 s (alarm limit 90%)" in texts
        assert "ECG leads off or disconnected: no valid heart rate for 10 s" in texts
        assert await page.evaluate("window.wwLastSound") == "high"

        # Sensor off shows no number; a value older than its metric's interval is greyed with its age.
        hr_cell = page.locator("[data-testid=tile][data-patient=p1] [data-testid=val-heart_rate]")
        assert await hr_cell.get_attribute("data-state") == "sensor-off"
        assert (await hr_cell.locator("[data-testid=v-heart_rate]").inner_text()) == "—"
        sbp_cell = page.locator("[data-testid=tile][data-patient=p2] [data-testid=val-sbp]")
        assert await sbp_cell.get_attribute("data-state") == "old" and "3 h old" in await sbp_cell.inner_text()
        assert await page.locator("[data-testid=tile][data-patient=p2] [data-testid=val-heart_rate]").get_attribute("data-state") == "current"
        await page.screenshot(path=str(ARTIFACTS / "station-grouped.png"))
        assert await axe_violations(page) == []

        # An alarm raised between render and click stays unacknowledged: the nurse did not see it.
        await asyncio.sleep(2)
        button = "[data-testid=bed-group][data-patient=p1] [data-testid=ack-bed]"
        await page.hover(button)
        late = event("p1", "rr_low", alarm_texts.limit_raised(RULE["rr_low"], 6, 8), int(time.time() * 1000))
        await ward.producer.send_many(ward.bus.topics.alerts, [(b"p1", late.to_json())])
        await page.wait_for_selector(f"[data-testid=alarm][data-alert-id='{late.alert.id}']", timeout=45_000)
        await page.click(button)
        for seen in (spo2, probe):
            await page.wait_for_selector(f"[data-testid=alarm][data-alert-id='{seen.alert.id}'][data-state=acknowledged]", timeout=45_000)
        await asyncio.sleep(1.5)
        assert await page.get_attribute(f"[data-testid=alarm][data-alert-id='{late.alert.id}']", "data-state") == "active"
        assert await page.get_attribute(f"[data-testid=alarm][data-alert-id='{hr.alert.id}']", "data-state") == "active"
        await page.screenshot(path=str(ARTIFACTS / "station-acknowledged.png"))

        # The feed drops: the page says the feed is down (not the devices), greys every value, sounds.
        ward.service.stop.set()
        await page.wait_for_selector("[data-testid=stale-banner]:not(.hidden)", timeout=45_000)
        banner = await page.inner_text("[data-testid=stale-banner]")
        assert "FEED DOWN" in banner and "check device" not in banner.lower()
        await page.wait_for_selector("[data-testid=tile][data-patient=p2] [data-testid=patient-feed-down]")
        assert await page.locator("[data-testid=patient-stale]").count() == 0
        assert await page.locator("[data-testid=tile][data-patient=p2] [data-testid=val-heart_rate]").get_attribute("data-state") == "old"
        assert await page.evaluate("window.wwLastSound") == "feed"
        await page.screenshot(path=str(ARTIFACTS / "station-feed-down.png"))
        await browser.close()


async def test_forty_beds_fit_a_wall_screen_and_the_phone_layout_works(calm_ward):
    ward = calm_ward
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    registry = Registry(ward.settings.registry_path, ward.bus)
    await registry.admit_many([PatientRecord(patient=f"b{i:02d}", ward="w7", bed=str(10 + i)) for i in range(37)])
    now = int(time.time() * 1000)
    vitals = [VitalsSnapshot(patient=p, ts=now, values={"heart_rate": 60.0 + i, "spo2": 95.0, "resp_rate": 16.0, "sbp": 121.0,
                                                        "temperature": 37.2, "pulse_rate": 61.0},
                             value_ts={}, news2=i % 8, trend={"heart_rate": [60, 62, 61, 64], "spo2": [95, 96, 95, 94]})
              for i, p in enumerate([f"b{i:02d}" for i in range(37)] + ["p0", "p1", "p2"])]
    await ward.producer.send_many(ward.bus.topics.vitals, [(v.patient.encode(), v.model_dump_json().encode()) for v in vitals])
    await ward.producer.send_many(ward.bus.topics.alerts, [(b"b03", event("b03", "hr_high", alarm_texts.limit_raised(
        RULE["hr_high"], 150, 130), now - 30_000, priority=Priority.medium).to_json())])

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        wall = await (await browser.new_context(viewport={"width": 1920, "height": 1080})).new_page()
        await sign_in(wall, ward.http, ward.tokens["nurse"])
        await until(wall, "document.querySelectorAll('[data-testid=tile]').length === 40", 15)
        await wall.wait_for_selector("[data-testid=bed-group][data-patient=b03]", timeout=45_000)
        size = await wall.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        assert size[0] <= 1920 and size[1] <= 1080, size
        edges = await wall.evaluate("[...document.querySelectorAll('[data-testid=tile]')].map(t => {"
                                    " const r = t.getBoundingClientRect(); return [r.right, r.bottom]; })")
        assert len(edges) == 40 and all(x <= 1920 and y <= 1080 for x, y in edges), edges
        # Readable: the values are at least 16 px high on the wall screen.
        px = await wall.evaluate("parseFloat(getComputedStyle(document.querySelector('.tile .v')).fontSize)")
        assert px >= 16, px
        await wall.screenshot(path=str(ARTIFACTS / "station-40-beds-1920x1080.png"))

        phone = await (await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)).new_page()
        await sign_in(phone, ward.http, ward.tokens["nurse"])
        await phone.wait_for_selector("[data-testid=bed-group][data-patient=b03]", timeout=45_000)
        header = await phone.eval_on_selector("header", "h => [h.getBoundingClientRect().height, h.scrollWidth]")
        assert header[0] < 50 and header[1] <= 390, header  # one line, no overflow
        assert await phone.evaluate("document.documentElement.scrollWidth") <= 390
        alarm_top, tiles_top = await phone.evaluate("['alarm-list', 'tiles'].map(id => document.getElementById(id).getBoundingClientRect().top)")
        assert alarm_top < tiles_top, "on a walk the alarms come first"
        # Keyboard: Tab reaches the bed's acknowledge button.
        for _ in range(12):
            await phone.keyboard.press("Tab")
            if await phone.evaluate("document.activeElement.dataset.testid") == "ack-bed":
                break
        assert await phone.evaluate("document.activeElement.dataset.testid") == "ack-bed"
        await phone.screenshot(path=str(ARTIFACTS / "station-phone-390.png"), full_page=True)
        assert await axe_violations(phone) == []
        await browser.close()


async def test_a_technical_alarm_left_alone_escalates_and_stays_technical(ward):
    from playwright.async_api import async_playwright

    now = int(time.time() * 1000)
    probe = event("p1", "sensor_off_spo2", alarm_texts.sensor_off("spo2", 10_000), now - 5_000,
                  kind=AlertKind.technical, priority=Priority.medium)
    await ward.producer.send_many(ward.bus.topics.alerts, [(b"p1", probe.to_json())])
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await (await browser.new_context(viewport={"width": 1440, "height": 900})).new_page()
        await sign_in(page, ward.http, ward.tokens["nurse"])
        row = f"[data-testid=alarm][data-alert-id='{probe.alert.id}']"
        await page.wait_for_selector(row, timeout=45_000)
        # An unmonitored patient fails loud: the technical alarm escalates like any other (high, ↑1) ...
        await page.wait_for_selector(f"{row}.high", timeout=45_000)
        assert "↑" in await page.inner_text(f"{row} .prio")
        # ... and is still drawn as technical, counted apart, not as the patient's red.
        assert "technical" in await page.get_attribute(row, "class")
        assert await page.inner_text("[data-testid=count-technical]") == "⚙ 1 technical"
        assert await page.inner_text("[data-testid=count-high]") == "▲ 0 high"
        await browser.close()
