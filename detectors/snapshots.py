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
        """Snapshots of the ``rows`` that are due (``changed``: a bool per row, an alarm of it changed),
        with the fields and order of :class:`VitalsSnapshot`.

        Built from columns: only the values that go in are turned into Python objects (one flat list
        per field, taken row by row with ``zip`` on a shared iterator), the metric names of each
        pattern of present / off / sparkline metrics are looked up once, and all the batch's
        snapshots are one ``orjson.dumps``, cut between the objects."""
        due = (t - self.snap_ts[rows] >= SNAPSHOT_EVERY_MS) | changed
        r = rows[due]
        if not len(r):
            return []
        t_due = t[due]
        self.snap_ts[r] = t_due
        n = len(r)
        none = [None] * n
        # NaN (not scored) is None
        news = [None if x != x else x for x in scores["news2"][r].tolist()] if "news2" in scores else none
        risk = [None if x != x else x for x in scores["risk"][r].tolist()] if "risk" in scores else none
        has, has_spark, off = clean_ts[r] >= 0, self.spark_ts[r] >= 0, off_active[r]
        # Each row's pattern of (present, sparkline, off) metrics as one integer: its names once per pattern.
        bits = np.left_shift(1, np.arange(M), dtype=np.int64)
        code = (has @ bits) | ((has_spark @ bits) << M) | ((off @ bits) << (2 * M))
        kinds, which = np.unique(code, return_inverse=True)
        patterns = [([METRIC_NAMES[j] for j in range(M) if k >> j & 1], [METRIC_NAMES[j] for j in range(M) if k >> (M + j) & 1],
                     [METRIC_NAMES[j] for j in range(M) if k >> (2 * M + j) & 1]) for k in kinds.tolist()]
        vals = iter(clean[r][has].tolist())  # row-major: row by row, metrics in catalog order
        vts = iter(clean_ts[r][has].tolist())
        # A sparkline is its values that are not NaN, oldest first (NaN only before the first value in
        # the hot path; any NaN is left out).
        spark = self.spark[r]
        keep = ~np.isnan(spark) & has_spark[..., None]
        ends = np.cumsum(keep.sum(axis=-1)[has_spark]).tolist()
        flat = spark[keep].tolist()
        trends = iter([flat[a:b] for a, b in zip([0] + ends[:-1], ends)])
        docs = []
        for row, ts, (names, spark_names, stale), n2, rk in zip(r.tolist(), t_due.tolist(),
                                                               [patterns[i] for i in which.tolist()], news, risk):
            docs.append({"patient": ids[row], "ts": ts, "values": dict(zip(names, vals)),
                         "value_ts": dict(zip(names, vts)),  # each value's age on the page
                         "news2": n2, "news2_partial": True, "risk": rk, "stale_metrics": stale,
                         "trend": dict(zip(spark_names, trends))})
        # Between two snapshots only: inside a string orjson escapes every '"', and writes no raw newline.
        parts = orjson.dumps(docs)[1:-1].replace(b'},{"patient":', b'}\n{"patient":').split(b"\n")
        return [Snapshot(d["patient"], j) for d, j in zip(docs, parts)]
