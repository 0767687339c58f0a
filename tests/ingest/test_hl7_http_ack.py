"""``POST /v1/hl7v2`` answers with HL7 acknowledgements when the request says
``Accept: x-application/hl7-v2+er7`` (JSON otherwise, as before), against the real Kafka.

The messages are the IHE PCD Technical Framework PCD-01 (DEC) ORU^R01 example of
tests/ingest/test_formats.py (``PCD01``; MSH-21-less, OBX-4 hierarchy, MDC units, an unknown MDC
code in OBX 4) with the time moved to now, the same message in enhanced acknowledgement mode
(MSH-15 ``AL``, MSH-16 ``ER`` after HL7 v2.6 chapter 2, tables 0155 and 0008), and an ADT^A01
that the ingest does not take.
"""

from __future__ import annotations

import time

import pytest

from wardwatch.models import Reading, RejectedInput

from .conftest import drain
from .test_formats import PCD01

pytestmark = pytest.mark.integration

ER7 = {"content-type": "application/hl7-v2", "accept": "x-application/hl7-v2+er7"}


def now_pcd01(control: str = "MSG0001", acks: str = "", offset_s: int = 5) -> str:
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(time.time() - offset_s)) + "+0000"
    msg = PCD01.replace("20261124101500+0000", stamp).replace("|MSG0001|P|2.6\r", f"|{control}|P|2.6|||{acks}\r")
    return msg


def acks_of(text: str) -> list[list[list[str]]]:
    """The ACK messages of a body: each a list of segments, each a list of fields."""
    out: list[list[list[str]]] = []
    for seg in filter(None, text.split("\r")):
        fields = seg.split("|")
        if fields[0] == "MSH":
            out.append([])
        out[-1].append(fields)
    return out


def seg(ack: list[list[str]], name: str) -> list[list[str]]:
    return [s for s in ack if s[0] == name]


async def test_acks_per_message_in_order_with_err_segments_and_dead_letters(gateway):
    """Three messages in one body: PCD-01 (original mode) with one unknown code -> AE with an ERR
    naming OBX 4; the same in enhanced mode (MSH-15 AL, MSH-16 ER) -> CA then AE; an ADT^A01 -> AR."""
    adt = now_pcd01("ADT0003").replace("ORU^R01^ORU_R01", "ADT^A01^ADT_A01")
    body = now_pcd01("MSG0001") + now_pcd01("MSG0002", "AL|ER", offset_s=6) + adt
    r = await gateway.client.post("/v1/hl7v2", content=body.encode(), headers=ER7)
    assert r.status_code == 200 and r.headers["content-type"] == "x-application/hl7-v2+er7"
    acks = acks_of(r.text)
    assert [(seg(a, "MSA")[0][1], seg(a, "MSA")[0][2]) for a in acks] == [
        ("AE", "MSG0001"), ("CA", "MSG0002"), ("AE", "MSG0002"), ("AR", "ADT0003")]
    assert all(a[0][8].startswith("ACK^") and a[0][9] for a in acks)  # MSH-9 ACK, MSH-10 a control id of its own
    assert len({a[0][9] for a in acks}) == 4
    [err] = seg(acks[0], "ERR")
    assert err[2] == "OBX^4^3" and err[3].startswith("103^") and err[5] == "unknown_metric^^WARDWATCH"
    assert seg(acks[2], "ERR")[0][2] == "OBX^4^3" and not seg(acks[1], "ERR")
    assert seg(acks[3], "ERR")[0][5] == "unsupported^^WARDWATCH"
    got = [Reading.model_validate_json(m.value) for m in await drain(gateway.bus, gateway.bus.topics.readings, 4)]
    assert sorted((x.patient, x.device, x.metric.value, x.value) for x in got) == sorted(
        [("p1", "mon-1", "spo2", 96.0), ("p1", "mon-1", "heart_rate", 72.0)] * 2)
    dead = [RejectedInput.model_validate_json(m.value) for m in await drain(gateway.bus, gateway.bus.topics.deadletter, 3)]
    assert sorted(d.reason for d in dead) == ["unknown_metric", "unknown_metric", "unsupported"]
    assert all(d.source == "http:hl7v2" for d in dead)


async def test_a_body_that_is_no_hl7_is_answered_ae_and_json_stays_the_default(gateway):
    """Not HL7 at all: AE with an ERR (as the MLLP listener answers it: resending will not help)."""
    r = await gateway.client.post("/v1/hl7v2", content=b"\x00\xff garbage", headers=ER7)
    assert r.status_code == 200 and r.headers["content-type"] == "x-application/hl7-v2+er7"
    [ack] = acks_of(r.text)
    assert seg(ack, "MSA")[0][1] == "AE" and seg(ack, "ERR")[0][5] == "schema^^WARDWATCH"
    r = await gateway.client.post("/v1/hl7v2", content=now_pcd01().encode(), headers={"content-type": "application/hl7-v2"})
    assert r.status_code == 207 and r.json()["accepted"] == 2  # no Accept: the JSON answer, as before
    assert len(await drain(gateway.bus, gateway.bus.topics.deadletter, 2)) == 2


async def test_kafka_trouble_is_answered_ar_with_retry_after(gateway):
    async def broken(*a, **k):
        raise ConnectionError("broker gone")

    gateway.app.state.ingestor.producer.send_many = broken
    r = await gateway.client.post("/v1/hl7v2", content=now_pcd01("MSG0009").encode(), headers=ER7)
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    [ack] = acks_of(r.text)
    assert seg(ack, "MSA")[0][1:3] == ["AR", "MSG0009"]


async def test_a_monitors_alarm_posted_over_http_goes_to_the_device_alarms_topic_with_its_readings(gateway):
    """ORU^R40 (IHE PCD-04, the Mindray example of tests/ingest/test_hl7_alarms.py) in the same body as a
    PCD-01 ORU^R01: the alarm is acknowledged ACK^R40 AA and lands on the device-alarms topic, as it
    would through the MLLP listener; the readings on the readings topic; neither in the other's place."""
    from wardwatch.models import DeviceAlarm

    from .test_hl7_alarms import mindray_spo2_low

    when = time.strftime("%Y%m%d%H%M%S", time.gmtime(time.time() - 5)) + "+0000"
    alarm = (mindray_spo2_low(when=when, pid="p2^^^Hospital^MR")  # original acknowledgement mode (AA)
             .replace("|ORU^R40^ORU_R40|1|", "|ORU^R40^ORU_R40|ALM1|").replace("|AL|NE|", "|||"))
    body = alarm + "\r" + now_pcd01("MSG0001")
    r = await gateway.client.post("/v1/hl7v2", content=body.encode(), headers=ER7)
    assert r.status_code == 200
    acks = acks_of(r.text)
    assert [(a[0][8], seg(a, "MSA")[0][1], seg(a, "MSA")[0][2]) for a in acks][0] == ("ACK^R40^ACK", "AA", "ALM1")
    (got,) = [DeviceAlarm.model_validate_json(m.value) for m in await drain(gateway.bus, gateway.bus.topics.device_alarms, 1)]
    assert (got.patient, got.event, got.phase, got.text) == ("p2", "MDC_EVT_LO", "start", "Low SpO2")
    readings = [Reading.model_validate_json(m.value) for m in await drain(gateway.bus, gateway.bus.topics.readings, 2)]
    assert {x.patient for x in readings} == {"p1"} and len(readings) == 2

    # The JSON answer counts the alarm among the accepted items, by its event id.
    r = await gateway.client.post("/v1/hl7v2", content=alarm.replace("|ALM1|", "|ALM2|").encode(),
                                  headers={"content-type": "application/hl7-v2"})
    assert r.status_code == 200 and r.json()["accepted"] == 1 and r.json()["items"][0]["id"] == got.event_id
