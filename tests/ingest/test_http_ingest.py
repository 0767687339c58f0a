"""The HTTP endpoint with the real Kafka: formats round-trip to the topic, reasons item by item, roles."""

from __future__ import annotations

import time

import orjson
import pytest

from wardwatch.models import Reading, RejectedInput

from .conftest import drain
from .test_formats import PCD01

pytestmark = pytest.mark.integration


def reading(patient="p1", device="mon-1", metric="heart_rate", value=72, unit="/min", ts=None, **kw):
    return {"patient": patient, "device": device, "metric": metric, "value": value, "unit": unit,
            "ts": ts or int(time.time() * 1000) - 1000, **kw}


async def test_json_batch_is_accepted_item_by_item_and_lands_on_the_topics(gateway):
    now = int(time.time() * 1000)
    batch = [reading(ts=now - 2000), reading(metric="temperature", value=98.6, unit="[degF]", ts=now - 2000),
             reading(metric="spo2", value=140, unit="%"), reading(ts=now + 3600_000),
             reading(patient="stranger", device="mon-9"), reading(device="mon-2"),
             reading(metric="glucose"), reading(ts=now - 2000)]
    r = await gateway.client.post("/v1/readings", json={"readings": batch})
    assert r.status_code == 207
    body = r.json()
    assert (body["received"], body["accepted"], body["rejected"]) == (8, 2, 6)
    assert [(i["status"], i["reason"]) for i in body["items"]] == [
        ("accepted", None), ("accepted", None), ("rejected", "impossible_value"), ("rejected", "future_timestamp"),
        ("rejected", "unknown_patient"), ("rejected", "device_patient_mismatch"), ("rejected", "unknown_metric"),
        ("rejected", "duplicate_in_batch")]
    readings = [Reading.model_validate_json(m.value) for m in await drain(gateway.bus, gateway.bus.topics.readings, 2)]
    assert sorted(r.metric.value for r in readings) == ["heart_rate", "temperature"]
    assert [r.value for r in readings if r.metric.value == "temperature"] == [pytest.approx(37.0)]
    dead = [RejectedInput.model_validate_json(m.value) for m in await drain(gateway.bus, gateway.bus.topics.deadletter, 6)]
    assert sorted(d.reason for d in dead) == sorted(["impossible_value", "future_timestamp", "unknown_patient",
                                                      "device_patient_mismatch", "unknown_metric", "duplicate_in_batch"])
    assert all(d.source == "http:json" and d.payload for d in dead)


async def test_fhir_and_hl7_round_trip_to_the_readings_topic(gateway):
    ts = "%sZ" % time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 5))
    obs = {"resourceType": "Observation", "status": "final", "effectiveDateTime": ts,
           "subject": {"reference": "Patient/p3"}, "device": {"reference": "Device/mon-3"},
           "code": {"coding": [{"system": "http://loinc.org", "code": "9279-1"}]},
           "valueQuantity": {"value": 18, "unit": "breaths/min", "code": "/min"}}
    r = await gateway.client.post("/v1/fhir", content=orjson.dumps(obs), headers={"content-type": "application/fhir+json"})
    assert r.status_code == 200 and r.json()["accepted"] == 1
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(time.time() - 5)) + "+0000"
    msg = PCD01.replace("20261124101500+0000", stamp)
    r = await gateway.client.post("/v1/hl7v2", content=msg.encode(), headers={"content-type": "application/hl7-v2"})
    assert r.status_code == 207 and (r.json()["accepted"], r.json()["rejected"]) == (2, 1)
    got = {(x.patient, x.metric.value, x.value) for x in
           (Reading.model_validate_json(m.value) for m in await drain(gateway.bus, gateway.bus.topics.readings, 3))}
    assert got == {("p3", "resp_rate", 18.0), ("p1", "spo2", 96.0), ("p1", "heart_rate", 72.0)}


async def test_tokens_and_roles(gateway):
    c = gateway.client
    assert (await c.post("/v1/readings", json=[reading()], headers={"Authorization": ""})).status_code == 401
    assert (await c.post("/v1/readings", json=[reading()], headers={"Authorization": "Bearer nope"})).status_code == 401
    nurse = {"Authorization": f"Bearer {gateway.tokens['nurse']}"}
    assert (await c.post("/v1/readings", json=[reading()], headers=nurse)).status_code == 403
    assert (await c.post("/v1/patients", json={"patient": "p9", "ward": "w7"})).status_code == 403  # a gateway is no admin
    admin = {"Authorization": f"Bearer {gateway.tokens['admin']}"}
    assert (await c.post("/v1/patients", json={"patient": "p9", "ward": "w7", "devices": ["mon-9"]}, headers=admin)).status_code == 200
    r = await c.post("/v1/readings", json=[reading(patient=None, device="mon-9")])
    assert r.json()["accepted"] == 1  # the device's patient, looked up in the registry
    assert (await c.get("/metrics")).status_code == 403
    metrics = (await c.get("/metrics", headers=admin)).text
    assert 'wardwatch_ingest_accepted_total{format="json"}' in metrics
    assert (await c.get("/healthz")).json()["kafka"] is True
    assert "/v1/hl7v2" in (await c.get("/openapi.json")).json()["paths"]


async def test_a_full_backlog_answers_429_and_kafka_trouble_503_without_accepting(gateway):
    gateway.app.state.ingestor.max_backlog = 1
    r = await gateway.client.post("/v1/readings", json=[reading(), reading(metric="spo2", value=97, unit="%")])
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    gateway.app.state.ingestor.max_backlog = 10_000

    async def broken(*a, **k):
        raise ConnectionError("broker gone")

    gateway.app.state.ingestor.producer.send_many = broken
    r = await gateway.client.post("/v1/readings", json=[reading()])
    assert r.status_code == 503 and r.headers["retry-after"] == "5"


async def test_a_gateway_sending_a_gzip_body_has_its_readings_read_and_a_bomb_is_refused(gateway):
    """Gateways on metered links compress (Content-Encoding: gzip). The body was parsed as it came,
    every reading refused as "not valid JSON"; decompressed, within the body limit, it is read."""
    import gzip

    now = int(time.time() * 1000)
    body = orjson.dumps({"readings": [reading(ts=now - 2000), reading(metric="spo2", value=97, unit="%", ts=now - 2000)]})
    r = await gateway.client.post("/v1/readings", content=gzip.compress(body),
                                  headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert r.status_code == 200 and r.json()["accepted"] == 2, r.text
    bomb = gzip.compress(b"[" + b" " * (gateway.settings.ingest_max_body_bytes + 10) + b"]")
    r = await gateway.client.post("/v1/readings", content=bomb, headers={"content-encoding": "gzip"})
    assert r.status_code == 422 and [i["reason"] for i in r.json()["items"]] == ["too_large"]
    r = await gateway.client.post("/v1/readings", content=body, headers={"content-encoding": "br"})
    assert r.status_code == 422 and [i["reason"] for i in r.json()["items"]] == ["unsupported"]


async def test_a_python_gateway_writing_nan_for_a_missing_value_loses_only_that_reading(gateway):
    """Python's json.dumps writes NaN and Infinity as bare literals. orjson refuses them, so the whole
    body was one malformed_json dead letter and the good readings beside the NaN were not ingested."""
    import json

    now = int(time.time() * 1000)
    body = json.dumps({"readings": [reading(ts=now - 2000), reading(metric="spo2", value=float("nan"), unit="%", ts=now - 2000),
                                    reading(metric="resp_rate", value=float("inf"), unit="/min", ts=now - 2000)]})
    assert "NaN" in body and "Infinity" in body
    r = await gateway.client.post("/v1/readings", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 207, r.text
    assert [(i["status"], i["reason"]) for i in r.json()["items"]] == [
        ("accepted", None), ("rejected", "impossible_value"), ("rejected", "impossible_value")]
    ts = "%sZ" % time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 5))
    obs = {"resourceType": "Observation", "status": "final", "effectiveDateTime": ts,
           "subject": {"reference": "Patient/p3"}, "device": {"reference": "Device/mon-3"},
           "code": {"coding": [{"system": "http://loinc.org", "code": "9279-1"}]},
           "valueQuantity": {"value": 18, "unit": "breaths/min", "code": "/min"}}
    bad = obs | {"valueQuantity": {"value": float("nan"), "code": "/min"}}
    bundle = json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": obs}, {"resource": bad}]})
    r = await gateway.client.post("/v1/fhir", content=bundle, headers={"content-type": "application/fhir+json"})
    assert (r.json()["accepted"], r.json()["rejected"]) == (1, 1), r.text
    r = await gateway.client.post("/v1/readings", content=b'{"readings": [NaN', headers={"content-type": "application/json"})
    assert [i["reason"] for i in r.json()["items"]] == ["malformed_json"]
    huge = body.replace("NaN", "9" * 400).replace("Infinity", "-" + "9" * 30)  # past a float, past 64 bits
    r = await gateway.client.post("/v1/readings", content=huge, headers={"content-type": "application/json"})
    assert [i["reason"] for i in r.json()["items"]] == [None, "impossible_value", "impossible_value"], r.text


async def test_a_json_gateway_withdraws_a_reading_it_sent(gateway):
    """{"kind": "retraction", ...} beside readings: accepted, validated as the reading it names would
    be, and on the readings topic behind that patient's readings; a bad one is refused with its reason."""
    now = int(time.time() * 1000)
    sent = reading(ts=now - 2000, value=190)
    withdraw = {"kind": "retraction", "device": "mon-1", "metric": "heart_rate", "ts": now - 2000}
    r = await gateway.client.post("/v1/readings", json={"readings": [
        sent, withdraw | {"reason": "motion artefact, nurse checked"},
        withdraw | {"reason": "two\nlines"}, withdraw | {"device": "mon-2", "patient": "p1"},
        withdraw | {"ts": now + 3600_000}]})
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (2, 3), body
    assert [i["reason"] for i in body["items"]] == [None, None, "schema", "device_patient_mismatch", "future_timestamp"]
    on_topic = [orjson.loads(m.value) for m in await drain(gateway.bus, gateway.bus.topics.readings, 2)]
    assert [m.get("kind") for m in on_topic] == [None, "retraction"]  # the same key: the withdrawal after the reading
    w = on_topic[1]
    assert (w["patient"], w["device"], w["metric"], w["ts"], w["reason"]) == (
        "p1", "mon-1", "heart_rate", now - 2000, "motion artefact, nurse checked")
