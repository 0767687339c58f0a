"""Snapshots built from columns are byte for byte the VitalsSnapshot JSON the alert service reads."""

from __future__ import annotations

import numpy as np

from detectors.engine import DetectorEngine
from detectors.snapshots import SNAPSHOT_EVERY_MS, Snapshots
from wardwatch.metrics_catalog import METRICS
from wardwatch.models import VitalsSnapshot

from .test_score_schedule import ward_stream

NAMES = [m.value for m in METRICS]


def one_model_per_patient(snaps: Snapshots, r, t, ids, clean, clean_ts, off_active, scores) -> bytes:
    """The reference: one pydantic model per patient, as the snapshots were built before."""
    news, risk = scores.get("news2"), scores.get("risk")
    return VitalsSnapshot(
        patient=ids[r], ts=int(t),
        values={NAMES[c]: float(clean[r, c]) for c in range(len(NAMES)) if clean_ts[r, c] >= 0},
        value_ts={NAMES[c]: int(clean_ts[r, c]) for c in range(len(NAMES)) if clean_ts[r, c] >= 0},
        news2=float(news[r]) if news is not None and news[r] == news[r] else None,
        risk=float(risk[r]) if risk is not None and risk[r] == risk[r] else None,
        stale_metrics=[NAMES[c] for c in range(len(NAMES)) if off_active[r, c]],
        trend={NAMES[c]: [float(x) for x in snaps.spark[r, c] if x == x] for c in range(len(NAMES))
               if snaps.spark_ts[r, c] >= 0}).model_dump_json().encode()


class CheckedSnapshots(Snapshots):
    def __init__(self) -> None:
        super().__init__()
        self.compared = 0

    def emit(self, rows, t, changed, ids, clean, clean_ts, off_active, scores):
        due = (t - self.snap_ts[rows] >= SNAPSHOT_EVERY_MS) | changed
        want = [one_model_per_patient(self, r, ts, ids, clean, clean_ts, off_active, scores)
                for r, ts in zip(rows[due], t[due])]
        got = super().emit(rows, t, changed, ids, clean, clean_ts, off_active, scores)
        assert [s.json for s in got] == want
        assert [s.patient for s in got] == [ids[r] for r in rows[due]]
        self.compared += len(got)
        return got


def test_snapshots_from_columns_equal_one_pydantic_model_per_patient():
    engine = DetectorEngine(stale_after_ms=10**12)
    checked = CheckedSnapshots()
    engine.detectors[engine.detectors.index(engine.snapshots)] = engine.snapshots = checked
    stale = 0
    for cols in ward_stream(minutes=8, step_s=2, batch_s=30):
        out = engine.process(cols)
        stale += sum(bool(s.model().stale_metrics) for s in out.snapshots)
    assert checked.compared > 500 and stale > 0, "the stream has snapshots, some with a sensor off"
    assert np.isnan(engine.scores["risk"]).sum() < len(engine.scores["risk"])
