"""NEWS2 (Royal College of Physicians, 2017), vectorised over patients: the score, its bands and the stage.

Works on the latest valid value of each parameter. A wearable gives SpO2, pulse and respiration
only, and the CinC data has no consciousness or supplemental-O2 flag: such a score is *partial*
(``partial`` is True) and says which parameters are missing, because a partial 3 is not a full 3.
It assumes SpO2 scale 1; scale 2 (hypercapnic patients, target 88-92 %) needs a clinician's order
and is selected per patient with ``scale2``.

Example on the vitals of a CinC 2019 patient (columns in the order of ``METRICS``)::

    >>> import numpy as np
    >>> from detectors.scores.news2 import news2
    >>> # HR 118, SpO2 93 %, temperature 38.4, SBP 98, RR 26: 2 + 2 + 1 + 2 + 3 = 10, partial (no ACVPU/O2)
    >>> total, partial, parts = news2(np.array([[118, np.nan, 93, 26, 38.4, 98, np.nan, np.nan, np.nan]]))
    >>> total.tolist(), partial.tolist(), parts.tolist()
    ([10.0], [True], [[3.0, 2.0, 2.0, 2.0, 1.0]])
"""

from __future__ import annotations

import numpy as np

from wardwatch.metrics_catalog import METRIC_INDEX, Metric

from .base import StageScores

HR, SPO2, RR, TEMP, SBP = (METRIC_INDEX[m] for m in (Metric.heart_rate, Metric.spo2, Metric.resp_rate,
                                                      Metric.temperature, Metric.sbp))
PULSE = METRIC_INDEX[Metric.pulse_rate]
PARAMS = ("respiration", "spo2", "systolic_bp", "pulse", "temperature")


def _bands(x: np.ndarray, edges: list[float], points: list[int]) -> np.ndarray:
    """Points for x given ascending band edges (right-inclusive) and the points of each band."""
    idx = np.searchsorted(np.asarray(edges), x, side="left")
    return np.asarray(points)[idx]


def news2(latest: np.ndarray, scale2: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(total, partial, parts) where parts is (rows, 5) points per parameter (NaN where missing)."""
    hr = np.where(np.isnan(latest[:, HR]), latest[:, PULSE], latest[:, HR])
    values = np.stack([latest[:, RR], latest[:, SPO2], latest[:, SBP], hr, latest[:, TEMP]], axis=1)
    with np.errstate(invalid="ignore"):
        rr = _bands(np.nan_to_num(values[:, 0], nan=16), [8, 11, 20, 24], [3, 1, 0, 2, 3])
        spo2_1 = _bands(np.nan_to_num(values[:, 1], nan=98), [91, 93, 95], [3, 2, 1, 0])
        spo2_2 = _bands(np.nan_to_num(values[:, 1], nan=90), [83, 85, 87], [3, 2, 1, 0])
        sbp = _bands(np.nan_to_num(values[:, 2], nan=120), [90, 100, 110, 219], [3, 2, 1, 0, 3])
        pulse = _bands(np.nan_to_num(values[:, 3], nan=70), [40, 50, 90, 110, 130], [3, 1, 0, 1, 2, 3])
        temp = _bands(np.nan_to_num(values[:, 4], nan=37), [35.0, 36.0, 38.0, 39.0], [3, 1, 0, 1, 2])
    spo2 = spo2_1 if scale2 is None else np.where(scale2, spo2_2, spo2_1)
    parts = np.stack([rr, spo2, sbp, pulse, temp], axis=1).astype(float)
    parts[np.isnan(values)] = np.nan
    total = np.nansum(parts, axis=1)
    # Consciousness and supplemental O2 are never streamed: every score from numerics is partial
    # unless the five measured parameters are all there and the ward supplies ACVPU/O2 separately.
    partial = np.ones(len(total), dtype=bool)
    return total, partial, parts


def news2_alarm(total: np.ndarray, parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RCP clinical-risk bands: >= 7 high, 5-6 medium, a single 3 low-medium (low)."""
    level = np.where(total >= 7, 3, np.where(total >= 5, 2, np.where(np.nanmax(np.nan_to_num(parts, nan=0), axis=1) >= 3, 1, 0)))
    cond = np.where(level == 3, "news2_high", np.where(level == 2, "news2_medium", np.where(level == 1, "news2_single_3", "")))
    return level.astype(np.int8), cond.astype(object)


class LazyReasons:
    """Reasons in words, built only for the rows someone reads (alarms, stored scores)."""

    def __init__(self, parts: np.ndarray) -> None:
        self.parts = parts

    def __len__(self) -> int:
        return len(self.parts)

    def __bool__(self) -> bool:
        return True

    def __getitem__(self, i: int) -> list[str]:
        row = self.parts[i]
        r = [f"{name} +{int(p)}" for name, p in zip(PARAMS, row) if p and not np.isnan(p)]
        missing = [name for name, p in zip(PARAMS, row) if np.isnan(p)]
        if missing:
            r.append("missing: " + ", ".join(missing))
        return r

    def texts(self, index: np.ndarray) -> list[str]:
        """``"; ".join(self[i])`` for each ``i`` in ``index`` (the stored scores' reasons): a score's
        points take few values, so each distinct row of points is put in words once."""
        parts = self.parts[index]
        if not len(parts):
            return []
        missing = np.isnan(parts)
        _, first, inv = np.unique(np.hstack([missing, np.where(missing, 0, parts)]), axis=0, return_index=True,
                                  return_inverse=True)
        words = ["; ".join(self[int(index[j])]) for j in first.tolist()]
        return [words[k] for k in inv.reshape(-1).tolist()]


class News2Stage:
    """NEWS2 (Royal College of Physicians 2017, National Early Warning Score 2): a score per patient
    from the latest clean values (stale after ``max_age_ms``), with the points of each parameter as
    reasons, and the RCP clinical-risk bands as alarm levels (>= 7 high, 5-6 medium, a single 3 low).

    Works when: all five measured parameters (respiration, SpO2, systolic pressure, pulse,
    temperature) are there and recent. Does not work when: consciousness and supplemental O2 are
    never streamed, so every score is *partial* (and says which parameters are missing: a watch
    gives only SpO2 and pulse, and a partial 3 is not a full 3); SpO2 scale 2 (hypercapnic patients)
    needs a clinician's order. Stateless between rounds.

    The shipped CinC 2019 demo slice, each patient at its last charted values::

        >>> import numpy as np, pandas as pd
        >>> from importlib.resources import files
        >>> from wardwatch.metrics_catalog import METRIC_INDEX, METRICS, Metric
        >>> df = pd.read_csv(files("wardwatch") / "data" / "cinc2019_demo.csv.gz")
        >>> last = df.groupby("patient").agg("last")  # the last non-missing value of each column
        >>> latest = np.full((len(last), len(METRICS)), np.nan)
        >>> for col, m in {"HR": Metric.heart_rate, "O2Sat": Metric.spo2, "Resp": Metric.resp_rate,
        ...                "Temp": Metric.temperature, "SBP": Metric.sbp}.items():
        ...     latest[:, METRIC_INDEX[m]] = last[col]
        >>> s = News2Stage().update(np.arange(len(last)), latest, np.zeros(latest.shape, np.int64), 0)
        >>> s.scores["news2"].astype(int).tolist(), s.alarm_level.tolist().count(3), s.reasons[0]
        ([7, 4, 4, 3, 2, 0, 0, 2, 0, 1, 3, 3, 4, 1, 3, 0], 1, ['respiration +2', 'systolic_bp +3', 'pulse +2'])
    """

    name = "news2"
    reads = (Metric.resp_rate, Metric.spo2, Metric.sbp, Metric.heart_rate, Metric.pulse_rate, Metric.temperature)

    def __init__(self, max_age_ms: int = 4 * 3600_000, alarms: bool = True) -> None:
        self.max_age_ms = max_age_ms  # values older than this do not count (a stale value is missing)
        self.alarms = alarms  # False: score and show NEWS2, let another stage (the risk) raise alarms

    def resize(self, n_rows: int) -> None:
        return None

    def state_dict(self, rows: np.ndarray) -> dict:
        return {}

    def load_state(self, rows: np.ndarray, state: dict) -> None:
        return None

    def update(self, rows: np.ndarray, latest: np.ndarray, latest_ts: np.ndarray,
               now_ms: int | np.ndarray) -> StageScores:
        now = np.reshape(np.asarray(now_ms, np.int64), (-1, 1))  # one time for all rows, or one per row
        fresh = np.where(latest_ts >= now - self.max_age_ms, latest, np.nan)
        total, partial, parts = news2(fresh)
        level, cond = news2_alarm(total, parts)
        if not self.alarms:
            level, cond = np.zeros_like(level), np.full(len(level), "", dtype=object)
        reasons = LazyReasons(parts)
        return StageScores(rows=rows, scores={"news2": total}, partial={"news2": partial}, alarm_level=level,
                           alarm_condition=cond, reasons=reasons)
