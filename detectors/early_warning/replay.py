"""Offline replay of a CinC 2019 file through the live worker's own detector engine.

Each patient's rows become readings at base + (ICULOS - 1) hours; all patients' hour h go through
the engine as one batch, so 14,000 patients take one pass of a few hundred vectorised batches.
The SepsisLabel column is never read here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wardwatch.columns import ReadingColumns
from wardwatch.metrics_catalog import METRIC_INDEX, Metric
from wardwatch.models import Priority

from ..engine import DetectorEngine

CINC = {"HR": "heart_rate", "O2Sat": "spo2", "Temp": "temperature", "SBP": "sbp", "MAP": "map", "DBP": "dbp",
        "Resp": "resp_rate", "EtCO2": "etco2"}
BASE_MS = 1_577_836_800_000  # 2020-01-01: any fixed origin works, the engine only needs order


@dataclass
class ReplayResult:
    patient: np.ndarray
    iculos: np.ndarray
    risk: np.ndarray
    news2: np.ndarray
    alert: np.ndarray
    priority: np.ndarray
    no_data: np.ndarray  # 1 before the patient's first vital sign: ``risk`` is then the prior for the hour of stay
    limits_active: np.ndarray  # rows x limit rules: which limit conditions were active (for tuning the policy)
    early_warning: np.ndarray  # the early-warning alarm's level per row (0 none, 2 medium, 3 high)


def read_cinc(path) -> pd.DataFrame:
    cols = ["patient", "ICULOS", *CINC]
    return pd.read_csv(path, usecols=lambda c: c in cols)


def replay(df: pd.DataFrame, engine: DetectorEngine, base_ms: int = BASE_MS, events: list | None = None) -> ReplayResult:
    df = df.reset_index(drop=True)
    n = len(df)
    risk = np.full(n, np.nan)
    news = np.full(n, np.nan)
    alert = np.zeros(n, np.int8)
    prio = np.full(n, "", dtype=object)
    no_data = np.zeros(n, np.int8)
    limits_active = np.zeros((n, len(engine.limits.rules)), bool)
    ew = np.zeros(n, np.int8)
    risk_stage = next((s for s in engine.stages if getattr(s, "name", "") == "risk" and s.model is not None), None)
    medium_rules = np.array([r.priority in (Priority.medium, Priority.high) for r in engine.limits.rules])
    last_risk: dict[str, float] = {}
    last_news: dict[str, float] = {}
    long = df.melt(id_vars=["patient", "ICULOS"], value_vars=[c for c in CINC if c in df], var_name="col",
                   value_name="value").dropna(subset=["value"])
    long["metric"] = long["col"].map({c: METRIC_INDEX[Metric(m)] for c, m in CINC.items()})
    by_hour = dict(tuple(long.groupby("ICULOS", sort=True)))
    rows_by_hour = dict(tuple(df.reset_index().groupby("ICULOS", sort=True)))
    for hour in sorted(rows_by_hour):
        part = by_hour.get(hour)
        if part is not None and len(part):
            k = len(part)
            ts = base_ms + (int(hour) - 1) * 3_600_000
            cols = ReadingColumns(id=np.array([""] * k, object), patient=part["patient"].astype(str).to_numpy(object),
                                  device=part["patient"].astype(str).to_numpy(object),
                                  metric=part["metric"].to_numpy(np.int8), value=part["value"].to_numpy(float),
                                  ts=np.full(k, ts, np.int64), received=np.zeros(k, np.int64),
                                  quality=np.full(k, np.nan, np.float32))
            out = engine.process(cols)
            if events is not None:
                events.extend(out.events)
            for name, store in (("risk", last_risk), ("news2", last_news)):
                if name in engine.scores:
                    vals = engine.scores[name]
                    for p in set(cols.patient.tolist()):
                        store[p] = float(vals[engine.table.index[p]])
        idx = rows_by_hour[hour]["index"].to_numpy()
        pats = df.loc[idx, "patient"].astype(str).to_numpy()
        for i, p in zip(idx, pats):
            risk[i] = last_risk.get(p, np.nan)
            news[i] = last_news.get(p, np.nan)
            r = engine.table.index.get(p)
            if r is None:
                no_data[i] = 1
                continue
            level = int(engine.early_warning.score_active[r])
            ew[i] = level
            limits_active[i] = engine.limits.cond_active[r]
            limit_hit = bool((engine.limits.cond_active[r] & medium_rules).any())
            if level >= 2 or limit_hit:
                alert[i] = 1
                high = level == 3 or any(engine.limits.cond_active[r, j] and engine.limits.rules[j].priority is Priority.high
                                         for j in range(len(engine.limits.rules)))
                prio[i] = "high" if high else "medium"
    iculos = df["ICULOS"].to_numpy()
    no_data |= np.isnan(risk).astype(np.int8) & (risk_stage is not None)
    if risk_stage is not None:  # before the first vital sign: the base rate for the hour of stay, never blank
        blank = np.isnan(risk)
        risk[blank] = risk_stage.prior(iculos[blank])
    return ReplayResult(df["patient"].astype(str).to_numpy(), iculos, risk, news, alert, prio, no_data,
                        limits_active, ew)
