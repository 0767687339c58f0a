"""Evaluation on CinC 2019: AUROC, AUPRC, the challenge's normalised utility, alert episodes per
patient-day, septic patients caught and the median lead time before onset."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

DT_EARLY, DT_OPTIMAL, DT_LATE = -12, -6, 3
MAX_U_TP, MIN_U_FN, U_FP, U_TN = 1.0, -2.0, -0.05, 0.0
# The challenge's utility lines (slope, intercept) in hours from onset: early true positive, late
# true positive, late false negative; shared by the reference loop and the vectorised rows.
_M1 = MAX_U_TP / (DT_OPTIMAL - DT_EARLY)
_B1 = -_M1 * DT_EARLY
_M2 = -MAX_U_TP / (DT_LATE - DT_OPTIMAL)
_B2 = -_M2 * DT_LATE
_M3 = MIN_U_FN / (DT_LATE - DT_OPTIMAL)
_B3 = -_M3 * DT_OPTIMAL


def patient_utility(labels: np.ndarray, pred: np.ndarray) -> float:
    """PhysioNet/CinC 2019 ``compute_prediction_utility``, for one patient's hourly rows."""
    n = len(labels)
    septic = bool(labels.any())
    t_sepsis = int(np.argmax(labels)) - DT_OPTIMAL if septic else np.inf
    u = 0.0
    for t in range(n):
        if t > t_sepsis + DT_LATE:
            continue
        p = bool(pred[t])
        if septic and p:
            u += max(_M1 * (t - t_sepsis) + _B1, U_FP) if t <= t_sepsis + DT_OPTIMAL else _M2 * (t - t_sepsis) + _B2
        elif not septic and p:
            u += U_FP
        elif septic and not p:
            u += 0.0 if t <= t_sepsis + DT_OPTIMAL else _M3 * (t - t_sepsis) + _B3
        else:
            u += U_TN
    return u


def normalised_utility(groups: list[tuple[np.ndarray, np.ndarray]]) -> float:
    observed = best = inaction = 0.0
    for labels, pred in groups:
        o, b, i = _utilities(labels, pred)
        observed, best, inaction = observed + o, best + b, inaction + i
    return (observed - inaction) / (best - inaction)


def _utilities(labels: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    """One patient's observed, best possible and "always silent" utility."""
    n = len(labels)
    best_pred = np.zeros(n)
    if labels.any():
        t_sepsis = int(np.argmax(labels)) - DT_OPTIMAL
        best_pred[max(0, t_sepsis + DT_EARLY):min(t_sepsis + DT_LATE + 1, n)] = 1
    return patient_utility(labels, pred), patient_utility(labels, best_pred), patient_utility(labels, np.zeros(n))


def _row_utility(t: np.ndarray, t_sepsis: np.ndarray, septic: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """:func:`patient_utility`'s terms for every row at once (``t`` the row's hour in its stay)."""
    d = t - t_sepsis
    tp = np.where(d <= DT_OPTIMAL, np.maximum(_M1 * d + _B1, U_FP), _M2 * d + _B2)
    fn = np.where(d <= DT_OPTIMAL, 0.0, _M3 * d + _B3)
    u = np.where(septic, np.where(pred, tp, fn), np.where(pred, U_FP, U_TN))
    return np.where(septic & (d > DT_LATE), 0.0, u)


def utility_gain(hours_from_onset: np.ndarray) -> np.ndarray:
    """U(alert) - U(no alert) of one row, ``hours_from_onset`` = the row's hour minus the clinical
    onset (NaN: a patient who never becomes septic): what an alert at that row earns or costs in
    the challenge's utility (the utility is a sum over rows, so each row's term stands alone).
    Positive from 12 h before onset to 3 h after (up to +1 early, +2 at 3 h after: a late alert
    still avoids most of the missed-onset penalty), -0.05 for a false alarm, 0 after onset + 3 h."""
    d = np.asarray(hours_from_onset, float)
    septic = ~np.isnan(d)
    d0, zero = np.where(septic, d, 0.0), np.zeros(len(d))
    on = _row_utility(d0, zero, septic, np.ones(len(d), bool))
    return on - _row_utility(d0, zero, septic, np.zeros(len(d), bool))


def per_patient(patient: np.ndarray, labels: np.ndarray, alert: np.ndarray) -> dict[str, np.ndarray]:
    """Per patient (sorted ids): row range in the patient-sorted order, the three utilities, alert
    episodes, rows, septic or not, caught (an alert by 3 h after onset) and the lead time of the first."""
    order = np.argsort(patient, kind="stable")
    p, y, a = patient[order], labels[order].astype(bool), alert[order].astype(bool)
    n = len(p)
    bounds = np.flatnonzero(np.r_[True, p[1:] != p[:-1], True])
    starts = bounds[:-1]
    rows = np.diff(bounds)
    pid = np.repeat(np.arange(len(starts)), rows)
    t = np.arange(n) - starts[pid]
    septic_p = np.maximum.reduceat(y, starts) if n else np.zeros(0, bool)
    first_label = np.minimum.reduceat(np.where(y, t, n), starts) if n else np.zeros(0, int)
    onset_p = np.where(septic_p, first_label - DT_OPTIMAL, 0)  # clinical onset: 6 h after the label starts
    septic, t_sepsis = septic_p[pid], onset_p[pid]
    best = np.zeros(n, bool)
    best[septic & (t >= t_sepsis + DT_EARLY) & (t <= t_sepsis + DT_LATE)] = True
    total = {}
    for name, pred in (("observed", a), ("best", best), ("inaction", np.zeros(n, bool))):
        total[name] = np.add.reduceat(_row_utility(t, t_sepsis, septic, pred), starts) if n else np.zeros(0)
    begins = a & ~np.r_[False, a[:-1]] | (a & (t == 0))
    in_time = a & septic & (t <= t_sepsis + DT_LATE)
    first_hit = np.minimum.reduceat(np.where(in_time, t, n), starts) if n else np.zeros(0, int)
    caught = septic_p & (first_hit < n)
    return {**total, "episodes": np.add.reduceat(begins.astype(float), starts) if n else np.zeros(0),
            "rows": rows.astype(float), "septic": septic_p.astype(float), "caught": caught.astype(float),
            "lead": np.where(caught, onset_p - first_hit, np.nan), "order": order, "bounds": bounds,
            "ids": p[starts]}


def _summary(pp: dict, take: np.ndarray) -> dict:
    """The alert metrics of the patients ``take`` (indices into ``pp``, repeats allowed)."""
    obs, best, ina = (pp[k][take].sum() for k in ("observed", "best", "inaction"))
    leads = pp["lead"][take]
    leads = leads[~np.isnan(leads)]
    return {"utility": float((obs - ina) / (best - ina)) if best != ina else float("nan"),
            "episodes_per_patient_day": float(pp["episodes"][take].sum() / (pp["rows"][take].sum() / 24.0)),
            "caught": int(pp["caught"][take].sum()), "septic": int(pp["septic"][take].sum()),
            "median_lead_h": float(np.median(leads)) if len(leads) else None}


def _fill(score: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(score)
    return np.where(ok, score, np.nanmin(score[ok]) if ok.any() else 0)


def evaluate(patient: np.ndarray, labels: np.ndarray, score: np.ndarray, alert: np.ndarray) -> dict:
    """All metrics for one scorer: ``score`` for AUROC/AUPRC, ``alert`` (0/1 per row) for the rest."""
    s = _fill(score)
    pp = per_patient(patient, labels, alert)
    m = _summary(pp, np.arange(len(pp["rows"])))
    return {"auroc": round(float(roc_auc_score(labels, s)), 3), "auprc": round(float(average_precision_score(labels, s)), 3),
            "utility": round(m["utility"], 3), "episodes_per_patient_day": round(m["episodes_per_patient_day"], 3),
            "septic_caught": f"{m['caught']}/{m['septic']}", "median_lead_h": m["median_lead_h"]}


def bootstrap(patient: np.ndarray, labels: np.ndarray, score: np.ndarray, alert: np.ndarray, n: int = 200,
              seed: int = 2019) -> dict[str, tuple[float, float]]:
    """95 % confidence intervals (percentile bootstrap, patients resampled with replacement) of
    every metric of :func:`evaluate`; ``septic_caught`` as the fraction caught."""
    s = _fill(score)
    pp = per_patient(patient, labels, alert)
    order, bounds = pp["order"], pp["bounds"]
    y_sorted, s_sorted = labels[order], s[order]
    k = len(pp["rows"])
    rng = np.random.default_rng(seed)
    draws: dict[str, list] = {m: [] for m in ("auroc", "auprc", "utility", "episodes_per_patient_day",
                                              "septic_caught", "median_lead_h")}
    for _ in range(n):
        take = rng.integers(0, k, k)
        idx = np.concatenate([np.arange(bounds[i], bounds[i + 1]) for i in take])
        yb = y_sorted[idx]
        if yb.any() and not yb.all():
            draws["auroc"].append(roc_auc_score(yb, s_sorted[idx]))
            draws["auprc"].append(average_precision_score(yb, s_sorted[idx]))
        m = _summary(pp, take)
        draws["utility"].append(m["utility"])
        draws["episodes_per_patient_day"].append(m["episodes_per_patient_day"])
        draws["septic_caught"].append(m["caught"] / max(m["septic"], 1))
        if m["median_lead_h"] is not None:
            draws["median_lead_h"].append(m["median_lead_h"])
    return {k: (round(float(np.percentile(v, 2.5)), 3), round(float(np.percentile(v, 97.5)), 3)) if v else (None, None)
            for k, v in draws.items()}


def brier(labels: np.ndarray, risk: np.ndarray) -> float:
    return float(np.mean((risk - labels) ** 2))


def reliability(labels: np.ndarray, risk: np.ndarray,
                edges=(0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)) -> list[dict]:
    """Per risk bin: rows, mean predicted risk and the observed label rate (a calibrated risk has both equal)."""
    b = np.clip(np.digitize(risk, edges[1:-1]), 0, len(edges) - 2)
    out = []
    for i in range(len(edges) - 1):
        m = b == i
        if m.any():
            out.append({"bin": [edges[i], edges[i + 1]], "rows": int(m.sum()), "predicted": float(risk[m].mean()),
                        "observed": float(labels[m].mean())})
    return out
