"""A metric left unjudged behind a reading stamped in the future says so (clock_ahead_<metric>)."""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from detectors.engine import DetectorEngine
from wardwatch.models import AlertEventType, AlertKind, Priority

from .helpers import columns

T0 = 1_700_000_000_000


def stream(engine, seconds, spo2, *, start=0, stamp_offset_ms=0, glitch_at=None, glitch_ms=100_000, resent_after_ms=0):
    """One patient's HR and SpO2 every second, each batch arriving 300 ms after it was taken (or
    ``resent_after_ms`` later still); the device stamps ``stamp_offset_ms`` off the truth, and once
    (``glitch_at``) ``glitch_ms`` ahead."""
    events = []
    for s in range(start, start + seconds):
        taken = T0 + 1000 * s
        stamp = taken + stamp_offset_ms + (glitch_ms if s == glitch_at else 0)
        out = engine.process(columns("p1", ["heart_rate", "spo2"], [80.0, spo2], [taken + stamp_offset_ms, stamp]),
                             now_ms=taken + 300 + resent_after_ms)
        events += [(s, e) for e in out.events]
    return events


def conditions(events, type_=AlertEventType.raised):
    return [(s, e.alert.condition) for s, e in events if e.type is type_]


def test_a_clock_that_jumps_ahead_once_says_that_spo2_is_not_judged_until_it_is_again():
    engine = DetectorEngine(stale_after_ms=60_000)
    events = stream(engine, 30, 97.0, glitch_at=20)  # one SpO2 stamped 100 s ahead
    events += stream(engine, 150, 80.0, start=30)
    raised = [(s, e) for s, e in events if e.alert.condition == "clock_ahead_spo2" and e.type is AlertEventType.raised]
    assert [s for s, _ in raised] == [21], "raised with the first reading left unjudged, once"
    alarm = raised[0][1].alert
    assert (alarm.kind, alarm.priority) == (AlertKind.technical, Priority.medium)
    assert "SpO" in alarm.message and "not being judged" in alarm.message
    assert re.search(r"stamped (99|100) s ahead", alarm.message), alarm.message
    cleared = [s for s, c in conditions(events, AlertEventType.cleared) if c == "clock_ahead_spo2"]
    assert cleared == [121], "cleared once the device time passes the one from the future"
    spo2_low = [s for s, c in conditions(events) if c.startswith("spo2") and "low" in c]
    assert spo2_low and spo2_low[0] > 121, "(the limitation it announces: SpO2 80 % is judged from then on)"
    assert "clock_ahead_heart_rate" not in {c for _, c in conditions(events)}, "heart rate was judged throughout"


def test_a_device_whose_clock_runs_fast_steadily_is_judged_as_ever_and_raises_no_clock_alarm():
    engine = DetectorEngine(stale_after_ms=60_000)
    events = stream(engine, 30, 97.0, stamp_offset_ms=60_000) + stream(engine, 90, 80.0, start=30, stamp_offset_ms=60_000)
    names = {c for _, c in conditions(events)}
    assert not any(c.startswith("clock_ahead") for c in names)
    assert any(c.startswith("spo2") and "low" in c for c in names)


def test_a_resent_batch_of_right_times_is_not_a_clock_problem():
    engine = DetectorEngine(stale_after_ms=60_000)
    stream(engine, 20, 97.0)
    again = stream(engine, 20, 97.0, resent_after_ms=20_000)  # the gateway sends it all again
    assert not any(e.alert.condition.startswith("clock_ahead") for _, e in again)


def test_offline_scoring_has_no_arrival_time_and_no_clock_alarm():
    engine = DetectorEngine(stale_after_ms=60_000)
    ts = T0 + 1000 * np.arange(40)
    ts[20] += 100_000
    out = engine.process(columns("p1", "spo2", np.full(40, 97.0), ts))
    out2 = engine.process(columns("p1", "spo2", np.full(5, 97.0), T0 + 1000 * np.arange(40, 45)))
    assert not any(e.alert.condition.startswith("clock_ahead") for e in out.events + out2.events)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.tuples(st.sampled_from(["p1", "p2"]), st.sampled_from(["spo2", "heart_rate"]),
                                   st.integers(-30_000, 120_000)), min_size=1, max_size=6), min_size=1, max_size=25))
def test_whatever_the_clocks_do_each_clock_alarm_is_raised_once_and_cleared_once(batches):
    """Raised only when the metric's last judged time lies more than the slack ahead of the clock,
    and active exactly until the metric's next judged reading (which moves that time on)."""
    from detectors.alarms.clock_ahead import SLACK_MS
    from wardwatch.metrics_catalog import METRIC_INDEX, Metric

    engine = DetectorEngine(stale_after_ms=60_000)
    held: dict[tuple, int] = {}  # active alarm -> the metric's last judged time when it was raised

    def last_judged(patient, condition):
        metric = METRIC_INDEX[Metric(condition[len("clock_ahead_"):])]
        return int(engine.filters.last_ts[engine.table.index[patient], metric])

    for k, batch in enumerate(batches):
        now = T0 + 1000 * k
        p, m, skew = zip(*batch)
        before = {(pt, f"clock_ahead_{mt}"): last_judged(pt, f"clock_ahead_{mt}")
                  for pt, mt, _ in batch if pt in engine.table.index}
        out = engine.process(columns(list(p), list(m), [90.0] * len(batch), [now + s for s in skew]), now_ms=now)
        for e in out.events:
            if e.alert.condition.startswith("clock_ahead_"):
                key = (e.alert.patient, e.alert.condition)
                if e.type is AlertEventType.raised:
                    assert key not in held, "raised twice without a clear"
                    held[key] = before[key]  # judged before this batch
                    assert held[key] > now + SLACK_MS, "raised only behind a time ahead of the clock"
                else:
                    assert e.type is AlertEventType.cleared and key in held, "cleared without being raised"
                    assert last_judged(*key) > held.pop(key), "cleared by a reading judged after it"
        for key, last in held.items():
            judged_since = last_judged(*key) != last
            assert not judged_since, "active only while none of the metric's readings is judged"
