"""The risk's reasons, taken out of the feature columns for many rows at once, are the words the
row-by-row code gave (kept here as the reference)."""

from __future__ import annotations

import numpy as np

from detectors.engine import DetectorEngine
from detectors.scores import risk as risk_module
from detectors.scores.risk import RiskStage

from .test_score_schedule import ward_stream

_NAMES = risk_module.feature_names()


def reference_words(reasons, i: int) -> list[str]:
    """The reasons of one row as they were built before (numpy scalars, one row at a time)."""
    x = reasons._x(i)
    k = len(risk_module.VITALS)
    out = [f"risk {reasons.risk[i]:.2f}"]
    for j, label in enumerate(("HR", "SpO2", "temperature", "SBP", "MAP", "RR")):
        d6 = x[3 * k + j]
        if d6 == d6 and abs(d6) >= (5 if label in ("HR", "SBP", "MAP") else 2 if label in ("SpO2", "RR") else 0.5):
            out.append(f"{label} {'rising' if d6 > 0 else 'falling'} {abs(d6):.3g} over 6 h")
    if x[_NAMES.index("news2")] >= 5:
        out.append(f"NEWS2 {int(x[_NAMES.index('news2')])}")
    iso = x[_NAMES.index("iforest")]
    if iso == iso and iso >= 0.6:
        out.append(f"unusual for this patient (anomaly {iso:.2f})")
    return out


class CheckedRisk(RiskStage):
    compared = 0
    worded = 0

    def update(self, rows, latest, latest_ts, now_ms):
        res = super().update(rows, latest, latest_ts, now_ms)
        # Some rows scored this round (their features at hand) and some not (computed when read).
        scored = np.array(sorted(res.reasons.pos), np.int64)[:15]
        every = np.unique(np.r_[scored, np.arange(min(len(rows), 15))]).astype(np.int64)
        want = [reference_words(res.reasons, i) for i in every.tolist()]
        assert res.reasons.words(every) == want
        assert res.reasons.texts(every[::-1]) == ["; ".join(w) for w in want[::-1]]
        assert [res.reasons[i] for i in every.tolist()] == want
        CheckedRisk.compared += len(want)
        CheckedRisk.worded += sum(len(w) > 1 for w in want)
        return res


def test_risk_reasons_of_many_rows_equal_the_row_by_row_words():
    shipped = RiskStage.shipped()
    stage = CheckedRisk(shipped.model, iforest=shipped.iforest)
    engine = DetectorEngine(stages=[stage], stale_after_ms=10**12)
    for cols in ward_stream(minutes=12, step_s=30, batch_s=120):
        engine.process(cols)
    assert CheckedRisk.compared > 300 and CheckedRisk.worded > 0, "rows scored now and rows not, some with words"
