"""What the nurse page shows: per-patient vitals snapshots with 5-minute sparklines."""

from __future__ import annotations

import numpy as np

from wardwatch.metrics_catalog import METRICS
from wardwatch.models import VitalsSnapshot

from .protocol import Round, RowState

M = len(METRICS)
METRIC_NAMES = [m.value for m in METRICS]
SNAPSHOT_EVERY_MS = 5_000
SPARK_LEN, SPARK_EVERY_MS = 30, 10_000


class Snapshots(RowState):
    """Keeps a sparkline (one clean value each 10 s, the last 30) per patient and metric, and emits a
    :class:`wardwatch.models.VitalsSnapshot` of a patient at most every 5 s of reading time, or at
    once when one of its alarms changed. Display only: nothing here raises an alarm."""

    ARRAYS = {"snap_ts": ((), np.int64, -1), "spark": ((M, SPARK_LEN), np.float64, np.nan),
              "spark_ts": ((M,), np.int64, -1)}

    def update(self, rnd: Round) -> None:
        """The round's valid values join the sparklines (one per 10 s)."""
        v = rnd.valid
        rr, cc, val, t = rnd.rows[v], rnd.metrics[v], rnd.values[v], rnd.ts[v]
        due = t - self.spark_ts[rr, cc] >= SPARK_EVERY_MS
        rr, cc, val, t = rr[due], cc[due], val[due], t[due]
        self.spark[rr, cc, :-1] = self.spark[rr, cc, 1:]
        self.spark[rr, cc, -1] = val
        self.spark_ts[rr, cc] = t

    def emit(self, rows: np.ndarray, t: np.ndarray, changed: set[str], ids: list[str], clean: np.ndarray,
             clean_ts: np.ndarray, stale, scores: dict[str, np.ndarray]) -> list[VitalsSnapshot]:
        due = (t - self.snap_ts[rows] >= SNAPSHOT_EVERY_MS) | np.array([ids[r] in changed for r in rows])
        news = scores.get("news2")
        risk = scores.get("risk")
        out = []
        for i in np.flatnonzero(due):
            r = rows[i]
            vals = {METRIC_NAMES[c]: float(clean[r, c]) for c in range(M) if clean_ts[r, c] >= 0}
            trend = {METRIC_NAMES[c]: [float(x) for x in self.spark[r, c] if x == x] for c in range(M)
                     if self.spark_ts[r, c] >= 0}
            out.append(VitalsSnapshot(
                patient=ids[r], ts=int(t[i]), values=vals,
                value_ts={METRIC_NAMES[c]: int(clean_ts[r, c]) for c in range(M) if clean_ts[r, c] >= 0},
                news2=float(news[r]) if news is not None and news[r] == news[r] else None,
                risk=float(risk[r]) if risk is not None and risk[r] == risk[r] else None,
                stale_metrics=stale(r), trend=trend))
        self.snap_ts[rows[due]] = t[due]
        return out
