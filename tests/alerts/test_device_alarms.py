"""The monitors' own alarms (IHE PCD-04, ORU^R40) end to end against the real Kafka: an MLLP client
sends an alarm's start (twice: a resend) and its end; each is acknowledged AA after Kafka has it;
the alert service shows the device alarm, once, and its end to the nurse of that ward and to no
other ward's nurse; a nurse's acknowledgement in WardWatch is audited and says the monitor is not
silenced; a bad alarm is on the dead-letter topic with its reason and the ACK says so.

The messages follow the Mindray eGateway SpO2-low example of IHE ACM as relayed by Philips
IntelliBridge (see tests/ingest/test_hl7_alarms.py), with current times and this test's patients.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import orjson
import pytest

from alerts.history import patient_history
from ingest.mllp import MLLPServer, frame
from ingest.server import create_app
from wardwatch.auth import TokenStore
from wardwatch.models import now_ms

from ..ingest.conftest import drain
from ..ingest.test_hl7_alarms import mindray_spo2_low
from ..ingest.test_mllp import read_acks
from .conftest import collect_events, connect

pytestmark = pytest.mark.integration


def hl7_time(ago_s: int) -> str:
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=ago_s)).strftime("%Y%m%d%H%M%S") + "+0000"


def r40(patient: str, control: str, ago_s: int, **kw) -> str:
    text = mindray_spo2_low(when=hl7_time(ago_s), pid=f"{patient}^^^Hospital^MR", **kw)
    return text.replace("|ORU^R40^ORU_R40|1|", f"|ORU^R40^ORU_R40|{control}|").replace("|AL|NE|", "|||")


@pytest.fixture
async def mllp_ingest(ward):
    app = create_app(ward.settings, ward.bus)
    async with app.router.lifespan_context(app):
        server = await MLLPServer(ward.settings, app.state.ingestor, app.state.view, app.state.metrics).start("127.0.0.1", 0)
        try:
            yield server
        finally:
            await server.stop()


async def test_mllp_alarm_start_and_end_reach_the_wards_nurse_once_and_no_other_ward(ward, mllp_ingest):
    w8_token = TokenStore(ward.settings.tokens_path).create("nurse", "nurse-w8", wards=("w8",))[0]
    n7, snap7 = await connect(ward, ward.tokens["nurse"], wards=("w7",))
    n8, _ = await connect(ward, w8_token, wards=("w8",))
    assert snap7["alarms"] == []
    reader, writer = await asyncio.open_connection("127.0.0.1", mllp_ingest.port)
    start = r40("p1", "A1", 30)
    writer.write(frame(start) + frame(start.replace("|A1|", "|A2|")))  # the start, and the same report resent
    acks = await read_acks(reader, 2)
    assert [(a["msa"], a["control"], a["type"]) for a in acks] == [("AA", "A1", "ACK^R40^ACK"), ("AA", "A2", "ACK^R40^ACK")]

    (shown,) = await collect_events(n7, 1)
    assert shown["type"] == "raised" and shown["ward"] == "w7"
    alert = shown["alert"]
    assert alert["kind"] == "device" and alert["patient"] == "p1" and alert["state"] == "active"
    m = alert["monitor"]
    assert (m["event"], m["source"], m["device_priority"], m["state"], m["text"]) == (
        "MDC_EVT_LO", "MDC_PULS_OXIM_SAT_O2", "PM", "active", "Low SpO2")
    assert m["device"] == "x_F1519EFX:SHENZHEN_5FDEVICE:mindray.com:DNS"

    # A nurse acknowledges it in WardWatch: audited, and said not to silence the monitor.
    await n7.send(orjson.dumps({"type": "ack", "alert_id": alert["id"]}).decode())
    (acked,) = await collect_events(n7, 1)
    assert acked["type"] == "acknowledged" and acked["alert"]["state"] == "acknowledged"
    row = next(r for r in ward.service.log.audit_rows() if r["target"] == alert["id"])
    detail = orjson.loads(row["detail"])
    assert row["action"] == "acknowledged" and detail["device_alarm"] is True and "not silenced" in detail["note"]
    # Pausing the monitor's audio from WardWatch is refused: only the bedside can.
    await n7.send(orjson.dumps({"type": "pause", "alert_id": alert["id"]}).decode())
    reply = orjson.loads(await asyncio.wait_for(n7.recv(), 5))
    while reply["type"] in ("batch", "heartbeat", "monitoring"):
        reply = orjson.loads(await asyncio.wait_for(n7.recv(), 5))
    assert reply["type"] == "error" and reply["code"] == 409

    writer.write(frame(r40("p1", "A3", 10, phase="end", state="inactive")))
    (ack,) = await read_acks(reader, 1)
    assert (ack["msa"], ack["control"]) == ("AA", "A3")
    (ended,) = await collect_events(n7, 1)
    assert ended["type"] == "cleared" and ended["alert"]["id"] == alert["id"]
    assert ended["alert"]["monitor"]["state"] == "ended" and ended["alert"]["state"] == "resolved"

    await asyncio.sleep(1.0)  # a repeat, or a leak to the other ward, would have arrived by now
    assert await collect_events(n7, 1, timeout=0.5) == []
    assert await collect_events(n8, 1, timeout=0.5) == []

    # The clinician's history has the monitor's alarm once, from its start to its end, and the
    # nurse's acknowledgement (stored in InfluxDB like every action), in time order.
    clinician = {"Authorization": f"Bearer {ward.tokens['clinician']}"}
    q = {"patient": "p1", "start": now_ms() - 300_000, "stop": now_ms() + 60_000}
    async with httpx.AsyncClient(base_url=ward.http) as http:
        for _ in range(50):
            hist = (await http.get("/api/history", params=q, headers=clinician)).json()
            mine = [a for a in hist["alarms"] if a["alert_id"] == alert["id"]]
            if any(a["event"] == "acknowledged" for a in mine):
                break
            await asyncio.sleep(0.2)
        assert [(a["event"], a["kind"]) for a in mine] == [("raised", "device"), ("cleared", "device"),
                                                            ("acknowledged", "device")]
        (ep,) = [e for e in hist["episodes"] if e["alert_id"] == alert["id"]]
        assert ep["title"] == "Monitor: Low SpO2" and ep["end"] is not None and ep["start"] < ep["end"]
        csv_text = (await http.get("/api/history.csv", params=q, headers=clinician)).text
        assert csv_text.count("alarm:raised,device:MDC_EVT_LO") == 1

    # On Kafka: the three reports on the device-alarms topic, nothing on the alerts topic.
    reports = [orjson.loads(r.value) for r in await drain(ward.bus, ward.bus.topics.device_alarms, 3)]
    assert [r["phase"] for r in reports] == ["start", "start", "end"] and {r["patient"] for r in reports} == {"p1"}
    writer.close()
    await n7.close()
    await n8.close()


async def test_an_alarm_for_a_patient_not_admitted_is_dead_lettered_and_the_ack_says_so(ward, mllp_ingest):
    reader, writer = await asyncio.open_connection("127.0.0.1", mllp_ingest.port)
    writer.write(frame(r40("nobody", "B1", 30)))
    (ack,) = await read_acks(reader, 1)
    writer.close()
    assert ack["msa"] == "AE" and ack["control"] == "B1"
    (err,) = ack["err"]
    assert err[2] == "PID^1^3" and err[5].startswith("unknown_patient")
    (dead,) = [orjson.loads(r.value) for r in await drain(ward.bus, ward.bus.topics.deadletter, 1)]
    assert dead["reason"] == "unknown_patient" and dead["source"] == "mllp:hl7v2"


async def test_the_monitors_alarms_are_stored_in_influxdb_and_the_history_keeps_them_after_the_log_forgets(ward, mllp_ingest):
    reader, writer = await asyncio.open_connection("127.0.0.1", mllp_ingest.port)
    writer.write(frame(r40("p2", "C1", 40)) + frame(r40("p2", "C2", 20, phase="end", state="inactive")))
    assert [a["msa"] for a in await read_acks(reader, 2)] == ["AA", "AA"]
    writer.close()

    # The instance that runs the timers stores the monitor's start and end in InfluxDB.
    store, start, stop = ward.service.store, now_ms() - 300_000, now_ms() + 60_000
    for _ in range(100):
        rows = await store.query_series("alerts", "p2", start, stop, fields=["alert_id"], tags={"kind": "device"})
        if len(rows) >= 2:
            break
        await asyncio.sleep(0.2)
    assert [(r["event"], r["condition"]) for r in rows] == [("raised", "device:MDC_EVT_LO"),
                                                            ("cleared", "device:MDC_EVT_LO")]
    assert rows[0]["value"] == rows[1]["value"] and rows[0]["value"].startswith("da-")
    ok, health = ward.service.health()
    assert health["monitor_history"]["writes"] is True and ok

    # Once the alert log's retention has dropped them, the history reads them from InfluxDB alone.
    hist = await patient_history(store, "p2", start, stop, monitor_events=[])
    (ep,) = [e for e in hist["episodes"] if e["kind"] == "device"]
    assert ep["title"] == "Monitor: Low SpO2" and ep["start"] < ep["end"]
    # Meanwhile the API, which reads both, shows each report once.
    clinician = {"Authorization": f"Bearer {ward.tokens['clinician']}"}
    async with httpx.AsyncClient(base_url=ward.http) as http:
        api = (await http.get("/api/history", params={"patient": "p2", "start": start, "stop": stop},
                              headers=clinician)).json()
    assert [a["event"] for a in api["alarms"] if a["kind"] == "device"] == ["raised", "cleared"]
