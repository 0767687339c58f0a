"""Train the early-warning risk model from CinC 2019 data (``wardwatch train``), reproducibly.

Features come from replaying the training patients through the very detector engine the worker
runs (so training and serving cannot drift apart). Patients, never rows, are split with a fixed
seed into train (60 %: the trees), tune (20 %: calibration and the alarm policy) and held-out test
(20 %: the reported figures, ``wardwatch evaluate``). The model ships as arrays plus a JSON manifest
naming the data file's SHA-256, the split and seed, the library versions, the calibration, the
prior by hour of stay and the alarm thresholds.

Learning lives here and only here: this module uses scikit-learn (imported when training), fits the
isolation forest and the gradient-boosted trees, and exports them as plain arrays (the artefacts in
``detectors/artefacts``); the scoring classes in :mod:`detectors.scores` load those arrays and use
numpy only.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detectors.scores.gradient_boosting import TreeModel
from detectors.scores.isolation_forest import IsolationForestScore
from detectors.scores.risk import HOUR_MS, RiskStage
from detectors.scores.risk_features import H, feature_names

SEED = 2019
MAX_EPISODES_PER_DAY = 0.7
# The limit alarms that stay medium or high whatever the budget (issue 19): SpO2 < 85 %, RR < 8/min,
# SBP < 90 mmHg, and HR < 40/min (bradycardia needs a nurse as urgently).
NECESSARY_LIMITS = ("spo2_critical", "rr_low", "sbp_low", "hr_low")
# Before issue 19 every limit alarm but temp_high was medium or high.
ALERTING_BEFORE = ("spo2_low", "spo2_critical", "hr_high", "hr_low", "rr_high", "rr_low", "sbp_low", "sbp_high",
                   "temp_low")


def split_patients(patients: np.ndarray, seed: int = SEED) -> dict[str, set[str]]:
    uniq = np.array(sorted(set(patients.tolist())))
    perm = np.random.default_rng(seed).permutation(len(uniq))
    a, b = int(0.6 * len(uniq)), int(0.8 * len(uniq))
    return {"train": set(uniq[perm[:a]]), "tune": set(uniq[perm[a:b]]), "test": set(uniq[perm[b:]])}


class FeatureRecorder(RiskStage):
    """The risk stage without a model, keeping (rows, hour, features) of every update: the training
    rows come from the very feature code the worker runs."""

    def __init__(self) -> None:
        super().__init__()
        self.record: list = []

    def features(self, rows: np.ndarray, latest: np.ndarray, latest_ts: np.ndarray) -> np.ndarray:
        X = super().features(rows, latest, latest_ts)
        self.record.append((rows.copy(), (latest_ts.max(axis=1) // HOUR_MS).copy(), X.astype(np.float32)))
        return X


@dataclass
class Features:
    """The replayed data: one feature row per scored patient-hour, and per input row its patient, hour
    of stay and the limit conditions active then (the alarm policy is tuned on those)."""

    patient: np.ndarray  # per feature row
    iculos: np.ndarray
    X: np.ndarray
    row_patient: np.ndarray  # per input row
    row_iculos: np.ndarray
    row_limits: np.ndarray


def build_features(df) -> Features:
    """Replay ``df`` through the engine (the worker's limit alarms, NEWS2 and the risk's feature code)."""
    from detectors.early_warning.replay import BASE_MS, replay
    from detectors.engine import DetectorEngine
    from detectors.scores.news2 import News2Stage

    stage = FeatureRecorder()
    engine = DetectorEngine(stages=[News2Stage(), stage], stale_after_ms=10**15, score_alarms=False)
    res = replay(df, engine)
    ids = np.array(engine.table.ids, dtype=str)
    pats = np.concatenate([ids[r] for r, _, _ in stage.record])
    # Hour h of the replay is ICULOS h (the replay starts every patient at hour 1 of the same base).
    hours = np.concatenate([h for _, h, _ in stage.record]) - BASE_MS // HOUR_MS + 1
    X = np.vstack([x for _, _, x in stage.record])
    return Features(pats, hours.astype(np.int64), X, res.patient.astype(str), res.iculos.astype(np.int64),
                    res.limits_active)


def cached_features(df, sha: str, cache: str | None) -> Features:
    """:func:`build_features`, kept on disk under ``cache`` (keyed by the data's hash and the feature
    list) so that trying models does not replay 14,000 patients each time; no cache: from scratch."""
    if not cache:
        return build_features(df)
    key = hashlib.sha256((sha + json.dumps(feature_names()) + str(H)).encode()).hexdigest()[:16]
    path = Path(cache) / f"risk-features-{key}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return Features(**{k: z[k] for k in z.files})
    f = build_features(df)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **vars(f))
    return f


def forward_fill_by_patient(patient: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` carried forward within each patient's consecutive rows (NaN until the first)."""
    n = len(values)
    idx = np.where(~np.isnan(values), np.arange(n), -1)
    start = np.r_[True, patient[1:] != patient[:-1]]
    idx = np.where(start & (idx < 0), np.arange(n), idx)  # a patient's first row never looks back
    return values[np.maximum.accumulate(idx)]


def alarm_with_hysteresis(patient: np.ndarray, risk: np.ndarray, medium: float, clear: float) -> np.ndarray:
    """The early-warning alarm as the engine raises it (:class:`detectors.alarms.early_warning.EarlyWarningAlarm`):
    on when the risk reaches ``medium``, off only once it is below ``clear``; rows in patient order."""
    n = len(risk)
    on, off = risk >= medium, ~(risk >= clear)
    start = np.r_[True, patient[1:] != patient[:-1]]
    event = on | off | start
    state = np.where(on, 1, 0)
    last = np.maximum.accumulate(np.where(event, np.arange(n), -1))
    return state[last].astype(bool)


def alerting_rules(rules) -> np.ndarray:
    """Which limit rules count as alerts (medium or high priority), as ``wardwatch score`` counts them."""
    from wardwatch.models import Priority

    return np.array([r.priority in (Priority.medium, Priority.high) for r in rules])


def tune_policy(patient, labels, risk, limits, alerting: np.ndarray,
                max_episodes: float = MAX_EPISODES_PER_DAY) -> dict:
    """The risk alarm's medium and clear thresholds for the best challenge utility at no more than
    ``max_episodes`` alert episodes per patient-day, on tune patients' rows (in patient order), the
    limit alarms that alert (``alerting``, per rule) counted in the same budget."""
    from detectors.early_warning.metrics import evaluate

    limit_alert = limits[:, alerting].any(axis=1)
    alone = evaluate(patient, labels, np.nan_to_num(risk), limit_alert.astype(np.int8))
    best = None
    scored = risk[~np.isnan(risk)]
    for q in np.linspace(0.70, 0.998, 60):
        medium = float(np.quantile(scored, q))
        for f in (1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1):
            alert = (limit_alert | alarm_with_hysteresis(patient, risk, medium, medium * f)).astype(np.int8)
            m = evaluate(patient, labels, np.nan_to_num(risk), alert)
            if m["episodes_per_patient_day"] <= max_episodes and (best is None or m["utility"] > best[2]["utility"]):
                best = (medium, medium * f, m)
    if best is None:  # the limit alarms alone exceed the budget: the risk alarm only for the highest risks
        medium = float(np.quantile(scored, 0.998))
        best = (medium, medium, None)
    medium, clear, m = best
    return {"thresholds": {"medium": medium, "clear": clear, "high": float(max(medium, np.quantile(scored, 0.998)))},
            "tune": m, "limits_alone": alone}


def prior_by_hour(iculos: np.ndarray, labels: np.ndarray, min_rows: int = 200) -> list[float]:
    """The label's base rate at each hour of stay (1-based), up to the last hour with ``min_rows``
    rows; the hours beyond share one pooled rate (the last entry)."""
    top = 1
    counts = np.bincount(iculos, minlength=2)
    while top + 1 < len(counts) and counts[top + 1] >= min_rows:
        top += 1
    out = [float(labels[iculos == h].mean()) if counts[h] else 0.0 for h in range(1, top + 1)]
    out.append(float(labels[iculos > top].mean()) if (iculos > top).any() else out[-1])
    return [round(x, 5) for x in out]


def export_isolation_forest(forest) -> IsolationForestScore:
    """A fitted ``sklearn.ensemble.IsolationForest`` as the arrays :class:`IsolationForestScore` scores with."""
    trees = [e.tree_ for e in forest.estimators_]
    offsets = np.cumsum([0] + [t.node_count for t in trees])
    feats = [np.where(t.feature >= 0, np.asarray(f)[np.maximum(t.feature, 0)], -1)
             for t, f in zip(trees, forest.estimators_features_)]
    return IsolationForestScore({
        "offsets": offsets, "left": np.concatenate([t.children_left for t in trees]).astype(np.int32),
        "right": np.concatenate([t.children_right for t in trees]).astype(np.int32),
        "feature": np.concatenate(feats).astype(np.int32),
        "threshold": np.concatenate([t.threshold for t in trees]).astype(np.float64),
        "n": np.concatenate([t.n_node_samples for t in trees]).astype(np.float64),
        "max_samples": np.array([float(forest.max_samples_)])})


def export_tree_model(clf, meta: dict) -> TreeModel:
    """A fitted ``HistGradientBoostingClassifier`` as the arrays :class:`TreeModel` evaluates."""
    nodes = [p[0].nodes for p in clf._predictors]
    offsets = np.cumsum([0] + [len(n) for n in nodes])
    cat = np.concatenate(nodes)
    arrays = {"offsets": offsets, "feature": cat["feature_idx"].astype(np.int32),
              "threshold": cat["num_threshold"].astype(np.float64), "left": cat["left"].astype(np.int32),
              "right": cat["right"].astype(np.int32), "leaf": cat["is_leaf"].astype(bool),
              "missing_left": cat["missing_go_to_left"].astype(bool), "value": cat["value"].astype(np.float64)}
    return TreeModel(arrays, {**meta, "baseline": float(np.ravel(clf._baseline_prediction)[0])})


def save_tree_model(model: TreeModel, path: Path) -> None:
    """The risk artefact: ``path.npz`` (arrays, no pickle) and ``path.json`` (the manifest)."""
    np.savez_compressed(path.with_suffix(".npz"), **model.a)
    path.with_suffix(".json").write_text(json.dumps(model.meta, indent=2))


# Where physiology gives the direction, the trees may only follow it (+1: higher means more risk):
# NEWS2 and its parts, the shock index, the trend count and the anomaly. Vitals themselves are
# U-shaped (too high and too low are both bad), so they stay free.
MONOTONE = {"news2": 1, "news2_rr": 1, "news2_spo2": 1, "news2_sbp": 1, "news2_pulse": 1, "news2_temp": 1,
            "shock_index": 1, "trend": 1, "iforest": 1}
TREE_PARAMS = dict(max_iter=400, learning_rate=0.05, max_leaf_nodes=31, min_samples_leaf=100,
                   l2_regularization=1.0, early_stopping=True, n_iter_no_change=30)


def fit_trees(X, y, X_val, y_val, seed: int, w=None, w_val=None):
    from sklearn.ensemble import HistGradientBoostingClassifier

    names = feature_names()
    cst = [MONOTONE.get(n, 0) for n in names]
    clf = HistGradientBoostingClassifier(**TREE_PARAMS, monotonic_cst=cst, random_state=seed)
    return clf.fit(X, y, sample_weight=w, X_val=X_val, y_val=y_val, sample_weight_val=w_val)


def hours_from_onset(f: Features, lab) -> np.ndarray:
    """Per feature row: its hour of stay minus the patient's clinical onset (the first SepsisLabel
    hour + 6, as the challenge defines it: the utility's own ``- DT_OPTIMAL``); NaN for a patient who
    never becomes septic."""
    from detectors.early_warning.metrics import DT_OPTIMAL

    first = lab[lab["SepsisLabel"] == 1].groupby("patient")["ICULOS"].min()
    return f.iculos - (first - DT_OPTIMAL).reindex(f.patient).to_numpy(float)


def utility_targets(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the trees learn (issue 19: train for the utility, not the label): a row is positive
    where an alert there earns utility, weighted by what it earns or costs
    (:func:`detectors.early_warning.metrics.utility_gain`). Rows more than 3 h after onset earn
    nothing either way and get weight 0 (the utility ignores them)."""
    from detectors.early_warning.metrics import utility_gain

    g = utility_gain(d)
    return (g > 0).astype(np.int8), np.abs(g)


def fit_platt(margin: np.ndarray, y: np.ndarray) -> dict:
    """Platt scaling (a logistic regression on the trees' margin) on tune patients."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e6, max_iter=1000).fit(margin[:, None], y)
    return {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}


def row_labels(path: Path):
    import pandas as pd

    lab = pd.read_csv(path, usecols=["patient", "ICULOS", "SepsisLabel"])
    return lab.assign(patient=lab["patient"].astype(str))


def feature_labels(f: Features, lab) -> np.ndarray:
    import pandas as pd

    key = pd.DataFrame({"patient": f.patient, "ICULOS": f.iculos})
    return key.merge(lab, on=["patient", "ICULOS"], how="left")["SepsisLabel"].fillna(0).to_numpy(int)


def row_risk(f: Features, risk: np.ndarray) -> np.ndarray:
    """The model's risk on every input row, as the engine holds it: the last hour's prediction until
    the next (NaN before the first vital sign); input rows are in file order, grouped by patient."""
    import pandas as pd

    by = pd.DataFrame({"patient": f.patient, "ICULOS": f.iculos, "risk": risk})
    rows = pd.DataFrame({"patient": f.row_patient, "ICULOS": f.row_iculos})
    r = rows.merge(by, on=["patient", "ICULOS"], how="left")["risk"].to_numpy(float)
    return forward_fill_by_patient(f.row_patient, r)


def train(input: str, out: str, seed: int = SEED, cache: str | None = None) -> int:
    import sklearn
    from sklearn.ensemble import IsolationForest
    from threadpoolctl import threadpool_limits

    from detectors.early_warning.replay import read_cinc
    from wardwatch.alarm_rules import DEFAULT_RULES

    t0 = time.time()
    path = Path(input)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    df = read_cinc(path)
    lab = row_labels(path)
    split = split_patients(df["patient"].astype(str).to_numpy(), seed)
    f = cached_features(df, sha, cache)
    X, y = f.X, feature_labels(f, lab)
    part = np.array(["train" if p in split["train"] else "tune" if p in split["tune"] else "test" for p in f.patient])
    print(f"features: {X.shape} from {len(set(f.patient.tolist()))} patients in {time.time() - t0:.0f}s")
    tr, tu = part == "train", part == "tune"
    names = feature_names()
    with threadpool_limits(1):  # the machine is shared: one core, and the same trees on any machine
        # The isolation forest learns what "usual for this patient" looks like: baseline-normalised
        # vitals of training patients after their baseline hours, outside any sepsis window.
        zcols = [names.index(f"{m}_z") for m in ("heart_rate", "spo2", "temperature", "sbp", "map", "resp_rate")]
        Z = X[:, zcols].astype(np.float64)
        fit_rows = tr & (y == 0) & (X[:, names.index("hours")] >= 6)
        forest = IsolationForest(n_estimators=100, max_samples=256, random_state=seed).fit(np.nan_to_num(Z[fit_rows]))
        trees = export_isolation_forest(forest)
        X[:, names.index("iforest")] = trees.score(Z)
        assert np.allclose(trees.score(Z[:2000]), -forest.score_samples(np.nan_to_num(Z[:2000]))), "exported forest must match"
        # The trees learn the utility's targets; early stopping on tune patients (never on rows of
        # the training patients themselves).
        yu, wu = utility_targets(hours_from_onset(f, lab))
        clf = fit_trees(X[tr], yu[tr], X[tu], yu[tu], seed, wu[tr], wu[tu])
    meta = {"features": names, "data_sha256": sha, "data_file": path.name, "seed": seed,
            "split": {"train": 0.6, "tune": 0.2, "test": 0.2, "unit": "patient"}, "sklearn": sklearn.__version__,
            "params": {**TREE_PARAMS, "n_iter": int(clf.n_iter_)}, "monotone": MONOTONE,
            "target": "utility: positive where an alert earns utility, weighted by |U(alert) - U(no alert)|; "
                      "Platt-calibrated against SepsisLabel on tune patients",
            "n_train_rows": int(tr.sum())}
    model = export_tree_model(clf, meta)
    margin = model.margin(X)
    assert np.allclose(margin[:2000], clf.decision_function(X[:2000])), "exported trees must match sklearn"
    # Calibrated against SepsisLabel (not the training target): "risk 15 %" stays a probability of
    # the label; a monotone map, so the alarm's ranking is the utility-trained margin's.
    model.meta["calibration"] = fit_platt(margin[tu], y[tu])
    risk = model.predict_proba(X)
    # The prior before any vital sign: the training patients' label rate by hour of stay.
    row_part = np.array(["train" if p in split["train"] else "tune" if p in split["tune"] else "test"
                         for p in f.row_patient])
    y_rows = lab["SepsisLabel"].to_numpy(int)
    model.meta["prior_by_hour"] = prior_by_hour(f.row_iculos[row_part == "train"], y_rows[row_part == "train"])
    rr = row_risk(f, risk)
    t = row_part == "tune"
    alerting = alerting_rules(DEFAULT_RULES)
    policy = tune_policy(f.row_patient[t], y_rows[t], rr[t], f.row_limits[t], alerting)
    model.meta["thresholds"] = policy["thresholds"]
    model.meta["policy"] = {"alerting_limits": [r.condition for r, a in zip(DEFAULT_RULES, alerting) if a],
                            "max_episodes_per_patient_day": MAX_EPISODES_PER_DAY, "tune": policy["tune"],
                            "limits_alone_on_tune": policy["limits_alone"]}
    # The same budget with the limit alarms' priorities of before issue 19 (for the model card).
    before = np.array([r.condition in ALERTING_BEFORE for r in DEFAULT_RULES])
    alt = tune_policy(f.row_patient[t], y_rows[t], rr[t], f.row_limits[t], before)
    model.meta["policy"]["with_the_limit_priorities_before"] = {"thresholds": alt["thresholds"], "tune": alt["tune"],
                                                                "limits_alone_on_tune": alt["limits_alone"]}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_tree_model(model, out / "risk")
    np.savez_compressed(out / "iforest.npz", **trees.a)
    print(json.dumps(model.meta["policy"]))
    print(json.dumps(model.meta["thresholds"]))
    print(f"trained in {time.time() - t0:.0f}s; {clf.n_iter_} trees; artefact: {out / 'risk.npz'}")
    return 0
