"""One-off (issue 19): does smoothing the trees' hourly margin over a patient's recent predictions
help? Fits the shipped trees on train patients (as run.py's "base"), then on TUNE patients only
compares the raw margin with per-patient EMAs and rolling means/maxima of it (each using only that
patient's predictions up to the hour scored): AUROC against SepsisLabel, and the utility and episodes
of the alarm policy re-tuned on each (detectors.training.tune_policy, as `train` does).
usage: python smooth.py [--seed S]"""
from common import OUT
import os
os.environ["OMP_NUM_THREADS"] = "1"
import json, sys, time
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from sklearn.metrics import roc_auc_score
from sklearn.ensemble import HistGradientBoostingClassifier

from detectors import training as T
from detectors.scores.risk_features import feature_names
from wardwatch.alarm_rules import DEFAULT_RULES

P = np.load(OUT / "prep.npz", allow_pickle=False)
X, y, yu, wu, part = P["X"], P["y"], P["yu"], P["wu"], P["part"]
tr, tu = part == "train", part == "tune"
f = T.Features(P["patient"], P["iculos"], X, P["row_patient"], P["row_iculos"], P["row_limits"])
t_rows = P["row_part"] == "tune"
alerting = T.alerting_rules(DEFAULT_RULES)
seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else T.SEED
names = feature_names()

t0 = time.time()
with threadpool_limits(1):
    clf = HistGradientBoostingClassifier(**T.TREE_PARAMS, monotonic_cst=[T.MONOTONE.get(n, 0) for n in names],
                                         random_state=seed)
    clf.fit(X[tr], yu[tr], sample_weight=wu[tr], X_val=X[tu], y_val=yu[tu], sample_weight_val=wu[tu])
    margin = clf.decision_function(X)
print("fitted", clf.n_iter_, "trees", round(time.time() - t0), "s", flush=True)

order = np.lexsort((P["iculos"], P["patient"]))
key = pd.Series(P["patient"][order])
m = pd.Series(margin[order])
g = m.groupby(key.to_numpy())


def back(s):
    out = np.empty(len(margin))
    out[order] = np.asarray(s, float)
    return out


variants = {"raw": margin}
for a in (0.7, 0.5, 0.3):
    variants[f"ema{a}"] = back(g.transform(lambda s, a=a: s.ewm(alpha=a, adjust=True).mean()))
for k in (2, 3, 4, 6):
    variants[f"mean{k}"] = back(g.transform(lambda s, k=k: s.rolling(k, min_periods=1).mean()))
for k in (3,):
    variants[f"max{k}"] = back(g.transform(lambda s, k=k: s.rolling(k, min_periods=1).max()))
variants["raw+mean3"] = 0.5 * margin + 0.5 * variants["mean3"]
# The patient's own baseline of the margin: its mean over the first 6 predictions (expanding before).
base6 = back(g.transform(lambda s: s.expanding().mean().where(np.arange(len(s)) < 6).ffill()))
runmin = back(g.transform(lambda s: s.cummin()))
for w in (0.25, 0.5):
    variants[f"raw+{w}*(raw-base6)"] = margin + w * (margin - base6)
    variants[f"raw+{w}*(raw-min)"] = margin + w * (margin - runmin)
if "--baseline-only" in sys.argv:  # the one that helped utility on the first fit, against the raw margin
    variants = {k: v for k, v in variants.items() if k in ("raw", "raw+0.25*(raw-base6)")}
if "--only-new" in sys.argv:
    variants = {k: v for k, v in variants.items() if k == "raw" or "base6" in k or "min)" in k}

for name, mg in variants.items():
    with threadpool_limits(1):
        cal = T.fit_platt(mg[tu], y[tu])
        risk = 1 / (1 + np.exp(-(cal["a"] * mg + cal["b"])))
        rr = T.row_risk(f, risk)
        pol = T.tune_policy(f.row_patient[t_rows], P["y_rows"][t_rows], rr[t_rows], f.row_limits[t_rows], alerting)
    res = {"smooth": name, "seed": seed, "auroc": round(float(roc_auc_score(y[tu], mg[tu])), 5),
           "utility": pol["tune"]["utility"], "episodes": pol["tune"]["episodes_per_patient_day"],
           "caught": pol["tune"]["septic_caught"]}
    print(json.dumps(res), flush=True)
    with open(OUT / "smooth.jsonl", "a") as fh:
        fh.write(json.dumps(res) + "\n")
