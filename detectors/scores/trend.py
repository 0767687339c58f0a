"""The trend score: how many vitals moved the deteriorating way over six hours."""

from __future__ import annotations

import numpy as np

# HR, SpO2, temperature, SBP, MAP, RR (the learned risk's VITALS): the 6-hour change that counts as
# deterioration (positive: a rise, negative: a fall).
TREND_LIMITS = np.array([10.0, -3.0, 1.0, -15.0, -10.0, 4.0])


class TrendScore:
    """Counts the vitals (HR, SpO2, temperature, SBP, MAP, RR) whose 6-hour change went the
    deteriorating way by more than :data:`TREND_LIMITS` (0..6). The idea of scoring the direction of
    change rather than the value is that of "track and trigger" trend rules (Royal College of
    Physicians 2017, NEWS2 report, on serial scores); the limits are WardWatch's own.

    Works when: vitals charted or streamed for at least six hours (hourly history from
    :class:`detectors.scores.risk.RiskStage`). Does not work when: a missing vital (NaN) counts as no
    change; an acute event within the hour, or a deterioration that is slow everywhere, under every
    limit. A stateless score: ``score(d6)`` on a column array of 6-hour changes.

    The first patient of the shipped CinC 2019 demo slice, at its last hour (HR +34, RR +7: two)::

        >>> import numpy as np, pandas as pd
        >>> from importlib.resources import files
        >>> df = pd.read_csv(files("wardwatch") / "data" / "cinc2019_demo.csv.gz")
        >>> cols = ["HR", "O2Sat", "Temp", "SBP", "MAP", "Resp"]
        >>> p = df[df["patient"] == df["patient"].iloc[0]][cols].ffill().to_numpy()
        >>> d6 = p[-1:] - p[-7:-6]
        >>> d6.round(1).tolist(), TrendScore().score(d6).tolist()
        ([[34.0, 1.0, 0.8, -4.0, 0.0, 7.0]], [2.0])
    """

    name = "trend"

    def __init__(self, limits: np.ndarray = TREND_LIMITS) -> None:
        self.limits = np.asarray(limits, float)

    def score(self, d6: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            hit = np.where(self.limits > 0, d6 >= self.limits, d6 <= self.limits)
        return hit.sum(axis=1).astype(float)


def trend_score(d6: np.ndarray) -> np.ndarray:
    """:meth:`TrendScore.score` with the default limits."""
    return TrendScore().score(d6)
