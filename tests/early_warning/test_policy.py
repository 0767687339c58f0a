"""The alarm policy as trained and as run: the offline simulation `wardwatch train` tunes on is the
engine's early-warning alarm, the risk is carried forward per patient, and every row gets a risk."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.alarms.early_warning import EarlyWarningAlarm
from detectors.training import alarm_with_hysteresis, forward_fill_by_patient, prior_by_hour

risks = st.lists(st.one_of(st.floats(0, 1), st.just(float("nan"))), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(st.lists(risks, min_size=1, max_size=4), st.floats(0.05, 0.9), st.floats(0.1, 1.0))
def test_the_tuned_alarm_simulation_is_the_engines_alarm(patients, medium, ratio):
    clear = medium * ratio
    pid = np.concatenate([np.full(len(r), f"p{i}") for i, r in enumerate(patients)])
    risk = np.concatenate([np.array(r, float) for r in patients])
    simulated = alarm_with_hysteresis(pid, risk, medium, clear)
    for i, r in enumerate(patients):
        alarm = EarlyWarningAlarm()
        alarm.resize(1)
        active, events = [], []
        for t, x in enumerate(r):
            # The risk stage's levels: 2 from medium (3 for high is the same alarm), 1 between clear and medium.
            level = 2 if x >= medium else 1 if x >= clear else 0
            alarm.update(np.array([0]), np.array([level], np.int8), np.array(["risk_medium"], object), [["r"]],
                         np.array([t]), ["p"], events)
            active.append(alarm.score_active[0] > 0)
        assert simulated[pid == f"p{i}"].tolist() == active


@given(st.lists(st.tuples(st.integers(0, 3), st.one_of(st.floats(0, 1), st.just(float("nan")))), min_size=1,
                max_size=80))
def test_a_risk_is_carried_forward_within_a_patient_never_across(rows):
    rows = sorted(rows, key=lambda r: r[0])  # patients' rows are consecutive, as in a CinC file
    pid = np.array([f"p{p}" for p, _ in rows])
    vals = np.array([v for _, v in rows], float)
    got = forward_fill_by_patient(pid, vals)
    last: dict = {}
    for i, (p, v) in enumerate(rows):
        if v == v:
            last[p] = v
        want = last.get(p, np.nan)
        assert (np.isnan(got[i]) and np.isnan(want)) or got[i] == want


def test_the_prior_is_the_base_rate_by_hour_of_stay_pooled_where_rows_are_few():
    iculos = np.r_[np.full(300, 1), np.full(300, 2), np.full(10, 3), np.full(10, 4)]
    labels = np.r_[np.zeros(300), np.r_[np.ones(30), np.zeros(270)], np.ones(5), np.zeros(5), np.ones(10)]
    assert prior_by_hour(iculos, labels) == [0.0, 0.1, pytest.approx(0.75)]


stays = st.lists(st.tuples(st.integers(1, 60), st.one_of(st.none(), st.integers(0, 59)),
                           st.lists(st.booleans(), min_size=60, max_size=60)), min_size=1, max_size=5)


@settings(max_examples=150, deadline=None)
@given(stays)
def test_per_patient_metrics_follow_the_challenges_own_utility_loop(patients):
    from detectors.early_warning.metrics import _utilities, per_patient

    pid, labels, alert = [], [], []
    for i, (n, label_from, pred) in enumerate(patients):
        y = np.zeros(n, int)
        if label_from is not None and label_from < n:
            y[label_from:] = 1
        pid += [f"p{i}"] * n
        labels.append(y)
        alert.append(np.array(pred[:n], np.int8))
    pp = per_patient(np.array(pid), np.concatenate(labels), np.concatenate(alert))
    for i, (y, a) in enumerate(zip(labels, alert)):
        assert (pp["observed"][i], pp["best"][i], pp["inaction"][i]) == pytest.approx(_utilities(y, a))
        starts = a.astype(bool) & ~np.r_[False, a[:-1].astype(bool)]
        assert pp["episodes"][i] == starts.sum()


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 60), st.one_of(st.none(), st.integers(0, 59)), st.lists(st.booleans(), min_size=60, max_size=60),
       st.integers(0, 59))
def test_the_training_targets_gain_is_what_one_alert_changes_in_the_challenges_utility(n, label_from, pred, t):
    """The trees are trained on utility_gain: flipping one row's alert must change the challenge's own
    per-patient utility loop by exactly that row's gain, whatever the other rows predict."""
    from detectors.early_warning.metrics import patient_utility, utility_gain
    from detectors.training import utility_targets

    t = t % n
    y = np.zeros(n, int)
    septic = label_from is not None and label_from < n
    if septic:
        y[label_from:] = 1
    on, off = np.array(pred[:n]), np.array(pred[:n])
    on[t], off[t] = True, False
    d = np.arange(n) - (label_from + 6) if septic else np.full(n, np.nan)
    gain = utility_gain(d)
    assert patient_utility(y, on) - patient_utility(y, off) == pytest.approx(gain[t])
    target, weight = utility_targets(d)
    assert target[t] == (gain[t] > 0) and weight[t] == pytest.approx(abs(gain[t]))


def test_hours_from_onset_counts_from_six_hours_after_the_first_label():
    import pandas as pd

    from detectors.training import Features, hours_from_onset

    lab = pd.DataFrame({"patient": ["a"] * 10 + ["b"] * 3, "ICULOS": list(range(1, 11)) + [1, 2, 3],
                        "SepsisLabel": [0] * 4 + [1] * 6 + [0, 0, 0]})
    f = Features(np.array(["a", "a", "b"]), np.array([2, 10, 3]), np.zeros((3, 1)), None, None, None)
    d = hours_from_onset(f, lab)
    assert d[:2].tolist() == [2 - 11, 10 - 11] and np.isnan(d[2])
