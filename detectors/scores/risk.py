"""A learned early-warning risk, computed online inside the detector engine, with its reasons.

Per patient the stage keeps the last 12 hours of hourly values of six vitals and derives trends
(1, 3 and 6-hour deltas), spreads, ranges, how often each vital is charted, NEWS2's components
and the hours since monitoring began. A gradient-boosted tree model (scikit-learn's
HistGradientBoostingClassifier, trained by ``wardwatch train`` on CinC 2019 patients) turns them
into a risk between 0 and 1. The model ships as plain arrays (``.npz`` without pickle, plus a JSON
manifest), and is evaluated here with numpy: loading it runs no code from the file.

Works when: vitals are charted or streamed for hours, as on a ward or in an ICU; the risk looks
at trends, so it needs a few hours of history. Does not work when: a patient has only just been
admitted (little history), or only one or two vitals are measured (a watch: SpO2 and pulse): the
risk is then computed from what there is, and the NEWS2 stage's partial flag says what is missing.
It was trained for sepsis onset in ICU stays (CinC 2019): it is an early-warning aid, not a
diagnosis.
"""

from __future__ import annotations

import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..protocol import RowState
from .base import StageScores
from .gradient_boosting import TreeModel
from .isolation_forest import IsolationForestScore
from .news2 import news2
from .risk_features import BASELINE_H, H, HOUR_MS, STALE_MS, VCOLS, VITALS, Z_FLOOR, feature_names
from .trend import TrendScore

__all__ = ["ARTEFACTS", "BASELINE_H", "HOUR_MS", "Z_FLOOR", "RiskStage", "RiskThresholds", "TreeModel", "feature_names"]

ARTEFACTS = Path(__file__).resolve().parents[1] / "artefacts"


@dataclass
class RiskThresholds:
    """Risk alarm levels: medium and high raise, and a raised alarm clears only below ``clear``."""

    medium: float
    high: float
    clear: float | None = None

    def __post_init__(self) -> None:
        self.clear = self.medium if self.clear is None else min(self.clear, self.medium)


class RiskStage(RowState):
    """The learned early-warning risk: hourly history per patient -> 76 features (latest values,
    1/3/6-hour trends, spreads, charting counts, NEWS2 components, shock index, baseline z-scores,
    the :class:`IsolationForestScore` anomaly and the :class:`TrendScore`) -> gradient-boosted trees
    (Friedman, Ann Stat 2001; scikit-learn's histogram variant after Ke et al., LightGBM, NeurIPS
    2017) -> a risk 0..1 once an hour, an alarm level from the tuned thresholds, and reasons in words.
    Trained by :mod:`detectors.training` on CinC 2019 (Reyna et al., Crit Care Med 2020); scored here
    with numpy only. Also reports the ``iforest`` and ``trend`` scores it computed.

    Works when: vitals are charted or streamed for hours, as on a ward or in an ICU; the risk looks
    at trends, so it needs a few hours of history. Does not work when: a patient has only just been
    admitted (little history), or only one or two vitals are measured (a watch): the risk is then
    computed from what there is and marked partial. Trained for sepsis onset in ICU stays: an
    early-warning aid, not a diagnosis.

    The shipped CinC 2019 demo slice (16 patients, 8 of whom became septic) through the engine:
    patient-hours scored, the highest risk, and the patients it alarmed for at some hour::

        >>> from importlib.resources import files
        >>> from detectors.early_warning.replay import read_cinc, replay
        >>> from detectors.engine import DetectorEngine
        >>> df = read_cinc(files("wardwatch") / "data" / "cinc2019_demo.csv.gz")
        >>> res = replay(df, DetectorEngine(stages=[RiskStage.shipped()], stale_after_ms=10**15))
        >>> import numpy as np
        >>> len(res.risk), round(float(np.nanmax(res.risk)), 3), len(set(res.patient[res.alert == 1]))
        (752, 0.229, 10)
    """

    name = "risk"
    reads = VITALS
    # Per patient (``state_dict``/``load_state`` take the engine's ``rows`` array, as every score stage).
    # pred_hour: the model scores a patient once an hour, as trained; base_*: the baseline's sums.
    V = len(VITALS)
    ARRAYS = {"hist": ((H, V), np.float64, np.nan), "hour": ((), np.int64, -1), "first": ((), np.int64, -1),
              "pred_hour": ((), np.int64, -1), "base_sum": ((V,), np.float64, 0.0), "base_sq": ((V,), np.float64, 0.0),
              "base_n": ((V,), np.float64, 0.0), "risk": ((), np.float64, np.nan), "level": ((), np.int8, 0),
              "iforest_score": ((), np.float64, np.nan), "trend_score": ((), np.float64, np.nan)}
    ROW_ARRAYS = tuple(ARRAYS)  # saved and rolled back by the engine

    def __init__(self, model: TreeModel | None = None, thresholds: RiskThresholds | None = None,
                 iforest: IsolationForestScore | None = None, every_round: bool = False) -> None:
        super().__init__()
        self.every_round = every_round
        self.model = model
        self.iforest = iforest
        self.trend = TrendScore()
        self.thresholds = thresholds or (RiskThresholds(**model.meta["thresholds"]) if model else None)
        # Hourly predictions not yet read by the live worker's drift metrics (bounded: nobody may read).
        self._predicted: deque[np.ndarray] = deque(maxlen=10_000)

    def drain_predictions(self) -> list[np.ndarray]:
        """The risks predicted since the last call (for :mod:`detectors.early_warning.drift`)."""
        out = list(self._predicted)
        self._predicted.clear()
        return out

    def prior(self, hour_of_stay: np.ndarray) -> np.ndarray:
        """The base rate of the training patients' label at each hour of stay (1-based): the risk of a
        patient before any vital sign is measured; the last entry holds beyond the table."""
        table = np.asarray(self.model.meta.get("prior_by_hour") or [np.nan], float)
        idx = np.clip(np.asarray(hour_of_stay, np.int64) - 1, 0, len(table) - 1)
        return table[idx]

    @classmethod
    def shipped(cls, every_round: bool = False) -> "RiskStage":
        return cls(TreeModel.load(ARTEFACTS / "risk"), iforest=IsolationForestScore.load(ARTEFACTS / "iforest.npz"),
                   every_round=every_round)

    def state_dict(self, rows: np.ndarray) -> dict:
        r = int(rows[0])
        return {"hist": np.where(np.isnan(self.hist[r]), None, self.hist[r]).tolist(), "hour": int(self.hour[r]),
                "first": int(self.first[r]), "pred_hour": int(self.pred_hour[r]),
                "risk": None if np.isnan(self.risk[r]) else float(self.risk[r]), "level": int(self.level[r]),
                "scores": [None if np.isnan(x) else float(x) for x in (self.iforest_score[r], self.trend_score[r])],
                "base": [self.base_sum[r].tolist(), self.base_sq[r].tolist(), self.base_n[r].tolist()]}

    def load_state(self, rows: np.ndarray, state: dict) -> None:
        r = int(rows[0])
        self.hist[r] = np.array(state["hist"], dtype=float)
        self.hour[r], self.first[r] = state["hour"], state["first"]
        self.pred_hour[r], self.level[r] = state.get("pred_hour", -1), state.get("level", 0)
        self.risk[r] = np.nan if state.get("risk") is None else state["risk"]
        iso, trend = state.get("scores", (None, None))
        self.iforest_score[r], self.trend_score[r] = (np.nan if x is None else x for x in (iso, trend))
        if "base" in state:
            self.base_sum[r], self.base_sq[r], self.base_n[r] = (np.asarray(x, float) for x in state["base"])

    def advance(self, rows: np.ndarray, latest: np.ndarray, latest_ts: np.ndarray) -> np.ndarray:
        """Every round, for every row: the hourly history moves on at a new hour, the current hour's
        slot takes the latest values, and the first hours feed the patient's baseline. Cheap (a few
        column assignments); the features themselves are computed only when a prediction is due.
        Returns the latest values of :data:`VITALS` (NaN where missing or stale)."""
        t_row = latest_ts.max(axis=1)
        v = latest[:, VCOLS].copy()
        v[(t_row[:, None] - latest_ts[:, VCOLS]) > STALE_MS] = np.nan
        hour = t_row // HOUR_MS
        first = self.first[rows]
        self.first[rows] = np.where(first < 0, t_row, first)
        known = self.hour[rows]
        shift = np.where(known < 0, 0, np.clip(hour - known, 0, H))
        for s in np.unique(shift[shift > 0]):
            rs = rows[shift == s]
            self.hist[rs, :-s] = self.hist[rs, s:]
            self.hist[rs, -s:] = np.nan
        self.hour[rows] = np.maximum(known, hour)
        self.hist[rows, -1] = v
        # The patient's own baseline: mean and spread of the first hours, one sample per hour.
        hours = (t_row - self.first[rows]) / HOUR_MS
        in_base = np.flatnonzero((hours < BASELINE_H) & ((shift > 0) | (self.base_n[rows].sum(axis=1) == 0)))
        if len(in_base):
            rb, vb = rows[in_base], v[in_base]
            ok = ~np.isnan(vb)
            with np.errstate(over="ignore", invalid="ignore"):  # absurd values overflow: they are data, not errors
                self.base_sum[rb] += np.where(ok, vb, 0)
                self.base_sq[rb] += np.where(ok, vb * vb, 0)
            self.base_n[rb] += ok
        return v

    def features(self, rows: np.ndarray, latest: np.ndarray, latest_ts: np.ndarray) -> np.ndarray:
        """The feature matrix of ``rows`` (after :meth:`advance` of this round); reads state, changes none."""
        t_row = latest_ts.max(axis=1)
        v = self.hist[rows, -1]
        h = self.hist[rows]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            last6 = h[:, -6:]
            parts = [v, v - h[:, -2], v - h[:, -4], v - h[:, -7],
                     np.nanmean(last6, 1), np.nanstd(last6, 1), np.nanmin(last6, 1), np.nanmax(last6, 1),
                     np.nanmean(h, 1), (~np.isnan(h)).sum(1).astype(float)]
            total, _, comps = news2(latest)
            hours = ((t_row - self.first[rows]) / HOUR_MS)[:, None]
            shock = (v[:, 0] / v[:, 3])[:, None]
            n = self.base_n[rows]
            mean = self.base_sum[rows] / np.maximum(n, 1)
            std = np.sqrt(np.maximum(self.base_sq[rows] / np.maximum(n, 1) - mean ** 2, 0))
            z = np.where(n > 0, (v - mean) / np.maximum(std, Z_FLOOR), np.nan)
        iso = self.iforest.score(z)[:, None] if self.iforest is not None else np.full((len(rows), 1), np.nan)
        trend = self.trend.score(v - h[:, -7])[:, None]
        return np.hstack(parts + [hours, total[:, None], comps, shock, z, iso, trend])

    def update(self, rows: np.ndarray, latest: np.ndarray, latest_ts: np.ndarray, now_ms: int | np.ndarray) -> StageScores:
        """The history advances every round; features, the anomaly and trend scores and the model run
        only for the rows whose hour changed (a new hour, or a new patient): the risk cannot change
        in between, so neither can its alarm. ``every_round`` computes the features for every row of
        every round, as before this schedule (the reference the tests compare with)."""
        v = self.advance(rows, latest, latest_ts)
        n = len(rows)
        hour = latest_ts.max(axis=1) // HOUR_MS
        due = hour != self.pred_hour[rows]
        idx = np.arange(n) if self.every_round else np.flatnonzero(due)
        X = self.features(rows[idx], latest[idx], latest_ts[idx]) if len(idx) else np.empty((0, len(_NAMES)))
        k = X.shape[1]
        # The anomaly and trend scores are features: they are stored as of the last time they were computed.
        self.iforest_score[rows[idx]], self.trend_score[rows[idx]] = X[:, k - 2], X[:, k - 1]
        partial = np.isnan(v).any(axis=1)
        if self.model is None:
            nan = np.full(n, np.nan)
            return StageScores(rows, {"risk": nan}, {"risk": np.zeros(n, bool)}, np.zeros(n, np.int8),
                               np.full(n, "", object), [])
        d = due[idx]
        if d.any():
            r_due = rows[idx[d]]
            p = self.model.predict_proba(X[d])
            th = self.thresholds
            self.risk[r_due] = p
            self._predicted.append(p)
            # Level 1 ("low") between the clear and the medium threshold raises nothing but keeps a
            # raised alarm on: hysteresis, so a risk hovering at the threshold is one episode.
            clear = th.medium if th.clear is None else th.clear
            self.level[r_due] = np.where(p >= th.high, 3, np.where(p >= th.medium, 2, np.where(p >= clear, 1, 0)))
            self.pred_hour[r_due] = hour[idx[d]]
        risk, level = self.risk[rows], self.level[rows]
        cond = np.where(level == 3, "risk_high", np.where(level == 2, "risk_medium", "")).astype(object)
        fresh = due if not self.every_round else None
        return StageScores(rows, {"risk": risk, "iforest": self.iforest_score[rows], "trend": self.trend_score[rows]},
                           {"risk": partial, "iforest": partial, "trend": partial}, level, cond,
                           _Reasons(self, rows, latest, latest_ts, idx, X, risk), fresh=fresh)


class _Reasons:
    """The vitals and trends behind a risk, in words, built only when read. The features of a row
    that was not scored this round are computed then (same round, same state: the same words)."""

    def __init__(self, stage: RiskStage, rows, latest, latest_ts, idx: np.ndarray, X: np.ndarray,
                 risk: np.ndarray) -> None:
        self.stage, self.rows, self.latest, self.latest_ts, self.risk = stage, rows, latest, latest_ts, risk
        self.pos = dict(zip(idx.tolist(), range(len(idx))))
        self.X = X

    def __len__(self) -> int:
        return len(self.rows)

    def __bool__(self) -> bool:
        return True

    def _x(self, i: int) -> np.ndarray:
        j = self.pos.get(i)
        if j is not None:
            return self.X[j]
        return self.stage.features(self.rows[i:i + 1], self.latest[i:i + 1], self.latest_ts[i:i + 1])[0]

    def __getitem__(self, i: int) -> list[str]:
        return self.words(np.array([i]))[0]

    def texts(self, index: np.ndarray) -> list[str]:
        """``"; ".join(self[i])`` for each ``i`` in ``index`` (the stored scores' reasons)."""
        return ["; ".join(w) for w in self.words(index)]

    def words(self, index: np.ndarray) -> list[list[str]]:
        """The reasons of each row in ``index``: the feature columns read are taken out as plain lists
        once, then each row is put in words."""
        idx = np.asarray(index, np.int64).tolist()
        if not idx:
            return []
        at = [self.pos.get(i) for i in idx]
        x = self.X[at] if None not in at else np.stack([self._x(i) for i in idx])
        k = len(VITALS)
        d6s, news, isos = x[:, 3 * k:4 * k].tolist(), x[:, _NEWS2].tolist(), x[:, _IFOREST].tolist()
        out = []
        for r, d6row, nw, iso in zip(np.asarray(self.risk)[idx].tolist(), d6s, news, isos):
            w = [f"risk {r:.2f}"]
            for label, least, d6 in zip(_LABELS, _LEAST_6H, d6row):
                if d6 == d6 and abs(d6) >= least:
                    w.append(f"{label} {'rising' if d6 > 0 else 'falling'} {abs(d6):.3g} over 6 h")
            if nw >= 5:
                w.append(f"NEWS2 {int(nw)}")
            if iso == iso and iso >= 0.6:
                w.append(f"unusual for this patient (anomaly {iso:.2f})")
            out.append(w)
        return out


_NAMES = feature_names()
_IFOREST, _TREND = _NAMES.index("iforest"), _NAMES.index("trend")
_NEWS2 = _NAMES.index("news2")
# The 6-hour change of each vital (in VITALS' order) that is worth a word in the reasons.
_LABELS = ("HR", "SpO2", "temperature", "SBP", "MAP", "RR")
_LEAST_6H = tuple(5 if label in ("HR", "SBP", "MAP") else 2 if label in ("SpO2", "RR") else 0.5 for label in _LABELS)
