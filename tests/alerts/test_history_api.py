"""The clinician history API on points in the real InfluxDB: JSON, CSV, FHIR, and who may read it."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from wardwatch.lineprotocol import line, vitals_line
from wardwatch.store import InfluxStore

pytestmark = pytest.mark.integration


async def test_history_is_downsampled_exported_and_guarded(ward):
    store = InfluxStore(ward.settings)
    base = 1_700_000_040_000
    lines = [vitals_line("p1", "heart_rate", 70.0 + (i % 10), "mon-1", 70.0 + (i % 10), 0.9, base + 1000 * i)
             for i in range(7200)]  # two hours at 1 Hz
    lines += [line("alerts", {"patient": "p1", "kind": "physiological", "priority": "high", "condition": "spo2_low",
                              "event": "raised"}, {"alert_id": "al-1", "message": "SpO2 86 below 90"}, base + 60_000)]
    await store.write_lines(lines)
    store.close()
    q = {"patient": "p1", "start": base, "stop": base + 7_200_000}
    async with httpx.AsyncClient(base_url=ward.http) as http:
        assert (await http.get("/api/history", params=q)).status_code == 401
        gw = {"Authorization": f"Bearer {ward.tokens['gateway']}"}
        assert (await http.get("/api/history", params=q, headers=gw)).status_code == 403
        auth = {"Authorization": f"Bearer {ward.tokens['clinician']}"}
        r = await http.get("/api/history", params=q, headers=auth)
        assert r.status_code == 200
        h = r.json()
        points = h["vitals"]["heart_rate"]
        assert 0 < len(points) <= 1000 and h["every_ms"] >= 7200  # downsampled by InfluxDB for a chart
        assert all(70 <= p[1] <= 79 for p in points) and len(points) > 900
        assert h["alarms"][0]["condition"] == "spo2_low" and h["alarms"][0]["message"] == "SpO2 86 below 90"
        rows = list(csv.DictReader(io.StringIO((await http.get("/api/history.csv", params=q, headers=auth)).text)))
        assert rows[0]["name"] == "heart_rate" and rows[0]["unit"] == "/min"
        assert len([r for r in rows if r["kind"] == "vital"]) == len(points)
        fhir = (await http.get("/api/history.fhir", params=q, headers=auth)).json()
        assert fhir["resourceType"] == "Bundle" and len(fhir["entry"]) == len(points)
        obs = fhir["entry"][0]["resource"]
        assert obs["code"]["coding"][0] == {"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}
        assert obs["valueQuantity"]["code"] == "/min" and obs["subject"]["reference"] == "Patient/p1"
        assert (await http.get("/api/history", params={"patient": "p1", "start": 5, "stop": 1}, headers=auth)).status_code == 400
        assert (await http.get("/healthz")).status_code == 200
        page = await http.get("/")
        assert page.status_code == 200 and "Nurse station" in page.text


async def test_history_and_exports_answer_503_while_influxdb_is_unreachable_and_log_no_patient(calm_ward, caplog):
    from devservices import free_port

    down = calm_ward.settings.model_copy(update={"influx_url": f"http://127.0.0.1:{free_port()}"})
    calm_ward.service.store = InfluxStore(down, timeout_ms=2000)  # nothing listens there
    auth = {"Authorization": f"Bearer {calm_ward.tokens['nurse']}"}
    caplog.clear()
    async with httpx.AsyncClient(base_url=calm_ward.http) as http:
        for path in ("/api/history", "/api/history.csv", "/api/history.fhir"):
            r = await http.get(path, params={"patient": "p1"}, headers=auth)
            assert r.status_code == 503, (path, r.status_code, r.text)
            assert r.json()["error"] and r.headers["x-frame-options"] == "DENY", path
    logged = [rec for rec in caplog.records if rec.name.startswith("wardwatch") or rec.name.startswith("websockets")]
    assert logged, "the outage is logged"
    for rec in logged:
        text = rec.getMessage() + (rec.exc_text or "") + str(rec.exc_info or "")
        assert "p1" not in text, text


async def test_a_patients_audit_trail_is_whole_however_busy_the_other_patients_are(calm_ward):
    log = calm_ward.service.log
    log.audit("clinician-tester", "clinician", "disable_alarm", "p1", {"condition": "spo2_low", "why": "palliative"})
    log.audit("nurse-tester", "nurse", "acknowledged", "al-1", {"patient": "p1", "cross_ward": False})
    for i in range(1500):  # a busy hospital's rows since, none of them p1's
        log.audit("nurse-tester", "nurse", "acknowledged", f"al-x{i}", {"patient": "p4", "cross_ward": False})
    auth = {"Authorization": f"Bearer {calm_ward.tokens['clinician']}"}
    async with httpx.AsyncClient(base_url=calm_ward.http) as http:
        r = await http.get("/api/audit", params={"patient": "p1"}, headers=auth)
    assert r.status_code == 200
    assert [(row["action"], row["target"]) for row in r.json()] == [("acknowledged", "al-1"), ("disable_alarm", "p1")]
