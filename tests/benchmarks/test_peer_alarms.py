"""The peers' limit alarms are WardWatch's: for the same readings, the per-message rules of the
Quix Streams and per-message builds publish the very events the engine's limit alarms do."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from benchmarks.naive import PatientRules
from benchmarks.pipeline.alarms import RULES, alert_event
from detectors.alarms.limits import LimitAlarms
from detectors.protocol import Round
from wardwatch.metrics_catalog import METRIC_INDEX, Metric

VITALS = ("spo2", "heart_rate", "resp_rate")
# Values near every limit of the three vitals (and their hysteresis bands), so sequences cross them.
VALUE = st.one_of(st.sampled_from([80.0, 84.9, 85.0, 86.5, 87.0, 89.9, 90.0, 91.9, 92.0, 97.0]),  # SpO2's limits
                  st.floats(3.0, 140.0, allow_nan=False).map(lambda v: round(v, 1)))


def engine_events(readings: list[tuple[str, float, int]]) -> list:
    """The engine's limit alarms, one reading a round, every reading valid (the load is clean)."""
    alarms = LimitAlarms(ids=["p1"], index={"p1": 0})
    alarms.resize(1)
    events: list = []
    for metric, v, ts in readings:
        rnd = Round(np.array([0]), np.array([METRIC_INDEX[Metric(metric)]]), np.array([v]), np.array([ts]),
                    np.array([np.nan]), ["p1"], off=np.array([False]), valid=np.array([True]), clean=np.array([v]))
        alarms.update(rnd, events)
    return events


def peer_events(readings: list[tuple[str, float, int]]) -> list:
    rules = PatientRules()
    return [alert_event("p1", c) for metric, v, ts in readings for c in rules.update(RULES, metric, v, ts)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(VITALS), VALUE, st.integers(1, 12)), min_size=1, max_size=120))
def test_the_peers_raise_and_clear_exactly_the_engines_alarms(steps):
    ts, readings = 0, []
    for metric, v, gap_s in steps:
        ts += 1000 * gap_s
        readings.append((metric, v, ts))
    assert [e.model_dump() for e in peer_events(readings)] == [e.model_dump() for e in engine_events(readings)]


def test_a_desaturation_raises_the_same_alert_event_as_the_engine():
    readings = [("spo2", 84.0, 1000 * t) for t in range(20)] + [("spo2", 97.0, 20_000)]
    events = peer_events(readings)
    assert [(e.type.value, e.alert.condition, e.at) for e in events] == [
        ("raised", "spo2_critical", 5000), ("raised", "spo2_low", 15_000),
        ("cleared", "spo2_low", 20_000), ("cleared", "spo2_critical", 20_000)]  # in the rule table's order
    assert [e.to_json() for e in events] == [e.to_json() for e in engine_events(readings)]
