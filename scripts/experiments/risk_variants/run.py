"""One-off (exp19): fit variants of the risk trees on train patients, evaluate on TUNE patients only.
usage: python run.py VARIANT [VARIANT ...] [--seed S]
Prints per variant: tune AUROC (feature rows vs SepsisLabel), tune utility and episodes/patient-day
from detectors.training.tune_policy on row_risk (as `train` does), number of trees."""
from common import OUT
import os
os.environ["OMP_NUM_THREADS"] = "1"
import json, sys, time
import numpy as np
from threadpoolctl import threadpool_limits
from sklearn.metrics import roc_auc_score
from sklearn.ensemble import HistGradientBoostingClassifier

from detectors import training as T
from detectors.scores.risk_features import feature_names
from wardwatch.alarm_rules import DEFAULT_RULES

P = np.load(OUT / "prep.npz", allow_pickle=False)
X0, Xe, EN = P["X"], P["Xe"], list(P["ext_names"])
y, yu, wu, part = P["y"], P["yu"], P["wu"], P["part"]
tr, tu = part == "train", part == "tune"
names = feature_names()
f = T.Features(P["patient"], P["iculos"], X0, P["row_patient"], P["row_iculos"], P["row_limits"])
t_rows = P["row_part"] == "tune"
y_rows = P["y_rows"]
alerting = T.alerting_rules(DEFAULT_RULES)

V = ["HR", "O2Sat", "Temp", "SBP", "MAP", "Resp"]
GROUPS = {
    "dbp": ["dbp", "dbp_d6"],
    "pp": ["pp", "pp_mean6", "pp_d6"],
    "prank": [f"prank_{c}" for c in V],
    "ratios": ["hr_resp", "hr_map"],
    "tmax24": ["temp_max24"],
    "since": [f"since_change_{c}" for c in V],
    "news5": ["news2ge5_hours", "news2ge5_frac"],
    "sirs": ["sirs", "sirs2_hours", "qsofa_v", "qsofa2_hours", "map65_hours"],
    "iculos": ["iculos"],
    "age": ["age"],
    "demo": ["age", "gender"],
}
GROUPS["allb"] = sum((GROUPS[k] for k in ("dbp", "pp", "prank", "ratios", "tmax24", "since", "news5")), [])
GROUPS["allbc"] = GROUPS["allb"] + GROUPS["sirs"]
MONO_EXTRA = {"news2ge5_hours": 1, "news2ge5_frac": 1, "sirs": 1, "sirs2_hours": 1, "qsofa_v": 1, "qsofa2_hours": 1,
              "map65_hours": 1}

PARAMS = {
    "base": {},
    "leaf63": dict(max_leaf_nodes=63),
    "leaf127": dict(max_leaf_nodes=127),
    "msl50": dict(min_samples_leaf=50),
    "msl200": dict(min_samples_leaf=200),
    "lr03": dict(learning_rate=0.03, max_iter=1000),
    "l2_0": dict(l2_regularization=0.0),
    "l2_10": dict(l2_regularization=10.0),
    "bins63": dict(max_bins=63),
    "bins127": dict(max_bins=127),
    "leaf63_msl200": dict(max_leaf_nodes=63, min_samples_leaf=200),
    "leaf15": dict(max_leaf_nodes=15),
    "lr03_leaf63": dict(learning_rate=0.03, max_iter=1000, max_leaf_nodes=63),
    "nochg60": dict(n_iter_no_change=60),
    "mf05": dict(max_features=0.5),
    "leaf15_mf05": dict(max_leaf_nodes=15, max_features=0.5),
}


DROP = {"counts": [n for n in names if n.endswith("_count12")], "z": [n for n in names if n.endswith("_z")] + ["iforest"],
        "mean12": [n for n in names if n.endswith("_mean12")], "minmax6": [n for n in names if n.endswith(("_min6", "_max6"))],
        "d1": [n for n in names if n.endswith("_d1")], "news2parts": [n for n in names if n.startswith("news2_")]}


def spec(v):
    """VARIANT = params[+group...][-dropgroup...]  e.g. base+dbp, leaf63+allb, base-counts"""
    import re
    toks = re.findall(r"[+-]?[^+-]+", v)
    params = PARAMS[toks[0]]
    extra = [c for g in toks[1:] if g[0] == "+" for c in (GROUPS[g[1:]] if g[1:] in GROUPS else [g[1:]])]
    drop = [c for g in toks[1:] if g[0] == "-" for c in DROP[g[1:]]]
    return params, extra, drop


def run(v, seed, sub=None):
    t0 = time.time()
    trm = tr
    if sub is not None:  # a 90 % subset of the training patients (noise of the training sample)
        pats = np.unique(P["patient"][tr])
        keep = set(np.random.default_rng(sub).choice(pats, int(0.9 * len(pats)), replace=False).tolist())
        trm = tr & np.isin(P["patient"], list(keep))
    params, extra, drop = spec(v)
    cols = [EN.index(c) for c in extra]
    keep = [i for i, n in enumerate(names) if n not in drop]
    X = np.hstack([X0[:, keep], Xe[:, cols]]) if cols else X0[:, keep]
    nm = [names[i] for i in keep] + extra
    cst = [T.MONOTONE.get(n, MONO_EXTRA.get(n, 0)) for n in nm]
    with threadpool_limits(1):
        clf = HistGradientBoostingClassifier(**{**T.TREE_PARAMS, **params}, monotonic_cst=cst, random_state=seed)
        clf.fit(X[trm], yu[trm], sample_weight=wu[trm], X_val=X[tu], y_val=yu[tu], sample_weight_val=wu[tu])
        margin = clf.decision_function(X)
        cal = T.fit_platt(margin[tu], y[tu])
        risk = 1 / (1 + np.exp(-(cal["a"] * margin + cal["b"])))
        auc = roc_auc_score(y[tu], margin[tu])
        auc_u = roc_auc_score(yu[tu][wu[tu] > 0], margin[tu][wu[tu] > 0])
        t_fit = time.time() - t0
        rr = T.row_risk(f, risk)
        pol = T.tune_policy(f.row_patient[t_rows], y_rows[t_rows], rr[t_rows], f.row_limits[t_rows], alerting)
    m = pol["tune"]
    res = {"variant": v, "seed": seed, "sub": sub, "n_feat": X.shape[1], "auroc": round(float(auc), 5), "auroc_utgt": round(float(auc_u), 5),
           "utility": m["utility"], "episodes": m["episodes_per_patient_day"], "caught": m["septic_caught"],
           "trees": int(clf.n_iter_), "thr": {k: round(x, 5) for k, x in pol["thresholds"].items()},
           "fit_s": round(t_fit), "total_s": round(time.time() - t0)}
    np.save(OUT / f"margin_{v}_{seed}_{sub}.npy", margin[tu].astype(np.float32))
    print(json.dumps(res), flush=True)
    with open(OUT / "results.jsonl", "a") as fh:
        fh.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    args = sys.argv[1:]
    seed, sub = T.SEED, None
    if "--seed" in args:
        i = args.index("--seed"); seed = int(args[i + 1]); del args[i:i + 2]
    if "--sub" in args:
        i = args.index("--sub"); sub = int(args[i + 1]); del args[i:i + 2]
    for v in args:
        run(v, seed, sub)
