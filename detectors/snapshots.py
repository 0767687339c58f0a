"""What the nurse page shows: per-patient vitals snapshots with 5-minute sparklines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson

from wardwatch.metrics_catalog import METRICS
from wardwatch.models import VitalsSnapshot

from .protocol import Round, RowState

M = len(METRICS)
METRIC_NAMES = [m.value for m in METRICS]
SNAPSHOT_EVERY_MS = 5_000
SPARK_LEN, SPARK_EVERY_MS = 30, 10_000


@dataclass(slots=True)
class Snapshot:
    """One patient's snapshot as it goes on the vitals topic: the key and the JSON of a
    :class:`wardwatch.models.VitalsSnapshot` (built from the engine's columns, never through the model)."""

    patient: str
    json: bytes

    def model(self) -> VitalsSnapshot:
        return VitalsSnapshot.model_validate_json(self.json)

    def model_dump_json(self) -> str:
        """The same text as ``VitalsSnapshot.model_dump_json()`` (for callers that took the model)."""
        return self.json.decode()


class Snapshots(RowState):
    """Keeps a sparkline (one clean value each 10 s, the last 30) per patient and metric, and emits a
    :class:`Snapshot` of a patient at most every 5 s of reading time, or at once when one of its
    alarms changed. Display only: nothing here raises an alarm."""

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

    def emit(self, rows: np.ndarray, t: np.ndarray, changed: np.ndarray, ids: list[str], clean: np.ndarray,
             clean_ts: np.ndarray, off_active: np.ndarray, scores: dict[str, np.ndarray]) -> list[Snapshot]:
        """Snapshots of the ``rows`` that are due (``changed``: a bool per row, an alarm of it changed).
        The columns of the due rows are turned into plain lists once; each snapshot is then one dict
        and one ``orjson.dumps``, with the fields and order of :class:`VitalsSnapshot`."""
        due = (t - self.snap_ts[rows] >= SNAPSHOT_EVERY_MS) | changed
        r = rows[due]
        if not len(r):
            return []
        t_due = t[due]
        self.snap_ts[r] = t_due
        none = [None] * len(r)
        news = scores["news2"][r].tolist() if "news2" in scores else none
        risk = scores["risk"][r].tolist() if "risk" in scores else none
        # Only the metrics some due patient has (a watch sends three of nine) are turned into lists.
        has, has_spark = clean_ts[r] >= 0, self.spark_ts[r] >= 0
        c = np.flatnonzero(has.any(axis=0) | has_spark.any(axis=0) | off_active[r].any(axis=0))
        names = [METRIC_NAMES[j] for j in c]
        spark = self.spark[r][:, c]
        gap = np.isnan(spark)
        if (gap[..., 1:] <= gap[..., :-1]).all():  # as always in the hot path: NaN only before the first value
            n_spark = (SPARK_LEN - gap.sum(axis=-1)).tolist()
            trends = [[sp[SPARK_LEN - k:] for sp, k in zip(row, ks)] for row, ks in zip(spark.tolist(), n_spark)]
        else:
            trends = [[[x for x in sp if x == x] for sp in row] for row in spark.tolist()]
        out = []
        for row, ts, vals, vts, h, off, trend, hs, n2, rk in zip(
                r.tolist(), t_due.tolist(), clean[r][:, c].tolist(), clean_ts[r][:, c].tolist(), has[:, c].tolist(),
                off_active[r][:, c].tolist(), trends, has_spark[:, c].tolist(), news, risk):
            doc = {"patient": ids[row], "ts": ts,
                   "values": {name: v for name, v, ok in zip(names, vals, h) if ok},
                   "value_ts": {name: int(x) for name, x, ok in zip(names, vts, h) if ok},  # each value's age on the page
                   "news2": n2 if n2 == n2 else None, "news2_partial": True,  # NaN (not scored) is None
                   "risk": rk if rk == rk else None,
                   "stale_metrics": [name for name, o in zip(names, off) if o],
                   "trend": {name: sp for name, sp, ok in zip(names, trend, hs) if ok}}
            out.append(Snapshot(doc["patient"], orjson.dumps(doc)))
        return out
