import pytest
from pydantic import ValidationError

from wardwatch.metrics_catalog import CATALOG, Metric, to_canonical
from wardwatch.models import Alert, AlertEvent, AlertEventType, AlertKind, Priority, Reading, alert_id


def test_reading_gets_a_stable_id_from_device_metric_and_time():
    a = Reading(patient="p1", device="d1", metric="heart_rate", value=72, unit="/min", ts=1_700_000_000_000)
    b = Reading(patient="p1", device="d1", metric="heart_rate", value=73, unit="/min", ts=1_700_000_000_000)
    c = Reading(patient="p1", device="d1", metric="heart_rate", value=72, unit="/min", ts=1_700_000_001_000)
    assert a.id == b.id
    assert a.id != c.id


@pytest.mark.parametrize("bad", [
    dict(value=float("nan")),
    dict(metric="blood_sugar"),
    dict(patient="p 1; DROP"),
    dict(ts=-5),
    dict(quality=1.5),
    dict(extra_field=1),
])
def test_reading_rejects_malformed_fields(bad):
    base = dict(patient="p1", device="d1", metric="spo2", value=97, unit="%", ts=1)
    with pytest.raises(ValidationError):
        Reading(**(base | bad))


def test_every_metric_has_loinc_and_ucum():
    for m in Metric:
        info = CATALOG[m]
        assert info.loinc and "-" in info.loinc
        assert info.unit
    assert CATALOG[Metric.heart_rate].loinc == "8867-4"
    assert CATALOG[Metric.spo2].mdc == 150456


def test_units_convert_to_canonical_or_fail_clearly():
    assert to_canonical(Metric.temperature, 98.6, "[degF]") == pytest.approx(37.0)
    assert to_canonical(Metric.spo2, 0.97, "1") == pytest.approx(97.0)
    assert to_canonical(Metric.heart_rate, 72, "bpm") == 72
    with pytest.raises(ValueError, match="cannot be converted"):
        to_canonical(Metric.heart_rate, 72, "mm[Hg]")


def test_alert_ids_are_deterministic_and_events_round_trip():
    aid = alert_id("p1", "spo2_low", 1000)
    assert aid == alert_id("p1", "spo2_low", 1000) != alert_id("p1", "spo2_low", 2000)
    alert = Alert(id=aid, patient="p1", kind=AlertKind.physiological, priority=Priority.high,
                  condition="spo2_low", message="SpO2 85 % below 90 % for 15 s", values={"spo2": 85},
                  onset=1000, raised_at=16000, updated_at=16000)
    ev = AlertEvent(event_id=AlertEvent.make_id(aid, AlertEventType.raised, 16000), type="raised", alert=alert, at=16000)
    assert AlertEvent.from_json(ev.to_json()) == ev
    assert Priority.medium.raised() is Priority.high and Priority.high.rank == 3
