"""Compare WardWatch's risk and alarms with NEWS2 >= 5 on CinC 2019 patients (``wardwatch evaluate``).

By default on the held-out test patients of the training split (seeded, patient-level): patients
never seen in training or threshold tuning.
"""

from __future__ import annotations

import json
import time

import numpy as np


def evaluate_file(input: str, split: str = "test", as_json: bool = False) -> int:
    import pandas as pd

    from detectors.early_warning.metrics import evaluate
    from detectors.early_warning.replay import read_cinc
    from detectors.offline import score_frame
    from detectors.training import split_patients

    t0 = time.time()
    df = read_cinc(input)
    labels = pd.read_csv(input, usecols=["SepsisLabel"])["SepsisLabel"].to_numpy()
    if split != "all":
        keep = df["patient"].astype(str).isin(split_patients(df["patient"].astype(str).to_numpy())[split]).to_numpy()
        df, labels = df[keep], labels[keep]
    res = score_frame(df)
    news = np.nan_to_num(res.news2, nan=0.0)
    ww = evaluate(res.patient, labels, res.risk, res.alert)
    baseline = evaluate(res.patient, labels, news, (news >= 5).astype(np.int8))
    out = {"patients": len(set(res.patient.tolist())), "rows": len(labels), "split": split,
           "wardwatch": ww, "news2_ge_5": baseline, "seconds": round(time.time() - t0)}
    if as_json:
        print(json.dumps(out))
    else:
        print(f"{out['patients']} patients ({split} split), {out['rows']} patient-hours")
        print(f"{'':28}{'WardWatch':>12}{'NEWS2 >= 5':>12}")
        for k in ("auroc", "auprc", "utility", "episodes_per_patient_day", "septic_caught", "median_lead_h"):
            print(f"{k:28}{str(ww[k]):>12}{str(baseline[k]):>12}")
    return 0
