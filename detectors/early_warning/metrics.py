"""Evaluation on CinC 2019: AUROC, AUPRC, the challenge's normalised utility, alert episodes per
patient-day, septic patients caught and the median lead time before onset."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

DT_EARLY, DT_OPTIMAL, DT_LATE = -12, -6, 3
MAX_U_TP, MIN_U_FN, U_FP, U_TN = 1.0, -2.0, -0.05, 0.0


def patient_utility(labels: np.ndarray, pred: np.ndarray) -> float:
    """PhysioNet/CinC 2019 ``compute_prediction_utility``, for one patient's hourly rows."""
    n = len(labels)
    septic = bool(labels.any())
    t_sepsis = int(np.argmax(labels)) - DT_OPTIMAL if septic else np.inf
    m1 = MAX_U_TP / (DT_OPTIMAL - DT_EARLY)
    b1 = -m1 * DT_EARLY
    m2 = -MAX_U_TP / (DT_LATE - DT_OPTIMAL)
    b2 = -m2 * DT_LATE
    m3 = MIN_U_FN / (DT_LATE - DT_OPTIMAL)
    b3 = -m3 * DT_OPTIMAL
    u = 0.0
    for t in range(n):
        if t > t_sepsis + DT_LATE:
            continue
        p = bool(pred[t])
        if septic and p:
            u += max(m1 * (t - t_sepsis) + b1, U_FP) if t <= t_sepsis + DT_OPTIMAL else m2 * (t - t_sepsis) + b2
        elif not septic and p:
            u += U_FP
        elif septic and not p:
            u += 0.0 if t <= t_sepsis + DT_OPTIMAL else m3 * (t - t_sepsis) + b3
        else:
            u += U_TN
    return u


def normalised_utility(groups: list[tuple[np.ndarray, np.ndarray]]) -> float:
    observed = best = inaction = 0.0
    for labels, pred in groups:
        n = len(labels)
        best_pred = np.zeros(n)
        if labels.any():
            t_sepsis = int(np.argmax(labels)) - DT_OPTIMAL
            best_pred[max(0, t_sepsis + DT_EARLY):min(t_sepsis + DT_LATE + 1, n)] = 1
        observed += patient_utility(labels, pred)
        best += patient_utility(labels, best_pred)
        inaction += patient_utility(labels, np.zeros(n))
    return (observed - inaction) / (best - inaction)


def evaluate(patient: np.ndarray, labels: np.ndarray, score: np.ndarray, alert: np.ndarray) -> dict:
    """All metrics for one scorer: ``score`` for AUROC/AUPRC, ``alert`` (0/1 per row) for the rest."""
    ok = ~np.isnan(score)
    s = np.where(ok, score, np.nanmin(score[ok]) if ok.any() else 0)
    order = np.argsort(patient, kind="stable")
    p, y, a = patient[order], labels[order], alert[order]
    bounds = np.flatnonzero(np.r_[True, p[1:] != p[:-1], True])
    groups, episodes, caught, leads, septic = [], 0, 0, [], 0
    for i in range(len(bounds) - 1):
        lo, hi = bounds[i], bounds[i + 1]
        yl, al = y[lo:hi], a[lo:hi].astype(bool)
        groups.append((yl, al))
        episodes += int(np.sum(al & ~np.r_[False, al[:-1]]))
        if yl.any():
            septic += 1
            onset = int(np.argmax(yl)) - DT_OPTIMAL  # clinical onset: 6 h after the label starts
            hits = np.flatnonzero(al[:min(hi - lo, onset + DT_LATE + 1)])
            if len(hits):
                caught += 1
                leads.append(onset - hits[0])
    return {"auroc": round(float(roc_auc_score(labels, s)), 3), "auprc": round(float(average_precision_score(labels, s)), 3),
            "utility": round(float(normalised_utility(groups)), 3),
            "episodes_per_patient_day": round(episodes / (len(labels) / 24.0), 3),
            "septic_caught": f"{caught}/{septic}", "median_lead_h": float(np.median(leads)) if leads else None}
