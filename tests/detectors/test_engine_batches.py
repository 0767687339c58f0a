"""The engine takes every batch shape a gateway or a replay can produce without raising."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from detectors.engine import DetectorEngine
from wardwatch.metrics_catalog import METRICS

from .helpers import columns

BASE = 1_700_000_000_000
METRIC_NAMES = [m.value for m in METRICS]

values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e308, 1e308),
                   st.sampled_from([0.0, -0.0, 1e-300, 300.0, 97.0, 60.0]))
times = st.one_of(st.integers(BASE - 10**11, BASE + 10**11), st.integers(0, 2**53), st.just(BASE))
reading = st.tuples(st.sampled_from(["p1", "p2", "p3", "a-long-patient-id-" + "x" * 40]),
                    st.sampled_from(METRIC_NAMES), values, times)
batch = st.lists(reading, max_size=40)


def as_columns(rows):
    if not rows:
        return columns([], [], [], [])
    p, m, v, t = zip(*rows)
    return columns(p, m, v, t)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(batch, min_size=1, max_size=8), st.booleans())
def test_any_sequence_of_batches_is_processed_without_raising(batches, resend):
    engine = DetectorEngine()
    for rows in batches:
        engine.process(as_columns(rows))
        if resend:  # the same request again: every reading is now a repeat
            out = engine.process(as_columns(rows))
            assert out.late == len(rows)
            # repeats are still stored (they overwrite): one point per patient and reading time
            assert len(out.vitals_lines) == len({(p, t) for p, _, _, t in rows})
    engine.tick(BASE + 10**12)


def test_a_resent_batch_of_only_repeats_is_stored_and_raises_nothing():
    engine = DetectorEngine()
    cols = columns(["p1"] * 3, ["heart_rate", "spo2", "resp_rate"], [80.0, 97.0, 16.0], [BASE] * 3)
    first = engine.process(cols)
    again = engine.process(cols)
    assert again.late == 3 and again.events == []
    # stored again under the same series, time and raw fields, so InfluxDB overwrites rather than adds
    # (a repeat drives no filter, so it has no clean value: the first write's stays)
    def key(line):
        head, fields, ts = line.split(" ")
        return head, ts, [f for f in fields.split(",") if "_clean=" not in f]
    assert sorted(map(key, again.vitals_lines)) == sorted(map(key, first.vitals_lines))


def test_a_batch_of_only_old_readings_is_late_not_fatal():
    engine = DetectorEngine()
    engine.process(columns(["p1"], ["heart_rate"], [80.0], [BASE + 60_000]))
    out = engine.process(columns(["p1", "p1"], ["heart_rate", "heart_rate"], [81.0, 82.0], [BASE, BASE + 1000]))
    assert out.late == 2


def test_rollback_undoes_a_batch_exactly():
    engine = DetectorEngine()
    engine.process(columns(["p1"] * 20, ["spo2"] * 20, [97.0] * 20, [BASE + 1000 * i for i in range(20)]))
    before = engine.state_dict("p1")
    cols = columns(["p1", "p9"] * 10, ["spo2"] * 20, [80.0] * 20, [BASE + 100_000 + 1000 * i for i in range(20)])
    sp = engine.savepoint(cols)
    engine.process(cols)
    assert engine.state_dict("p1") != before
    engine.rollback(sp)
    assert engine.state_dict("p1") == before
    # replaying after the rollback gives what a first run gives
    fresh = DetectorEngine()
    fresh.process(columns(["p1"] * 20, ["spo2"] * 20, [97.0] * 20, [BASE + 1000 * i for i in range(20)]))
    a, b = engine.process(cols), fresh.process(cols)
    assert [e.event_id for e in a.events] == [e.event_id for e in b.events]
    assert np.array_equal(engine.state_dict("p9") is None, fresh.state_dict("p9") is None)


def test_a_disabled_alarm_comes_back_on_by_itself_when_the_disable_ends():
    import time

    engine = DetectorEngine(stale_after_ms=10**12)
    now = int(time.time() * 1000)
    engine.process(columns(["p1"], ["spo2"], [97.0], [now - 60_000]))
    engine.set_limits("p1", {"disabled": {"spo2_low": now + 5_000, "spo2_critical": now + 5_000}})
    low = lambda: engine.process(columns(["p1"] * 30, ["spo2"] * 30, [80.0] * 30,  # noqa: E731
                                         [int(engine.last_seen[0]) + 1000 * (i + 1) for i in range(30)])).events
    assert [e for e in low() if e.alert.condition.startswith("spo2")] == []  # switched off, as the clinician asked
    engine.tick(now + 6_000)  # the disable's end has passed
    assert {e.alert.condition for e in low()} >= {"spo2_low", "spo2_critical"}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(float("nan")),
                                   st.sampled_from([0.0, -0.0, 80.0, 1e308, -1e308])), min_size=7, max_size=7),
                min_size=1, max_size=20))
def test_the_filters_median_is_numpys_nanmedian_exactly(windows):
    import warnings

    from detectors.filters import nanmedian_rows

    a = np.array(windows, float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows and overflow, both answered NaN/inf
        want = np.nanmedian(a, axis=1)
    np.testing.assert_array_equal(nanmedian_rows(a), want)
