"""Early-warning scores on real CinC 2019 records: NEWS2, the partial flag, the learned risk,
safe artefacts, and `wardwatch score`'s output."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from detectors.early_warning.metrics import evaluate, normalised_utility
from detectors.scores.news2 import News2Stage, news2
from detectors.scores.risk import ARTEFACTS, TreeModel
from detectors.training import split_patients
from wardwatch.metrics_catalog import METRIC_INDEX, METRICS, Metric


def vitals(**kw) -> np.ndarray:
    row = np.full((1, len(METRICS)), np.nan)
    for k, v in kw.items():
        row[0, METRIC_INDEX[Metric(k)]] = v
    return row


@pytest.mark.parametrize("kw,points", [
    (dict(resp_rate=8), 3), (dict(resp_rate=9), 1), (dict(resp_rate=20), 0), (dict(resp_rate=21), 2), (dict(resp_rate=25), 3),
    (dict(spo2=91), 3), (dict(spo2=92), 2), (dict(spo2=95), 1), (dict(spo2=96), 0),
    (dict(sbp=90), 3), (dict(sbp=100), 2), (dict(sbp=110), 1), (dict(sbp=219), 0), (dict(sbp=220), 3),
    (dict(heart_rate=40), 3), (dict(heart_rate=41), 1), (dict(heart_rate=91), 1), (dict(heart_rate=111), 2), (dict(heart_rate=131), 3),
    (dict(temperature=35.0), 3), (dict(temperature=36.0), 1), (dict(temperature=38.1), 1), (dict(temperature=39.1), 2),
])
def test_news2_follows_the_rcp_table_at_its_edges(kw, points):
    total, _, _ = news2(vitals(**kw))
    assert total[0] == points


def test_a_watch_gives_a_partial_score_that_says_what_is_missing():
    stage = News2Stage()
    latest = vitals(spo2=93, pulse_rate=118)
    res = stage.update(np.array([0]), latest, np.zeros_like(latest, dtype=np.int64), 0)
    assert res.scores["news2"][0] == 4 and res.partial["news2"][0]
    assert res.reasons[0] == ["spo2 +2", "pulse +2", "missing: respiration, systolic_bp, temperature"]


@pytest.fixture(scope="module")
def heldout(shared_data):
    df = pd.read_csv(shared_data / "cinc2019" / "cinc2019_setB_dev.csv.gz")
    test = split_patients(df["patient"].astype(str).to_numpy())["test"]
    sample = sorted(test)[:400]
    return df[df["patient"].astype(str).isin(sample)].reset_index(drop=True)


def test_learned_risk_beats_news2_on_held_out_patients(heldout):
    from detectors.offline import score_frame

    res = score_frame(heldout.drop(columns=["SepsisLabel"]))
    labels = heldout["SepsisLabel"].to_numpy()
    ww = evaluate(res.patient, labels, res.risk, res.alert)
    n2 = evaluate(res.patient, labels, np.nan_to_num(res.news2), (np.nan_to_num(res.news2) >= 5).astype(np.int8))
    assert ww["auroc"] > n2["auroc"] + 0.05
    assert ww["auroc"] > 0.7
    assert ww["episodes_per_patient_day"] < n2["episodes_per_patient_day"]


def test_utility_of_perfect_and_silent_predictions():
    labels = np.r_[np.zeros(30), np.ones(10)]
    best = np.zeros(40)
    best[24:40] = 1  # 12 h before to 3 h after clinical onset (the label starts 6 h before it, at 30)
    assert normalised_utility([(labels, best)]) == pytest.approx(1.0)
    assert normalised_utility([(labels, np.zeros(40))]) == pytest.approx(0.0)


def test_artefact_loads_as_data_and_refuses_tampering(tmp_path):
    model = TreeModel.load(ARTEFACTS / "risk")
    assert model.meta["data_sha256"] and model.meta["seed"] == 2019 and "thresholds" in model.meta
    shutil.copy(ARTEFACTS / "risk.npz", tmp_path / "risk.npz")
    meta = json.loads((ARTEFACTS / "risk.json").read_text())
    (tmp_path / "risk.json").write_text(json.dumps(meta | {"features": meta["features"][:-1]}))
    with pytest.raises(ValueError, match="does not match"):
        TreeModel.load(tmp_path / "risk")
    np.savez(tmp_path / "evil.npz", offsets=np.array([object()], dtype=object))
    (tmp_path / "evil.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError):
        TreeModel.load(tmp_path / "evil")  # object arrays need pickle: refused


def test_score_writes_one_row_per_input_row_and_never_reads_the_label(heldout, tmp_path):
    few = heldout[heldout["patient"].isin(heldout["patient"].unique()[:15])]
    with_label, without = tmp_path / "with.csv", tmp_path / "without.csv"
    few.to_csv(with_label, index=False)
    few.drop(columns=["SepsisLabel"]).sample(frac=1, axis=1, random_state=1).to_csv(without, index=False)
    outs = []
    for src in (with_label, without):
        out = tmp_path / f"{src.stem}.out.csv"
        subprocess.run([sys.executable, "-m", "app.cli", "score", "--input", str(src), "--output", str(out)],
                       check=True, capture_output=True)
        outs.append(out.read_text())
    assert outs[0] == outs[1]
    rows = list(csv.DictReader(outs[0].splitlines()))
    assert len(rows) == len(few)
    assert list(rows[0]) == ["patient", "ICULOS", "risk", "news2", "alert", "priority", "no_data"]
    assert {r["alert"] for r in rows} <= {"0", "1"}
    assert all(r["risk"] != "" for r in rows), "a risk on every row"


def test_isolation_forest_as_arrays_scores_like_scikit_learn():
    from sklearn.ensemble import IsolationForest

    from detectors.training import export_isolation_forest

    rng = np.random.default_rng(0)
    usual = rng.normal(0, 1, (2000, 6))
    forest = IsolationForest(n_estimators=50, max_samples=128, random_state=0).fit(usual)
    trees = export_isolation_forest(forest)
    probe = np.vstack([usual[:50], rng.normal(0, 1, (50, 6)) + 6])
    assert np.allclose(trees.score(probe), -forest.score_samples(probe))
    assert trees.score(probe[50:]).mean() > trees.score(probe[:50]).mean() + 0.1  # far from baseline = anomalous


def test_trend_score_counts_vitals_moving_the_wrong_way():
    from detectors.scores.trend import trend_score

    # HR +12, SpO2 -4, temperature +0.2, SBP -20, MAP -2, RR +5 over six hours: four deteriorating.
    assert trend_score(np.array([[12, -4, 0.2, -20, -2, 5]]))[0] == 4
    assert trend_score(np.array([[np.nan] * 6]))[0] == 0


def test_engine_stores_risk_anomaly_and_trend_scores_with_reasons(heldout):
    from detectors.early_warning.replay import replay
    from detectors.engine import DetectorEngine

    engine = DetectorEngine(stale_after_ms=10**15)
    one = heldout[heldout["patient"] == heldout["patient"].iloc[0]]
    replay(one.drop(columns=["SepsisLabel"]), engine)
    for name in ("news2", "risk", "iforest", "trend"):
        assert name in engine.scores and not np.isnan(engine.scores[name][0]), name


def test_every_row_has_a_risk_and_rows_before_the_first_vital_sign_say_no_data(heldout):
    from detectors.offline import score_frame
    from detectors.scores.risk import RiskStage

    res = score_frame(heldout.drop(columns=["SepsisLabel"]))
    assert not np.isnan(res.risk).any()
    vital_cols = ["HR", "O2Sat", "Temp", "SBP", "MAP", "Resp", "DBP", "EtCO2"]
    measured = heldout[vital_cols].notna().any(axis=1).to_numpy()
    before_first = ~pd.Series(measured).groupby(heldout["patient"].to_numpy()).cummax().to_numpy()
    assert before_first.any(), "these patients include hours before their first vital sign"
    assert np.array_equal(res.no_data.astype(bool), before_first)
    prior = RiskStage.shipped().prior(res.iculos[before_first])
    assert np.allclose(res.risk[before_first], prior)
    assert not res.alert[before_first].any(), "no data raises no alarm"


def test_the_risk_is_calibrated_on_held_out_patients(heldout):
    """Among 400 held-out patients the mean risk of each broad band is near its observed rate."""
    from detectors.early_warning.metrics import brier, reliability
    from detectors.offline import score_frame

    res = score_frame(heldout.drop(columns=["SepsisLabel"]))
    y = heldout["SepsisLabel"].to_numpy()
    assert brier(y, res.risk) < brier(y, np.full(len(y), y.mean()))
    for b in reliability(y, res.risk, edges=(0, 0.02, 0.1, 1.0)):
        assert abs(b["predicted"] - b["observed"]) < max(0.5 * b["predicted"], 0.01), b


def test_bootstrap_intervals_hold_the_point_estimate_and_are_reproducible(heldout):
    from detectors.early_warning.metrics import bootstrap
    from detectors.offline import score_frame

    few = heldout[heldout["patient"].isin(heldout["patient"].unique()[:150])]
    res = score_frame(few.drop(columns=["SepsisLabel"]))
    y = few["SepsisLabel"].to_numpy()
    point = evaluate(res.patient, y, res.risk, res.alert)
    ci = bootstrap(res.patient, y, res.risk, res.alert, n=50)
    assert ci == bootstrap(res.patient, y, res.risk, res.alert, n=50)
    for k in ("auroc", "utility", "episodes_per_patient_day"):
        lo, hi = ci[k]
        assert lo <= point[k] <= hi and lo < hi, k


def test_the_risk_resumes_from_a_checkpoint_as_if_never_stopped(heldout):
    from detectors.early_warning.replay import replay
    from detectors.engine import DetectorEngine

    one = heldout[heldout["patient"] == heldout.groupby("patient").size().idxmax()].drop(columns=["SepsisLabel"])
    half = len(one) // 2
    straight = replay(one, DetectorEngine(stale_after_ms=10**15))
    first = DetectorEngine(stale_after_ms=10**15)
    replay(one.iloc[:half], first)
    resumed = DetectorEngine(stale_after_ms=10**15)
    pid = str(one["patient"].iloc[0])
    resumed.load_state(pid, first.state_dict(pid))
    second = replay(one.iloc[half:], resumed)
    seen = second.no_data == 0  # (an hour without readings before the resumed replay's first has no carried risk)
    assert seen.sum() > 10 and np.allclose(second.risk[seen], straight.risk[half:][seen])


def test_drift_metrics_count_the_risks_predicted_and_the_alert_episodes(heldout):
    from prometheus_client import CollectorRegistry

    from detectors.early_warning.drift import EarlyWarningDrift
    from detectors.early_warning.replay import replay
    from detectors.engine import DetectorEngine, EngineOutput

    registry = CollectorRegistry()
    drift = EarlyWarningDrift(registry)
    few = heldout[heldout["patient"].isin(heldout["patient"].unique()[:40])].drop(columns=["SepsisLabel"])
    engine, events = DetectorEngine(stale_after_ms=10**15), []
    res = replay(few, engine, events=events)
    drift.observe(engine, EngineOutput(events=events))
    scored_hours = int((~res.no_data.astype(bool)).sum())  # one prediction per patient-hour with a reading
    hours = registry.get_sample_value("wardwatch_early_warning_patient_hours_total")
    assert 0 < hours <= scored_hours
    assert registry.get_sample_value("wardwatch_early_warning_risk_count") == hours
    raised = sum(1 for e in events if e.type.value == "raised" and e.alert.kind.value == "physiological"
                 and e.alert.priority.value in ("medium", "high"))
    assert raised > 0
    assert registry.get_sample_value("wardwatch_early_warning_alert_episodes_per_patient_day") == pytest.approx(
        raised / (hours / 24))
