"""A probe that falls silent while the patient's other readings go on is a technical alarm: device
silence needs every reading to stop, and the scores would keep the probe's last value for hours."""

import numpy as np

from detectors.engine import DetectorEngine

from .helpers import columns

T0 = 1_700_000_000_000


def stream(engine, seconds, metrics_at, patient="p1"):
    """One reading a second of each metric ``metrics_at(s)`` gives; the events, in order."""
    events = []
    for s in seconds:
        metrics = metrics_at(s)
        values = {"heart_rate": 80.0, "spo2": 97.0, "resp_rate": 16.0}
        events += engine.process(columns(patient, metrics, [values[m] for m in metrics], [T0 + 1000 * s] * len(metrics))).events
    return [(e.type.value, e.alert.condition, e.alert.kind.value) for e in events], events


def test_an_oximeter_that_stops_while_the_heart_rate_goes_on_raises_signal_lost_once_and_clears_when_it_returns():
    engine = DetectorEngine(stale_after_ms=60_000)
    both, without = ["heart_rate", "spo2"], ["heart_rate"]
    seen, events = stream(engine, range(300), lambda s: both if s < 30 or s >= 200 else without)
    assert seen == [("raised", "signal_lost_spo2", "technical"), ("cleared", "signal_lost_spo2", "technical")]
    raised, cleared = events
    assert raised.alert.id == cleared.alert.id  # one alarm: raised, then cleared
    assert raised.at == T0 + 90_000 and cleared.at == T0 + 200_000
    assert "check the probe" in raised.alert.message


def test_values_charted_minutes_apart_are_no_stream_and_never_signal_lost():
    engine = DetectorEngine(stale_after_ms=60_000)
    # HR every second; SpO2 charted every 5 minutes, then not again for an hour
    seen, _ = stream(engine, range(0, 3600), lambda s: ["heart_rate", "spo2"] if s % 300 == 0 and s < 900 else ["heart_rate"])
    assert not [x for x in seen if x[1].startswith("signal_lost")]


def test_a_late_spo2_reading_does_not_clear_the_alarm_its_newer_silence_raised():
    engine = DetectorEngine(stale_after_ms=60_000)
    seen, _ = stream(engine, range(120), lambda s: ["heart_rate", "spo2"] if s < 30 else ["heart_rate"])
    assert seen == [("raised", "signal_lost_spo2", "technical")]
    late = engine.process(columns("p1", ["spo2"], [97.0], [T0 + 10_500])).events  # resent from before the silence
    assert late == []


def test_a_monitor_whose_every_probe_stops_is_device_silent_not_signal_lost():
    engine = DetectorEngine(stale_after_ms=60_000)
    seen, _ = stream(engine, range(30), lambda s: ["heart_rate", "spo2", "resp_rate"])
    ticked = engine.tick(T0 + 200_000).events
    assert [e.alert.condition for e in ticked] == ["device_silent"] and seen == []


def test_an_early_warning_is_not_cleared_as_low_risk_because_its_probes_fell_silent():
    """NEWS2 9 from HR, RR and SpO2; then those probes stop and only the thermometer goes on. Their
    values grow stale and the score, from the temperature alone, falls to 0: that is no recovery."""
    from detectors.scores.news2 import News2Stage

    engine = DetectorEngine(stages=[News2Stage(max_age_ms=90_000)], stale_after_ms=60_000)
    sick = {"heart_rate": 135.0, "resp_rate": 26.0, "spo2": 90.0, "temperature": 37.0}
    well = {"heart_rate": 70.0, "resp_rate": 14.0, "spo2": 97.0, "temperature": 37.0}
    events = []
    for s in range(600):
        vitals = sick if s < 60 else {"temperature": 37.0} if s < 400 else well
        events += engine.process(columns("p1", list(vitals), list(vitals.values()), [T0 + 1000 * s] * len(vitals))).events
    seen = [(e.type.value, e.alert.condition, (e.at - T0) // 1000) for e in events if e.alert.condition == "early_warning"]
    assert seen[0][:2] == ("raised", "early_warning") and seen[0][2] < 60
    cleared = [x for x in seen if x[0] == "cleared"]
    assert len(cleared) == 1 and cleared[0][2] >= 400  # only once the probes are back, with a low score
