"""FHIR R4 and HL7 v2 (IHE PCD-01) inputs become the one reading model, with clear reasons when not."""

import pytest

from ingest.formats import fhir, hl7v2
from wardwatch.codec import Invalid, Retracted

PCD01 = ("MSH|^~\\&|MONITOR-7^0001^EUI-64|WARD7|WARDWATCH|HOSP|20261124101500+0000||ORU^R01^ORU_R01|MSG0001|P|2.6\r"
         "PID|||p1^^^HOSP^MR||Doe^J\r"
         "PV1||I|W7^7^1\r"
         "OBR|1|||182777000^monitoring of patient^SCT|||20261124101500+0000\r"
         "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|96|262688^MDC_DIM_PERCENT^MDC|||||R|||20261124101500+0000||||mon-1\r"
         "OBX|2|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.2|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||20261124101500+0000||||mon-1\r"
         "OBX|3|ST|184327^MDC_ATTR_ALERT_TYPE^MDC|1.1.1.3|none||||||R\r"
         "OBX|4|NM|999999^MDC_UNKNOWN^MDC|1.1.1.4|5|262688^MDC_DIM_PERCENT^MDC|||||R\r")


def test_pcd01_message_gives_one_reading_per_numeric_vital_and_a_reason_for_the_unknown_code():
    items = hl7v2.message_readings(hl7v2.split_messages("\x0b" + PCD01 + "\x1c\r")[0])
    good = [i for i in items if isinstance(i, dict)]
    bad = [i for i in items if isinstance(i, Invalid)]
    assert [(r["metric"], r["value"], r["unit"], r["patient"], r["device"]) for r in good] == [
        ("spo2", 96.0, "%", "p1", "mon-1"), ("heart_rate", 72.0, "/min", "p1", "mon-1")]
    assert good[0]["ts"] == 1795515300000
    assert [b.reason for b in bad] == ["unknown_metric"]


def test_two_messages_in_one_body_and_a_wrong_message_type():
    assert len(hl7v2.split_messages(PCD01 + PCD01)) == 2
    with pytest.raises(Invalid) as info:
        hl7v2.message_readings(PCD01.replace("ORU^R01^ORU_R01", "ADT^A01"))
    assert info.value.reason == "unsupported"


def test_fhir_bundle_with_a_blood_pressure_panel():
    obs = {"resourceType": "Observation", "status": "final", "effectiveDateTime": "2026-11-24T10:15:00Z",
           "subject": {"reference": "Patient/p2"}, "device": {"reference": "Device/mon-2"},
           "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
           "component": [
               {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": 121, "code": "mm[Hg]"}},
               {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": {"value": 79, "code": "mm[Hg]"}}]}
    spo2 = {"resourceType": "Observation", "status": "final", "effectiveDateTime": "2026-11-24T10:15:00+01:00",
            "subject": {"reference": "Patient/p2"}, "device": {"reference": "Device/mon-2"},
            "code": {"coding": [{"system": "urn:iso:std:iso:11073:10101", "code": "150456"}]},
            "valueQuantity": {"value": 0.95, "unit": "1"}}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": obs}, {"resource": spo2}]}
    readings = [r for res in fhir.resources(bundle) for r in fhir.observation_readings(res)]
    assert [(r["metric"], r["value"], r["unit"]) for r in readings] == [("sbp", 121, "mm[Hg]"), ("dbp", 79, "mm[Hg]"),
                                                                         ("spo2", 0.95, "1")]
    assert readings[2]["ts"] == readings[0]["ts"] - 3600_000
    with pytest.raises(Invalid) as info:
        fhir.observation_readings(obs | {"effectiveDateTime": "2026-11-24T10:15:00"})
    assert "time zone" in info.value.detail


def test_a_pulse_oximeter_reporting_below_its_range_with_a_comparator_is_not_stored_as_that_value():
    """FHIR Quantity.comparator ``<`` means the value is below what is written (an oximeter's "<70"):
    storing 70 would be a wrong SpO2. Rejected with its reason, as HL7 SN ``<^70`` is."""
    obs = {"resourceType": "Observation", "status": "final", "effectiveDateTime": "2026-11-24T10:15:00Z",
           "subject": {"reference": "Patient/p2"}, "device": {"reference": "Device/mon-2"},
           "code": {"coding": [{"system": "http://loinc.org", "code": "59408-5"}]},
           "valueQuantity": {"value": 70, "comparator": "<", "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}}
    (item,) = fhir.observation_readings(obs)
    assert isinstance(item, Invalid) and item.reason == "schema" and "comparator" in item.detail
    (ok,) = fhir.observation_readings(obs | {"valueQuantity": {"value": 97, "unit": "%", "code": "%"}})
    assert ok["value"] == 97


def test_a_bundle_entry_with_an_object_as_its_resource_type_is_rejected_alone_not_the_whole_bundle():
    """A resourceType that is an object (a client's serialisation bug) raised TypeError in the
    entry loop: the body was answered "could not be parsed" and the good Observation beside it lost."""
    obs = {"resourceType": "Observation", "status": "final", "effectiveDateTime": "2026-11-24T10:15:00Z",
           "subject": {"reference": "Patient/p2"}, "device": {"reference": "Device/mon-2"},
           "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
           "valueQuantity": {"value": 72, "code": "/min"}}
    doc = fhir.parse_document({"resourceType": "Bundle", "type": "collection",
                               "entry": [{"resource": {"resourceType": {"text": "Device"}}}, {"resource": obs}]})
    assert [e.kind for e in doc.entries] == ["rejected", "observation"]
    assert doc.entries[0].items[0].reason == "unsupported" and doc.entries[1].items[0]["value"] == 72


def test_a_result_the_monitor_withdraws_becomes_a_withdrawal_of_that_reading():
    withdrawn = PCD01.replace("|96|262688^MDC_DIM_PERCENT^MDC|||||R|", "|96|262688^MDC_DIM_PERCENT^MDC|||||W|")
    deleted = PCD01.replace("|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|", "|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||D|")
    for text, kept, gone, status in ((withdrawn, "heart_rate", "spo2", "W"), (deleted, "spo2", "heart_rate", "D")):
        items = hl7v2.message_readings(text)
        assert [i["metric"] for i in items if isinstance(i, dict)] == [kept]
        (w,) = [i for i in items if isinstance(i, Retracted)]
        # It names the reading as the stored point is keyed: patient, metric, device time (and the device).
        assert dict(w.mapping) == {"patient": "p1", "device": "mon-1", "metric": gone, "ts": 1795515300000,
                                   "reason": f"HL7 OBX-11 {status}"}
        assert [i.reason for i in items if isinstance(i, Invalid)] == ["unknown_metric"]


def test_a_withdrawal_of_something_that_is_not_a_vital_sign_names_nothing():
    text = PCD01.replace("|5|262688^MDC_DIM_PERCENT^MDC|||||R", "|5|262688^MDC_DIM_PERCENT^MDC|||||D")
    items = hl7v2.message_readings(text)
    assert not any(isinstance(i, Retracted) for i in items)
    assert [i["metric"] for i in items if isinstance(i, dict)] == ["spo2", "heart_rate"]


def test_a_withdrawal_with_an_unreadable_time_is_refused_with_its_reason():
    text = PCD01.replace("|96|262688^MDC_DIM_PERCENT^MDC|||||R|||20261124101500+0000|", "|96|262688^MDC_DIM_PERCENT^MDC|||||W|||2026xx|")
    items = hl7v2.message_readings(text)
    assert [i.reason for i in items if isinstance(i, Invalid)] == ["schema", "unknown_metric"]
    assert not any(isinstance(i, Retracted) for i in items)


def test_a_fhir_observation_entered_in_error_withdraws_each_vital_sign_it_names():
    obs = {"resourceType": "Observation", "status": "entered-in-error", "effectiveDateTime": "2026-11-24T10:15:00Z",
           "subject": {"reference": "Patient/p1"}, "device": {"reference": "Device/mon-1"},
           "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
           "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}}
    (w,) = fhir.observation_readings(obs)
    assert isinstance(w, Retracted) and dict(w.mapping) == {
        "patient": "p1", "device": "mon-1", "metric": "heart_rate", "ts": 1795515300000,
        "reason": "FHIR Observation entered-in-error"}
    # Without its value (FHIR allows that for an error), and a blood-pressure panel by its components.
    (bare,) = fhir.observation_readings({k: v for k, v in obs.items() if k != "valueQuantity"})
    assert bare.mapping["metric"] == "heart_rate"
    panel = obs | {"code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]}, "component": [
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
         "valueQuantity": {"value": 120, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}]}
    del panel["valueQuantity"]
    assert [w.mapping["metric"] for w in fhir.observation_readings(panel)] == ["sbp"]
    (ok,) = fhir.observation_readings(obs | {"status": "final"})
    assert ok["value"] == 72
