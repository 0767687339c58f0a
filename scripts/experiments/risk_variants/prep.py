"""Experiments on the learned risk's features and trees, on TUNE patients only (issue 19; the
figures under "What did not help" in docs/early-warning.md). From the repository root:

    export WARDWATCH_EXPERIMENTS=experiments-out/risk-variants
    .venv/bin/wardwatch train --out $WARDWATCH_EXPERIMENTS/base --cache $WARDWATCH_EXPERIMENTS/cache
    .venv/bin/python scripts/experiments/risk_variants/prep.py
    .venv/bin/python scripts/experiments/risk_variants/run.py base base+dbp base+pp leaf15_mf05 [--seed S] [--sub S]
    .venv/bin/python scripts/experiments/risk_variants/summ.py     # every run, and mean/sd per variant
    .venv/bin/python scripts/experiments/risk_variants/paired.py   # each variant against the base fitted the same way
    .venv/bin/python scripts/experiments/risk_variants/boot.py A.npy B.npy  # paired patient bootstrap of an AUROC gap
    .venv/bin/python scripts/experiments/risk_variants/smooth.py  # the margin smoothed over recent hours

This step: load the cached Features, labels and split; refit the isolation forest exactly as
`train` does; compute the extra (offline) features joined to feature rows by (patient, ICULOS);
save everything to prep.npz. The row at hour t uses only data up to hour t."""
from common import OUT
import os
os.environ.setdefault("OMP_NUM_THREADS", "1")
import glob, hashlib, time
from pathlib import Path
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from detectors import training as T
from detectors.early_warning.replay import read_cinc
from detectors.scores.risk_features import feature_names

DATA = Path(os.environ.get("WARDWATCH_CINC", "../shared/data/cinc2019/cinc2019_setB_dev.csv.gz"))
t0 = time.time()
cache = glob.glob(str(OUT / "cache" / "risk-features-*.npz"))[0]
with np.load(cache, allow_pickle=False) as z:
    f = T.Features(**{k: z[k] for k in z.files})
df = read_cinc(DATA)
lab = T.row_labels(DATA)
split = T.split_patients(df["patient"].astype(str).to_numpy(), T.SEED)
X, y = f.X.copy(), T.feature_labels(f, lab)
part = np.array(["train" if p in split["train"] else "tune" if p in split["tune"] else "test" for p in f.patient])
tr, tu = part == "train", part == "tune"
names = feature_names()
with threadpool_limits(1):
    from sklearn.ensemble import IsolationForest
    zcols = [names.index(f"{m}_z") for m in ("heart_rate", "spo2", "temperature", "sbp", "map", "resp_rate")]
    Z = X[:, zcols].astype(np.float64)
    fit_rows = tr & (y == 0) & (X[:, names.index("hours")] >= 6)
    forest = IsolationForest(n_estimators=100, max_samples=256, random_state=T.SEED).fit(np.nan_to_num(Z[fit_rows]))
    trees = T.export_isolation_forest(forest)
    X[:, names.index("iforest")] = trees.score(Z)
yu, wu = T.utility_targets(T.hours_from_onset(f, lab))
row_part = np.array(["train" if p in split["train"] else "tune" if p in split["tune"] else "test" for p in f.row_patient])
y_rows = lab["SepsisLabel"].to_numpy(int)
print("base loaded", X.shape, time.time() - t0)

# ---------------------------------------------------------------- extra features from the data frame
d = pd.read_csv(DATA, usecols=["patient", "ICULOS", "HR", "O2Sat", "Temp", "SBP", "MAP", "DBP", "Resp", "Age", "Gender"])
d["patient"] = d["patient"].astype(str)
d = d.sort_values(["patient", "ICULOS"], kind="stable").reset_index(drop=True)
g = d.groupby("patient", sort=False)
V = ["HR", "O2Sat", "Temp", "SBP", "MAP", "Resp"]
E = {}
# latest values, carried forward at most 4 h (the engine's STALE_MS), hour grid = rows of the file
ff = {}
for c in V + ["DBP"]:
    # hours since last measured, to limit staleness
    meas_hour = d["ICULOS"].where(d[c].notna())
    last_h = meas_hour.groupby(d["patient"]).ffill()
    val = d[c].groupby(d["patient"]).ffill()
    ff[c] = val.where((d["ICULOS"] - last_h) <= 4)


def lag(s, k):
    return s.groupby(d["patient"]).shift(k)


def roll(s, w, fn):
    r = s.groupby(d["patient"]).rolling(w, min_periods=1)
    return getattr(r, fn)().reset_index(level=0, drop=True).sort_index()


E["dbp"] = ff["DBP"]
E["dbp_d6"] = ff["DBP"] - lag(ff["DBP"], 6)
pp = ff["SBP"] - ff["DBP"]
E["pp"] = pp
E["pp_mean6"] = roll(pp, 6, "mean")
E["pp_d6"] = pp - lag(pp, 6)
with np.errstate(divide="ignore", invalid="ignore"):
    E["hr_resp"] = ff["HR"] / ff["Resp"].where(ff["Resp"] > 0)
    E["hr_map"] = ff["HR"] / ff["MAP"].where(ff["MAP"] > 0)
E["temp_max24"] = roll(d["Temp"], 24, "max")  # measured temperatures in the last 24 h (incl. hour t)

# within-patient percentile rank of the latest measured value among the patient's measured values so far
bounds = np.flatnonzero(np.r_[True, d["patient"].to_numpy()[1:] != d["patient"].to_numpy()[:-1], True])
for c in V:
    a = d[c].to_numpy(float)
    out = np.full(len(a), np.nan)
    for s, e in zip(bounds[:-1], bounds[1:]):
        v = a[s:e]
        ok = ~np.isnan(v)
        if not ok.any():
            continue
        vv = v[ok]
        n = len(vv)
        le = (vv[None, :] <= vv[:, None]) & np.tri(n, dtype=bool)  # j <= i and v_j <= v_i
        rk = le.sum(1) / np.arange(1, n + 1)
        tmp = np.full(len(v), np.nan)
        tmp[ok] = rk
        out[s:e] = tmp
    E[f"prank_{c}"] = pd.Series(out).groupby(d["patient"]).ffill().where(ff[c].notna())

# hours since each vital last changed (hour to hour, carried values) by a clinically notable amount
THR = {"HR": 10, "O2Sat": 3, "Temp": 0.5, "SBP": 15, "MAP": 10, "Resp": 4}
for c in V:
    ch = (ff[c] - lag(ff[c], 1)).abs() > THR[c]
    last = d["ICULOS"].where(ch).groupby(d["patient"]).ffill()
    E[f"since_change_{c}"] = d["ICULOS"] - last

# (c) sepsis-physiology counts on the latest values: SIRS vital criteria, qSOFA's vital parts, MAP < 65
hr, rr, tp, sbp, mp = ff["HR"], ff["Resp"], ff["Temp"], ff["SBP"], ff["MAP"]
sirs = (hr > 90).astype(int) + (rr > 20).astype(int) + ((tp > 38) | (tp < 36)).astype(int)
E["sirs"] = sirs.astype(float)
E["sirs2_hours"] = (sirs >= 2).astype(float).groupby(d["patient"]).cumsum()
qs = (rr >= 22).astype(int) + (sbp <= 100).astype(int)
E["qsofa_v"] = qs.astype(float)
E["qsofa2_hours"] = (qs >= 2).astype(float).groupby(d["patient"]).cumsum()
E["map65_hours"] = (mp < 65).astype(float).groupby(d["patient"]).cumsum()
E["iculos"] = d["ICULOS"].astype(float)
# demographics from the admission record (an ADT feed gives them; the wearable does not)
E["age"] = d["Age"].astype(float)
E["gender"] = d["Gender"].astype(float)

ext = pd.DataFrame(E)
ext["patient"], ext["ICULOS"] = d["patient"], d["ICULOS"]
key = pd.DataFrame({"patient": f.patient, "ICULOS": f.iculos})
J = key.merge(ext, on=["patient", "ICULOS"], how="left")
assert len(J) == len(key)
ext_names = [c for c in E]
Xe = J[ext_names].to_numpy(np.float32)

# count of hours so far with NEWS2 >= 5 (over the feature rows, i.e. the engine's hourly NEWS2), and its share
o = np.lexsort((f.iculos, f.patient))
p_s = f.patient[o]
start = np.r_[True, p_s[1:] != p_s[:-1]]
hi = (X[o, names.index("news2")] >= 5).astype(float)
cs = np.cumsum(hi)
base = np.maximum.accumulate(np.where(start, np.arange(len(cs)), 0))
cnt = cs - np.r_[0, cs][base]  # cumsum within patient
k = np.arange(len(cs)) - base + 1
c5 = np.empty(len(cs)); c5[o] = cnt
fr5 = np.empty(len(cs)); fr5[o] = cnt / k
Xe = np.hstack([Xe, c5[:, None], fr5[:, None]]).astype(np.float32)
ext_names += ["news2ge5_hours", "news2ge5_frac"]
print("extra", Xe.shape, "nan share", dict(zip(ext_names, np.isnan(Xe).mean(0).round(3))), time.time() - t0)

np.savez(OUT / "prep.npz", X=X, Xe=Xe, ext_names=np.array(ext_names), y=y, yu=yu, wu=wu, part=part,
         patient=f.patient, iculos=f.iculos, row_patient=f.row_patient, row_iculos=f.row_iculos,
         row_limits=f.row_limits, row_part=row_part, y_rows=y_rows)
print("saved", time.time() - t0)
