"""FHIR as clients send it, against the real Kafka: every message shape round-trips to the readings
topic (metric, value, unit, device, device time), every rejection is on the dead-letter topic with
its reason, and the answer is FHIR's (``application/fhir+json``: OperationOutcome, a
transaction-/batch-response Bundle with one entry per request entry, a response message).

Sources of the test messages (times moved to now, values and ids as noted in each test):
* the FHIR R4 specification's examples ``observation-example-heart-rate`` and
  ``observation-example-bloodpressure`` (http://hl7.org/fhir/R4/observation-examples.html);
* the HL7 FHIR Personal Health Device IG (http://hl7.org/fhir/uv/phd/): ``bundle-example-1``
  (first-time transaction upload, conditional create of Patient and Devices by ``urn:uuid``
  fullUrl, PHG Device of type MDC_MOC_VMS_MDS_AHD 531981), the STU1 ``nonin-hdp`` bundle (PUT of
  Patient and Device with ``Type/id`` fullUrls), ``bundle-continuousnonin`` (battery level and
  coincident time stamp Observations beside the numerics), the numeric-spotnumeric example
  (``{beat}/min``, a supplemental-information component) and the RTSA pleth example
  (``valueSampledData``);
* a vendor-style hub upload written for this test (no vendor's published message is copied): a
  collection Bundle without Device entries, LOINC and MDC codings side by side, units as display
  strings only, temperature in degrees Fahrenheit, SpO2 as a fraction, the device from the
  gateway's token.
"""

from __future__ import annotations

import datetime as dt

import orjson
import pytest

from wardwatch.auth import TokenStore
from wardwatch.models import Reading, RejectedInput

from .conftest import drain

pytestmark = pytest.mark.integration

FHIR = {"content-type": "application/fhir+json", "accept": "application/fhir+json"}
MDC = "urn:iso:std:iso:11073:10101"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
EUI64 = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"
MR = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}], "text": "Medical record number"}


def at(ago_s: int, zone_h: int = 0) -> tuple[str, int]:
    """A device time ``ago_s`` seconds ago as FHIR writes it (in the zone ``zone_h``), and in epoch ms."""
    t = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(seconds=ago_s)
    return t.astimezone(dt.timezone(dt.timedelta(hours=zone_h))).isoformat(), int(t.timestamp() * 1000)


async def admit(g, patient: str, devices: list[str] | None = None) -> None:
    r = await g.client.post("/v1/patients", json={"patient": patient, "ward": "w7", "devices": devices or []},
                            headers={"Authorization": f"Bearer {g.tokens['admin']}"})
    assert r.status_code == 200, r.text


async def post(g, body: dict, path: str = "/v1/fhir", **headers):
    r = await g.client.post(path, content=orjson.dumps(body), headers=FHIR | headers)
    assert r.headers["content-type"].startswith("application/fhir+json"), (r.status_code, r.text[:300])
    return r


async def readings(g, n: int) -> list[Reading]:
    return [Reading.model_validate_json(m.value) for m in await drain(g.bus, g.bus.topics.readings, n)]


async def dead(g, n: int) -> list[RejectedInput]:
    return [RejectedInput.model_validate_json(m.value) for m in await drain(g.bus, g.bus.topics.deadletter, n)]


async def nothing_on(g, topic: str) -> bool:
    """No record on ``topic`` (call after draining what the same request sent elsewhere: the ingest
    answers once Kafka has acknowledged every send of the request, so a record would be there)."""
    return await drain(g.bus, topic, 1, timeout_ms=3000) == []


def seen(rs: list[Reading]) -> set[tuple]:
    return {(r.patient, r.device, r.metric.value, round(r.value, 3), r.unit, r.ts) for r in rs}


def issues(oo: dict) -> list[tuple[str, str | None, str | None]]:
    """(severity, WardWatch reason, expression) per issue of an OperationOutcome."""
    assert oo["resourceType"] == "OperationOutcome"
    return [(i["severity"], (i.get("details", {}).get("coding") or [{}])[0].get("code"), (i.get("expression") or [None])[0])
            for i in oo["issue"]]


# ------------------------------------------------------------------------------- FHIR R4 examples


async def test_r4_heart_rate_example_alone_takes_the_gateway_token_as_device(gateway):
    """FHIR R4 ``observation-example-heart-rate`` (44 beats/minute, LOINC 8867-4, UCUM /min) as a
    client creates it: no ``device``, so the gateway's own name (its token's) is the device."""
    tokens = TokenStore(gateway.settings.tokens_path)
    token, _ = tokens.create("gateway", name="ward7-hub")
    await admit(gateway, "example")
    when, ms = at(30)
    obs = {"resourceType": "Observation", "id": "heart-rate",
           "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"]}, "status": "final",
           "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                     "code": "vital-signs", "display": "Vital Signs"}], "text": "Vital Signs"}],
           "code": {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}], "text": "Heart rate"},
           "subject": {"reference": "Patient/example"}, "effectiveDateTime": when,
           "valueQuantity": {"value": 44, "unit": "beats/minute", "system": UCUM, "code": "/min"}}
    r = await post(gateway, obs, "/v1/fhir/Observation", authorization=f"Bearer {token}")
    assert r.status_code == 201
    assert issues(r.json()) == [("information", None, "Observation")]
    assert seen(await readings(gateway, 1)) == {("example", "ward7-hub", "heart_rate", 44, "/min", ms)}


async def test_r4_blood_pressure_example_components_and_effective_period(gateway):
    """FHIR R4 ``observation-example-bloodpressure`` (panel 85354-9, components 8480-6 = 107 and
    8462-4 = 60 mm[Hg]), sent to ``[base]`` with ``effectivePeriod`` and a logical device
    reference whose identifier has a space (made an identifier, not refused)."""
    await admit(gateway, "bp-example")
    when, ms = at(45, -5)
    obs = {"resourceType": "Observation", "id": "blood-pressure", "status": "final",
           "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                     "code": "vital-signs"}]}],
           "code": {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}]},
           "subject": {"reference": "Patient/bp-example"},
           "effectivePeriod": {"start": when, "end": when},
           "device": {"identifier": {"system": "urn:oid:1.2.3.4", "value": "BP cuff 12"}},
           "bodySite": {"coding": [{"system": "http://snomed.info/sct", "code": "368209003", "display": "Right arm"}]},
           "component": [
               {"code": {"coding": [{"system": LOINC, "code": "8480-6", "display": "Systolic blood pressure"}]},
                "valueQuantity": {"value": 107, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
                "interpretation": [{"coding": [{"code": "N"}]}]},
               {"code": {"coding": [{"system": LOINC, "code": "8462-4", "display": "Diastolic blood pressure"}]},
                "valueQuantity": {"value": 60, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}}]}
    r = await post(gateway, obs)
    assert r.status_code == 201
    assert [e for _, _, e in issues(r.json())] == ["Observation.component[0]", "Observation.component[1]"]
    assert seen(await readings(gateway, 2)) == {("bp-example", "x_BP_20cuff_2012", "sbp", 107, "mm[Hg]", ms),
                                                ("bp-example", "x_BP_20cuff_2012", "dbp", 60, "mm[Hg]", ms)}


def vital(code: str, when: str, **value) -> dict:
    """An Observation of LOINC ``code`` for patient p-vs on monitor mon-vs, with ``value`` as given."""
    return {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": LOINC, "code": code}]},
            "subject": {"reference": "Patient/p-vs"}, "device": {"reference": "Device/mon-vs"},
            "effectiveDateTime": when} | value


async def test_a_vital_sign_whose_value_is_not_a_quantity_is_rejected_not_dropped(gateway):
    """A heart rate or SpO2 sent as ``valueInteger``/``valueString`` has no unit to say what the
    number is: rejected (``schema``) with its reason and dead-lettered, as HL7 v2 rejects an OBX of a
    vital sign that is not NM, never answered "understood, not stored" and lost. Values of other
    types that are no vital sign (a PHD coincident time stamp) and a ``dataAbsentReason`` are still
    understood and not stored."""
    await admit(gateway, "p-vs", ["mon-vs"])
    when, ms = at(30)
    r = await post(gateway, vital("8867-4", when, valueInteger=72), "/v1/fhir/Observation")
    assert r.status_code == 400
    assert issues(r.json()) == [("error", "schema", "Observation")]
    assert "valueInteger" in r.json()["issue"][0]["diagnostics"]
    mmhg = {"unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}
    bp = vital("85354-9", when, component=[
        {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]}, "valueQuantity": {"value": 120} | mmhg},
        {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]}, "valueInteger": 80}])
    time_stamp = vital("8867-4", when) | {"code": {"coding": [{"system": MDC, "code": "67975"}]}, "valueDateTime": when}
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": res, "request": {"method": "POST", "url": "Observation"}}
        for res in (vital("59408-5", when, valueString="97"), bp, time_stamp,
                    vital("8867-4", when, dataAbsentReason={"text": "probe off"}))]}
    r = await post(gateway, bundle)
    body = r.json()
    assert [e["response"]["status"] for e in body["entry"]] == ["400 Bad Request", "201 Created", "200 OK", "200 OK"]
    assert issues(body["entry"][0]["response"]["outcome"]) == [("error", "schema", "Bundle.entry[0].resource")]
    assert [i for i in issues(body["entry"][1]["response"]["outcome"]) if i[0] == "error"] == [
        ("error", "schema", "Bundle.entry[1].resource.component[1]")]
    assert seen(await readings(gateway, 1)) == {("p-vs", "mon-vs", "sbp", 120, "mm[Hg]", ms)}
    got = await dead(gateway, 3)
    assert [d.reason for d in got] == ["schema"] * 3
    assert {k for d in got for k in ("valueInteger", "valueString") if k in d.payload} == {"valueInteger", "valueString"}


async def test_a_vital_signs_panel_with_members_is_a_grouping_not_an_error(gateway):
    """FHIR R4 vital signs panel (LOINC 85353-1) as a transaction: the panel has no value of its own,
    only ``hasMember`` references to the heart rate and respiratory rate Observations beside it. It
    is understood and not stored (its members are the readings); nothing is dead-lettered."""
    await admit(gateway, "p-vs", ["mon-vs"])
    when, ms = at(40)
    panel = vital("85353-1", when, hasMember=[{"reference": "urn:uuid:hr-1"}, {"reference": "urn:uuid:rr-1"}])
    per_min = {"unit": "/min", "system": UCUM, "code": "/min"}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": url, "resource": res, "request": {"method": "POST", "url": "Observation"}}
        for url, res in (("urn:uuid:panel-1", panel),
                         ("urn:uuid:hr-1", vital("8867-4", when, valueQuantity={"value": 72} | per_min)),
                         ("urn:uuid:rr-1", vital("9279-1", when, valueQuantity={"value": 16} | per_min)))]}
    r = await post(gateway, bundle)
    assert r.status_code == 200
    body = r.json()
    assert [e["response"]["status"] for e in body["entry"]] == ["200 OK", "201 Created", "201 Created"]
    assert issues(body["entry"][0]["response"]["outcome"]) == [("information", None, "Bundle.entry[0].resource")]
    assert seen(await readings(gateway, 2)) == {("p-vs", "mon-vs", "heart_rate", 72, "/min", ms),
                                                ("p-vs", "mon-vs", "resp_rate", 16, "/min", ms)}
    assert await nothing_on(gateway, gateway.bus.topics.deadletter)


# ------------------------------------------------------------------------------- PHD IG


def phd_first_upload(spo2_time: str, pulse_time: str) -> dict:
    """After PHD IG ``bundle-example-1`` and ``bundle-continuousnonin``: a PHG's first transaction,
    Patient and Devices by conditional create with ``urn:uuid`` fullUrls, then the Observations."""
    patient, phg, phd = ("urn:uuid:5b7842fe-978d-4182-a41f-0d07a8617bc2", "urn:uuid:d44b0315-947e-4da5-bb6d-533eceb7a294",
                         "urn:uuid:1ea2a3b6-8c4c-4d0c-9a8d-2f7a3c9b8e01")
    gateway_ext = [{"url": "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice",
                    "valueReference": {"reference": phg}}]
    category = [{"coding": [{"system": "http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories",
                             "code": "phd", "display": "PHD generated Observation"}]}]

    def obs(code: str, name: str, when: str, value_key: str, value, extra: dict | None = None) -> dict:
        return {"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{int(code):012d}",
                "resource": {"resourceType": "Observation",
                             "meta": {"profile": ["http://hl7.org/fhir/uv/phd/StructureDefinition/PhdNumericObservation"]},
                             "extension": gateway_ext, "status": "final", "category": category,
                             "code": {"coding": [{"system": MDC, "code": code, "display": name}], "text": name},
                             "subject": {"reference": patient}, "effectiveDateTime": when, value_key: value,
                             "device": {"reference": phd}} | (extra or {}),
                "request": {"method": "POST", "url": "Observation"}}

    return {"resourceType": "Bundle", "id": "bundle-example-1", "type": "transaction", "entry": [
        {"fullUrl": patient, "resource": {"resourceType": "Patient",
                                          "identifier": [{"type": MR, "system": "urn:oid:1.2.3.4.5.6.6.8.10",
                                                          "value": "sisansarahId"}],
                                          "name": [{"family": "Gyannea", "given": ["Sisansarah"]}]},
         "request": {"method": "POST", "url": "Patient",
                     "ifNoneExist": "identifier=urn:oid:1.2.3.4.5.6.6.8.10|sisansarahId"}},
        {"fullUrl": phg, "resource": {"resourceType": "Device",
                                      "identifier": [{"type": {"coding": [{"code": "SYSID"}]}, "system": EUI64,
                                                      "value": "4C-4E-49-12-34-56-FF-FF"}],
                                      "type": {"coding": [{"system": MDC, "code": "531981",
                                                           "display": "MDC_MOC_VMS_MDS_AHD"}]}},
         "request": {"method": "POST", "url": "Device", "ifNoneExist": f"identifier={EUI64}|4C-4E-49-12-34-56-FF-FF"}},
        {"fullUrl": phd, "resource": {"resourceType": "Device",
                                      "identifier": [{"type": {"coding": [{"code": "SYSID"}]}, "system": EUI64,
                                                      "value": "74-E8-FF-FE-FF-05-1C-00"},
                                                     {"type": {"coding": [{"code": "BTMAC"}]},
                                                      "system": "http://hl7.org/fhir/sid/eui-48/bluetooth",
                                                      "value": "00-1C-05-FF-E8-74"}],
                                      "manufacturer": "Nonin_Medical_Inc.", "serialNumber": "501900083",
                                      "modelNumber": "Model 3230",
                                      "type": {"coding": [{"system": MDC, "code": "65573", "display": "MDC_MOC_VMS_MDS_SIMP"}]}},
         "request": {"method": "POST", "url": "Device", "ifNoneExist": f"identifier={EUI64}|74-E8-FF-FE-FF-05-1C-00"}},
        obs("67975", "MDC_ATTR_TIME_ABS", spo2_time, "valueDateTime", spo2_time),  # the coincident time stamp
        obs("150456", "MDC_PULS_OXIM_SAT_O2", spo2_time, "valueQuantity",
            {"value": 97, "unit": "%", "system": UCUM, "code": "%"}),
        obs("149530", "MDC_PULS_OXIM_PULS_RATE", pulse_time, "valueQuantity",
            {"value": 48.0, "unit": "{beat}/min", "system": UCUM, "code": "{beat}/min"},
            {"component": [{"code": {"coding": [{"system": MDC, "code": "68193", "display": "MDC_ATTR_SUPPLEMENTAL_TYPES"}]},
                            "valueCodeableConcept": {"coding": [{"system": MDC, "code": "150588",
                                                                 "display": "MDC_MODALITY_SPOT"}]}}]}),
        obs("67996", "MDC_ATTR_VAL_BATT_CHARGE", spo2_time, "valueQuantity",
            {"value": 100, "unit": "%", "system": UCUM, "code": "%"}),  # no vital sign: rejected, dead-lettered
    ]}


async def test_phd_first_transaction_upload_answers_one_entry_per_request_entry(gateway):
    """PHD IG ``bundle-example-1`` / ``bundle-continuousnonin``: Patient, PHG and PHD Devices
    (urn:uuid fullUrls, conditional create), a coincident time stamp, SpO2, pulse rate with a
    supplemental-information component, and a battery level (not a vital sign)."""
    await admit(gateway, "sisansarahId")
    spo2_time, spo2_ms = at(60, -5)
    pulse_time, pulse_ms = at(59, -5)
    r = await post(gateway, phd_first_upload(spo2_time, pulse_time))
    assert r.status_code == 200
    body = r.json()
    assert body["resourceType"] == "Bundle" and body["type"] == "transaction-response"
    assert [e["response"]["status"] for e in body["entry"]] == ["200 OK"] * 4 + ["201 Created"] * 2 + ["400 Bad Request"]
    assert issues(body["entry"][6]["response"]["outcome"]) == [("error", "unknown_metric", "Bundle.entry[6].resource")]
    device = "74-E8-FF-FE-FF-05-1C-00"  # the PHD's EUI-64, not the gateway's
    assert seen(await readings(gateway, 2)) == {("sisansarahId", device, "spo2", 97, "%", spo2_ms),
                                                ("sisansarahId", device, "pulse_rate", 48, "/min", pulse_ms)}
    [d] = await dead(gateway, 1)
    assert (d.source, d.reason) == ("http:fhir", "unknown_metric") and "MDC_ATTR_VAL_BATT_CHARGE" in d.payload


async def test_phd_update_bundle_with_type_id_full_urls_and_blood_pressure_components(gateway):
    """PHD IG STU1 ``nonin-hdp`` bundle (PUT of Patient and Device, fullUrls ``Patient/...`` and
    ``Device/...``, an absolute ``http://example.org/fhir/Patient/...`` one too) as a batch, with the
    IG's compound blood pressure (MDC_PRESS_BLD_NONINV 150020: systolic, diastolic, mean
    components), a cuff pulse rate (149546) at ``effectiveInstant``, an RTSA pleth
    (``valueSampledData``: understood, not stored), and three entries that are refused: a
    systolic outside the possible range (the other components still pass), an unresolvable
    ``urn:uuid`` device and a DELETE."""
    await admit(gateway, "sisansarahId")
    when, ms = at(90, 2)
    later, later_ms = at(80, 2)
    patient = {"resourceType": "Patient", "id": "sisansarahId.1.2.3.4.5.6.7.8.10",
               "identifier": [{"type": MR, "system": "urn:oid:1.2.3.4.5.6.7.8.10", "value": "sisansarahId"}]}
    phg = {"resourceType": "Device", "id": "ecde3d4e58532d31.000000000000",
           "identifier": [{"system": EUI64, "value": "ec-de-3d-4e-58-53-2d-31"}],
           "type": {"coding": [{"system": MDC, "code": "531981"}], "text": "MDC_MOC_VMS_MDS_AHD"}}
    cuff = {"resourceType": "Device", "id": "00091fc0000e1002.0009ff0e3a25",
            "identifier": [{"system": EUI64, "value": "00-09-1F-C0-00-0E-10-02"}],
            "type": {"coding": [{"system": MDC, "code": "65573"}], "text": "MDC_MOC_VMS_MDS_SIMP"}}

    def bp(when_: str, sys_: float) -> dict:
        return {"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": MDC, "code": "150020", "display": "MDC_PRESS_BLD_NONINV"},
                                    {"system": LOINC, "code": "85354-9"}]},
                "subject": {"reference": "Patient/sisansarahId.1.2.3.4.5.6.7.8.10"}, "effectiveDateTime": when_,
                "device": {"reference": "Device/00091fc0000e1002.0009ff0e3a25"},
                "component": [
                    {"code": {"coding": [{"system": MDC, "code": "150021", "display": "MDC_PRESS_BLD_NONINV_SYS"}]},
                     "valueQuantity": {"value": sys_, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}},
                    {"code": {"coding": [{"system": MDC, "code": "150022", "display": "MDC_PRESS_BLD_NONINV_DIA"}]},
                     "valueQuantity": {"value": 80, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}},
                    {"code": {"coding": [{"system": MDC, "code": "150023", "display": "MDC_PRESS_BLD_NONINV_MEAN"}]},
                     "valueQuantity": {"value": 93, "system": MDC, "code": "266016"}}]}  # an MDC unit code

    pulse = {"resourceType": "Observation", "status": "final",
             "code": {"coding": [{"system": MDC, "code": "149546", "display": "MDC_PULS_RATE_NON_INV"}]},
             "subject": {"reference": "http://example.org/fhir/Patient/sisansarahId.1.2.3.4.5.6.7.8.10"},
             "effectiveInstant": when, "device": {"reference": "Device/00091fc0000e1002.0009ff0e3a25"},
             "valueQuantity": {"value": 61, "unit": "bpm", "system": UCUM, "code": "{beat}/min"}}
    pleth = {"resourceType": "Observation", "status": "final",
             "code": {"coding": [{"system": MDC, "code": "150452"}], "text": "MDC_PULS_OXIM_PLETH: Pleth Wave"},
             "subject": {"reference": "Patient/sisansarahId.1.2.3.4.5.6.7.8.10"}, "effectiveDateTime": when,
             "valueSampledData": {"origin": {"value": 0}, "period": 0.01, "dimensions": 1, "data": "123 110 97 99"},
             "device": {"reference": "Device/00091fc0000e1002.0009ff0e3a25"}}
    lost = pulse | {"device": {"reference": "urn:uuid:0b8f0c39-0000-4000-8000-000000000000"}}
    bundle = {"resourceType": "Bundle", "id": "nonin-hdp-1542718631721", "type": "batch", "entry": [
        {"fullUrl": "Patient/sisansarahId.1.2.3.4.5.6.7.8.10", "resource": patient,
         "request": {"method": "PUT", "url": "Patient/sisansarahId.1.2.3.4.5.6.7.8.10"}},
        {"fullUrl": "Device/ecde3d4e58532d31.000000000000", "resource": phg,
         "request": {"method": "PUT", "url": "Device/ecde3d4e58532d31.000000000000"}},
        {"fullUrl": "Device/00091fc0000e1002.0009ff0e3a25", "resource": cuff,
         "request": {"method": "PUT", "url": "Device/00091fc0000e1002.0009ff0e3a25"}},
        {"resource": bp(when, 122), "request": {"method": "POST", "url": "Observation"}},
        {"resource": pulse, "request": {"method": "POST", "url": "Observation"}},
        {"resource": pleth, "request": {"method": "POST", "url": "Observation"}},
        {"resource": bp(later, 420), "request": {"method": "POST", "url": "Observation"}},
        {"resource": lost, "request": {"method": "POST", "url": "Observation"}},
        {"resource": pulse, "request": {"method": "DELETE", "url": "Observation/x"}},
    ]}
    r = await post(gateway, bundle)
    assert r.status_code == 200
    body = r.json()
    assert body["type"] == "batch-response" and len(body["entry"]) == 9
    assert [e["response"]["status"] for e in body["entry"]] == (
        ["200 OK"] * 3 + ["201 Created", "201 Created", "200 OK", "201 Created", "400 Bad Request", "400 Bad Request"])
    assert [i for i in issues(body["entry"][6]["response"]["outcome"]) if i[0] == "error"] == [
        ("error", "impossible_value", "Bundle.entry[6].resource.component[0]")]
    assert issues(body["entry"][7]["response"]["outcome"]) == [("error", "schema", "Bundle.entry[7].resource")]
    assert issues(body["entry"][8]["response"]["outcome"]) == [("error", "unsupported", "Bundle.entry[8].resource")]
    dev = "00-09-1F-C0-00-0E-10-02"  # Device/... resolved to the Bundle's Device and its EUI-64
    assert seen(await readings(gateway, 6)) == {
        ("sisansarahId", dev, "sbp", 122, "mm[Hg]", ms), ("sisansarahId", dev, "dbp", 80, "mm[Hg]", ms),
        ("sisansarahId", dev, "map", 93, "mm[Hg]", ms), ("sisansarahId", dev, "pulse_rate", 61, "/min", ms),
        ("sisansarahId", dev, "dbp", 80, "mm[Hg]", later_ms), ("sisansarahId", dev, "map", 93, "mm[Hg]", later_ms)}
    got = await dead(gateway, 3)
    assert sorted(d.reason for d in got) == ["impossible_value", "schema", "unsupported"]
    assert any("is not in the Bundle" in d.detail for d in got)


# ------------------------------------------------------------------------------- vendor, message, errors


async def test_vendor_style_collection_bundle_from_a_hub(gateway):
    """Vendor-style hub upload (written for this test, see the module docstring): a collection
    Bundle, no Device entries and no ``device`` (the token's name), LOINC and MDC codings side by
    side, units as display strings only, 98.6 [degF] and SpO2 0.96 as a fraction."""
    tokens = TokenStore(gateway.settings.tokens_path)
    token, _ = tokens.create("gateway", name="acme hub 3")  # a space: made an identifier
    await admit(gateway, "MRN-448812")
    when, ms = at(20, 1)
    subject = {"reference": "urn:uuid:9d2c6bde-36f1-4a5b-9a55-1c8f7b1f2a10"}

    def obs(codings: list, value: float, unit: str) -> dict:
        return {"resource": {"resourceType": "Observation", "status": "preliminary", "code": {"coding": codings},
                             "subject": subject, "effectiveDateTime": when,
                             "valueQuantity": {"value": value, "unit": unit}}}

    bundle = {"resourceType": "Bundle", "type": "collection", "timestamp": when, "entry": [
        {"fullUrl": subject["reference"],
         "resource": {"resourceType": "Patient", "identifier": [{"system": "https://acme.example/mrn", "value": "MRN-448812"}]}},
        obs([{"system": "https://acme.example/codes", "code": "TEMP"}, {"system": LOINC, "code": "8310-5"}], 98.6, "[degF]"),
        obs([{"system": MDC, "code": "150456"}, {"system": LOINC, "code": "59408-5"}], 0.96, "1"),
        obs([{"system": LOINC, "code": "9279-1"}], 16, "breaths/min"),
        obs([{"system": LOINC, "code": "9279-1"}], 16, "furlongs"),
    ]}
    bundle["entry"][4]["resource"]["effectiveDateTime"] = at(19, 1)[0]
    r = await post(gateway, bundle, authorization=f"Bearer {token}")
    assert r.status_code == 200
    errors = [i for i in issues(r.json()) if i[0] == "error"]
    assert errors == [("error", "unit", "Bundle.entry[4].resource")]
    device = "x_acme_20hub_203"
    assert seen(await readings(gateway, 3)) == {("MRN-448812", device, "temperature", 37.0, "Cel", ms),
                                                ("MRN-448812", device, "spo2", 96.0, "%", ms),
                                                ("MRN-448812", device, "resp_rate", 16, "/min", ms)}
    [d] = await dead(gateway, 1)
    assert d.reason == "unit" and "furlongs" in d.payload


async def test_message_bundle_gets_a_response_message(gateway):
    """FHIR R4 messaging (http://hl7.org/fhir/R4/messaging.html) as a PHD-style gateway uses it: a
    message Bundle to ``$process-message``, MessageHeader first, then Patient, Device and
    Observations; one reading is from the future. The answer is a response message whose
    MessageHeader.response names the request's MessageHeader."""
    await admit(gateway, "p-msg-1")
    when, ms = at(10)
    future, _ = at(-3600)
    header = {"resourceType": "MessageHeader", "id": "a8f1e2c4-msg-0001",
              "eventCoding": {"system": "urn:acme:events", "code": "vitals-upload"},
              "source": {"name": "Acme PHG", "endpoint": "urn:acme:phg:4C-4E-49-12-34-56-FF-FF"},
              "focus": [{"reference": "urn:uuid:obs-1"}]}
    obs = {"resourceType": "Observation", "status": "final",
           "code": {"coding": [{"system": MDC, "code": "151562", "display": "MDC_RESP_RATE"}]},
           "subject": {"reference": "urn:uuid:pat-1"}, "device": {"reference": "urn:uuid:dev-1"},
           "effectiveDateTime": when, "valueQuantity": {"value": 14, "unit": "{breath}/min", "system": UCUM,
                                                          "code": "{breath}/min"}}
    bundle = {"resourceType": "Bundle", "id": "msg-bundle-1", "type": "message", "timestamp": when, "entry": [
        {"fullUrl": "urn:uuid:hdr-1", "resource": header},
        {"fullUrl": "urn:uuid:pat-1", "resource": {"resourceType": "Patient", "identifier": [{"value": "p-msg-1"}]}},
        {"fullUrl": "urn:uuid:dev-1", "resource": {"resourceType": "Device", "udiCarrier": [{"deviceIdentifier": "00844588003288"}]}},
        {"fullUrl": "urn:uuid:obs-1", "resource": obs},
        {"fullUrl": "urn:uuid:obs-2", "resource": obs | {"effectiveDateTime": future}},
    ]}
    r = await post(gateway, bundle, "/v1/fhir/$process-message")
    assert r.status_code == 200
    body = r.json()
    assert body["type"] == "message"
    mh, oo = body["entry"][0]["resource"], body["entry"][1]["resource"]
    assert mh["resourceType"] == "MessageHeader" and mh["response"]["identifier"] == "a8f1e2c4-msg-0001"
    assert mh["response"]["code"] == "ok" and mh["response"]["details"]["reference"] == body["entry"][1]["fullUrl"]
    assert mh["destination"] == [{"endpoint": "urn:acme:phg:4C-4E-49-12-34-56-FF-FF"}]
    assert [i for i in issues(oo) if i[0] == "error"] == [("error", "future_timestamp", "Bundle.entry[4].resource")]
    assert seen(await readings(gateway, 1)) == {("p-msg-1", "00844588003288", "resp_rate", 14, "/min", ms)}
    assert [d.reason for d in await dead(gateway, 1)] == ["future_timestamp"]


async def test_whole_request_errors_are_operation_outcomes_and_dead_letters(gateway):
    """Bodies that are no usable FHIR at all, a token that is missing, and the size bound
    (``fhir_max_entries``): an OperationOutcome each, and every body on the dead-letter topic."""
    c = gateway.client
    r = await c.post("/v1/fhir", content=b'{"resourceType": "Bundle", "entry": [', headers=FHIR)
    assert r.status_code == 400 and issues(r.json()) == [("error", "malformed_json", None)]
    assert r.headers["content-type"].startswith("application/fhir+json")
    r = await post(gateway, {"resourceType": "Bundle", "type": "searchset", "entry": []})
    assert r.status_code == 400 and issues(r.json())[0][1] == "unsupported"
    r = await post(gateway, {"resourceType": "Bundle", "type": "transaction", "entry": [{}] * 10_001})
    assert r.status_code == 413 and issues(r.json())[0][1] == "too_large"
    r = await post(gateway, {"resourceType": "Bundle", "type": "batch"}, "/v1/fhir/Observation")
    assert r.status_code == 400 and issues(r.json())[0][1] == "unsupported"
    r = await post(gateway, {"resourceType": "Observation"}, "/v1/fhir/Observation", authorization="Bearer nope")
    assert r.status_code == 401 and r.json()["issue"][0]["code"] == "login"
    r = await post(gateway, {"resourceType": "Observation", "status": "final"})  # no value at all
    assert r.status_code == 400 and issues(r.json()) == [("error", "schema", "Observation")]
    got = await dead(gateway, 5)
    assert sorted(d.reason for d in got) == ["malformed_json", "schema", "too_large", "unsupported", "unsupported"]
    assert all(d.source == "http:fhir" and d.payload for d in got)


async def test_without_a_fhir_accept_header_the_json_answer_is_kept(gateway):
    """The same PHD IG transaction as above, posted by a gateway that does not ask for FHIR
    (``Accept: */*``): the WardWatch JSON answer, item by item, as before."""
    await admit(gateway, "sisansarahId")
    spo2_time, _ = at(60, -5)
    pulse_time, _ = at(59, -5)
    r = await gateway.client.post("/v1/fhir", content=orjson.dumps(phd_first_upload(spo2_time, pulse_time)),
                                  headers={"content-type": "application/fhir+json"})
    assert r.status_code == 207 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert (body["received"], body["accepted"], body["rejected"]) == (3, 2, 1)
    assert [i["reason"] for i in body["items"] if i["status"] == "rejected"] == ["unknown_metric"]


async def test_capability_statement_for_clients_that_read_it_first(gateway):
    """FHIR R4 ``GET [base]/metadata`` (http://hl7.org/fhir/R4/http.html#capabilities), which client
    libraries such as HAPI FHIR read before their first request: open, and says what is taken."""
    r = await gateway.client.get("/v1/fhir/metadata", headers={"Authorization": "", "accept": "application/fhir+json"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    cs = r.json()
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"] == "4.0.1"
    rest = cs["rest"][0]
    assert rest["resource"] == [{"type": "Observation", "interaction": [{"code": "create"}]}]
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch"}
    assert cs["implementation"]["url"].endswith("/v1/fhir")


def test_device_metric_reference_stands_for_its_source_device():
    """FHIR R4 Observation.device is Reference(Device | DeviceMetric) (http://hl7.org/fhir/R4/observation.html);
    a point-of-care gateway writes the channel's DeviceMetric (contained here, after the R4
    ``devicemetric-example``: ``source`` = the monitor). No Kafka: the mapping alone."""
    from ingest.formats import fhir
    from wardwatch.codec import Invalid

    when, ms = at(5)
    obs = {"resourceType": "Observation", "status": "final", "effectiveDateTime": when,
           "contained": [{"resourceType": "DeviceMetric", "id": "dm", "type": {"coding": [{"system": MDC, "code": "150456"}]},
                          "source": {"reference": "Device/monitor-7"}, "category": "measurement"}],
           "code": {"coding": [{"system": MDC, "code": "150456"}]}, "subject": {"reference": "Patient/p1"},
           "device": {"reference": "#dm"}, "valueQuantity": {"value": 95, "code": "%"}}
    [r] = fhir.observation_readings(obs)
    assert (r["device"], r["metric"], r["ts"]) == ("monitor-7", "spo2", ms)
    with pytest.raises(Invalid, match="DeviceMetric"):
        fhir.observation_readings(obs | {"device": {"reference": "DeviceMetric/dm-9"}})
