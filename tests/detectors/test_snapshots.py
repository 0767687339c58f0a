"""Snapshots built from columns are byte for byte the VitalsSnapshot JSON the alert service reads."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

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


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_snapshots_of_any_state_equal_one_pydantic_model_per_patient(data):
    """Any mix of present, off and sparkline metrics, NaN anywhere in a sparkline, scores missing or
    NaN: the snapshots built from columns are the reference's bytes, in the order of the due rows."""
    n = data.draw(st.integers(1, 12), label="patients")
    m = len(NAMES)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    snaps = Snapshots()
    snaps.resize(n)
    snaps.spark[:] = np.where(rng.random((n, m, snaps.spark.shape[-1])) < data.draw(st.floats(0, 1), label="gaps"),
                              np.nan, rng.normal(80, 20, (n, m, snaps.spark.shape[-1])).round(1))
    snaps.spark_ts[:] = np.where(rng.random((n, m)) < 0.5, -1, 1_000)
    snaps.snap_ts[:] = rng.choice([-1, 9_000, 10_000], n)
    clean_ts = np.where(rng.random((n, m)) < 0.5, -1, rng.integers(0, 10**13, (n, m)))
    clean = np.where(clean_ts >= 0, rng.normal(50, 30, (n, m)), np.nan)
    off_active = rng.random((n, m)) < 0.2
    scores = {name: np.where(rng.random(n) < 0.3, np.nan, rng.random(n) * 10)
              for name in ("news2", "risk") if data.draw(st.booleans(), label=name)}
    rows = rng.permutation(n)[:data.draw(st.integers(1, n), label="touched")]
    t = np.full(len(rows), 14_000 + data.draw(st.integers(0, 2_000), label="t"))
    changed = rng.random(len(rows)) < 0.3
    ids = [f"p-{i}" for i in range(n)]
    due = (t - snaps.snap_ts[rows] >= SNAPSHOT_EVERY_MS) | changed
    want = [one_model_per_patient(snaps, r, ts, ids, clean, clean_ts, off_active, scores)
            for r, ts in zip(rows[due], t[due])]
    got = snaps.emit(rows, t, changed, ids, clean, clean_ts, off_active, scores)
    assert [s.json for s in got] == want
    assert [s.patient for s in got] == [ids[r] for r in rows[due]]
    assert (snaps.snap_ts[rows[due]] == t[due]).all()
