"""Train the early-warning risk model from CinC 2019 data (``wardwatch train``), reproducibly.

Features come from replaying the training patients through the very detector engine the worker
runs (so training and serving cannot drift apart). Patients, never rows, are split with a fixed
seed into train (60 %), tune (20 %: alarm thresholds) and held-out test (20 %: the reported figures).
The model ships as arrays plus a JSON manifest naming the data file's SHA-256, the split and seed,
the library versions and the held-out metrics.

Learning lives here and only here: this module uses scikit-learn (imported when training), fits the
isolation forest and the gradient-boosted trees, and exports them as plain arrays (the artefacts in
``detectors/artefacts``); the scoring classes in :mod:`detectors.scores` load those arrays and use
numpy only.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from detectors.scores.isolation_forest import IsolationForestScore
from detectors.scores.gradient_boosting import TreeModel
from detectors.scores.risk import HOUR_MS, RiskStage

SEED = 2019


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


def build_features(df):
    """(patient, hour, X) for every scored patient-hour, by replaying df through the engine."""
    from detectors.early_warning.replay import replay
    from detectors.scores.news2 import News2Stage
    from detectors.engine import DetectorEngine

    stage = FeatureRecorder()
    engine = DetectorEngine(stages=[News2Stage(), stage], stale_after_ms=10**15, score_alarms=False)
    replay(df, engine)
    record = stage.record
    ids = np.array(engine.table.ids, dtype=object)
    pats = np.concatenate([ids[r] for r, _, _ in record])
    hours = np.concatenate([h for _, h, _ in record])
    X = np.vstack([x for _, _, x in record])
    return pats, hours, X


def tune_thresholds(patient, labels, risk, max_episodes: float = 0.7) -> dict:
    from detectors.early_warning.metrics import evaluate

    best = None
    for q in np.linspace(0.80, 0.995, 40):
        thr = float(np.nanquantile(risk, q))
        m = evaluate(patient, labels, risk, (risk >= thr).astype(np.int8))
        if m["episodes_per_patient_day"] <= max_episodes and (best is None or m["utility"] > best[1]["utility"]):
            best = (thr, m)
    medium = best[0] if best else float(np.nanquantile(risk, 0.99))
    return {"medium": medium, "high": float(max(medium, np.nanquantile(risk, 0.998)))}


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


def train(input: str, out: str, seed: int = SEED) -> int:
    import pandas as pd
    import sklearn
    from sklearn.ensemble import HistGradientBoostingClassifier

    from detectors.early_warning.replay import read_cinc
    from detectors.scores.risk import feature_names

    t0 = time.time()
    path = Path(input)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    df = read_cinc(path)
    labels_df = pd.read_csv(path, usecols=["patient", "ICULOS", "SepsisLabel"])
    split = split_patients(df["patient"].astype(str).to_numpy(), seed)
    pats, hours, X = build_features(df)
    # Hour h of the replay is ICULOS h (the replay starts every patient at hour 0 of the same base).
    base_hour = pats.astype(str)
    from detectors.early_warning.replay import BASE_MS
    key = pd.DataFrame({"patient": base_hour, "h": hours - BASE_MS // 3_600_000 + 1})
    lab = labels_df.assign(patient=labels_df["patient"].astype(str)).rename(columns={"ICULOS": "h"})
    y = key.merge(lab, on=["patient", "h"], how="left")["SepsisLabel"].fillna(0).to_numpy(int)
    part = np.array(["train" if p in split["train"] else "tune" if p in split["tune"] else "test" for p in base_hour])
    print(f"features: {X.shape} from {len(set(base_hour))} patients in {time.time() - t0:.0f}s")
    clf = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, max_leaf_nodes=31, l2_regularization=1.0,
                                         class_weight={0: 1, 1: 5}, early_stopping=True, validation_fraction=0.1,
                                         random_state=seed)
    tr = part == "train"
    # The isolation forest learns what "usual for this patient" looks like: baseline-normalised
    # vitals of training patients after their baseline hours, outside any sepsis window.
    from sklearn.ensemble import IsolationForest

    names = feature_names()
    zcols = [names.index(f"{m}_z") for m in ("heart_rate", "spo2", "temperature", "sbp", "map", "resp_rate")]
    Z = X[:, zcols].astype(np.float64)
    fit_rows = tr & (y == 0) & (X[:, names.index("hours")] >= 6)
    forest = IsolationForest(n_estimators=100, max_samples=256, random_state=seed).fit(np.nan_to_num(Z[fit_rows]))
    trees = export_isolation_forest(forest)
    X[:, names.index("iforest")] = trees.score(Z)
    assert np.allclose(trees.score(Z[:2000]), -forest.score_samples(np.nan_to_num(Z[:2000]))), "exported forest must match"
    clf.fit(X[tr], y[tr])
    meta = {"features": feature_names(), "data_sha256": sha, "data_file": path.name, "seed": seed,
            "split": {"train": 0.6, "tune": 0.2, "test": 0.2, "unit": "patient"}, "sklearn": sklearn.__version__,
            "trained": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "n_train_rows": int(tr.sum())}
    model = export_tree_model(clf, meta)
    risk = model.predict_proba(X)
    assert np.allclose(risk[:2000], clf.predict_proba(X[:2000])[:, 1]), "exported trees must match sklearn"
    tu = part == "tune"
    model.meta["thresholds"] = tune_thresholds(pats[tu].astype(str), y[tu], risk[tu])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_tree_model(model, out / "risk")
    np.savez_compressed(out / "iforest.npz", **trees.a)
    print(json.dumps(model.meta["thresholds"]))
    print(f"trained in {time.time() - t0:.0f}s; artefact: {out / 'risk.npz'}")
    return 0
