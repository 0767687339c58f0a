"""NEWS2 for one patient at a time, as a per-message peer needs it.

:func:`detectors.scores.news2.news2` is vectorised over patients: called on one row per reading
time it costs hundreds of microseconds (numpy's per-call overhead), more than a Python team's
scalar function would, which would make the Quix Streams peer look slower than it is. So the points
of each parameter are tabulated once, at start, by calling that very function over every value at
0.1 resolution within the metric's possible range (no band is copied here), and a score is then a
few list look-ups. Exact for values with one decimal (the benchmark's load); others round to it.
"""

from __future__ import annotations

import numpy as np

from wardwatch.metrics_catalog import CATALOG, METRIC_INDEX, METRICS, Metric

from detectors.scores.news2 import PARAMS, LazyReasons, news2

# The metric feeding each NEWS2 parameter (pulse: heart rate, else the oximeter's pulse rate).
PARAM_OF = {Metric.resp_rate: 0, Metric.spo2: 1, Metric.sbp: 2, Metric.heart_rate: 3, Metric.pulse_rate: 3,
            Metric.temperature: 4}
STEP = 0.1


def _tabulate(metric: Metric) -> tuple[float, list[float]]:
    info = CATALOG[metric]
    grid = np.round(np.arange(info.low, info.high + STEP / 2, STEP), 1)
    latest = np.full((len(grid), len(METRICS)), np.nan)
    latest[:, METRIC_INDEX[metric]] = grid
    _total, _partial, parts = news2(latest)
    return float(info.low), parts[:, PARAM_OF[metric]].tolist()


_TABLES = {m.value: _tabulate(m) for m in PARAM_OF}


def points(metric: str, value: float) -> float | None:
    """NEWS2 points of one parameter's value; None for a metric NEWS2 does not score."""
    table = _TABLES.get(metric)
    if table is None:
        return None
    low, pts = table
    return pts[min(max(int(round((value - low) / STEP)), 0), len(pts) - 1)]


def score(latest: dict[str, float]) -> tuple[float, bool, list[float]]:
    """(total, partial, parts) of a patient's latest values (metric -> value), as ``news2`` gives them
    (parts: the points of each of ``PARAMS``, NaN where missing)."""
    parts = [float("nan")] * len(PARAMS)
    pulse_from_hr = "heart_rate" in latest
    for metric, v in latest.items():
        if metric == "pulse_rate" and pulse_from_hr:
            continue
        p = points(metric, v)
        if p is not None:
            parts[PARAM_OF[Metric(metric)]] = p
    total = sum(p for p in parts if p == p)
    # news2(): consciousness and supplemental O2 are never streamed, so every score is partial.
    return float(total), True, parts


def reasons(parts: list[float]) -> list[str]:
    """The reasons ``news2``'s stage gives for these parts (built only for the scores stored)."""
    return LazyReasons(np.array([parts]))[0]
