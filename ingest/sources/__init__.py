"""Where replayed readings come from: real records (CinC 2019, MIMIC-II numerics) or a synthetic ward.

A record is a :class:`Track` per patient: sample times and a (samples x metrics) matrix, NaN where a
vital was not measured. The :class:`Replayer` plays tracks as a device gateway would, at 1 Hz of
wall time, with the record's clock running ``speed`` times faster: each value is held until the
next sample (sample-and-hold, as a monitor's numerics are) with a little measurement noise, and
stamped with the wall-clock time, so the stream looks live.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wardwatch.columns import ReadingColumns
from wardwatch.metrics_catalog import METRIC_INDEX, METRICS, Metric
from wardwatch.models import reading_id

M = len(METRICS)
NOISE = np.array([{Metric.heart_rate: 1.0, Metric.pulse_rate: 1.0, Metric.spo2: 0.3, Metric.resp_rate: 0.5,
                   Metric.temperature: 0.02, Metric.sbp: 1.0, Metric.dbp: 1.0, Metric.map: 1.0,
                   Metric.etco2: 0.5}[m] for m in METRICS])
CLIP_HIGH = np.array([100.0 if m is Metric.spo2 else np.inf for m in METRICS])


@dataclass
class Track:
    patient: str
    device: str
    t_s: np.ndarray  # sample times, seconds from the record's start
    values: np.ndarray  # (samples, M), NaN = not measured
    speed: float | None = None  # this record's replay speed, when it differs from the replayer's

    @property
    def duration_s(self) -> float:
        return float(self.t_s[-1]) if len(self.t_s) else 0.0


class Replayer:
    def __init__(self, tracks: list[Track], speed: float = 1.0, seed: int = 0, loop: bool = True) -> None:
        self.tracks, self.speed, self.loop = tracks, speed, loop
        self.rng = np.random.default_rng(seed)
        self.patients = np.array([t.patient for t in tracks], dtype=object)
        self.devices = np.array([t.device for t in tracks], dtype=object)

    def at(self, elapsed_s: float, now_ms: int) -> ReadingColumns:
        """Every patient's current values (one reading per measured vital) at ``elapsed_s`` of wall time."""
        rows = []
        for i, tr in enumerate(self.tracks):
            if not len(tr.t_s):
                continue
            data_t = elapsed_s * (tr.speed or self.speed)
            if self.loop and tr.duration_s > 0:
                data_t %= tr.duration_s + 1
            k = int(np.searchsorted(tr.t_s, data_t, side="right")) - 1
            if k < 0:
                continue
            v = tr.values[k]
            for c in np.flatnonzero(~np.isnan(v)):
                rows.append((i, c, v[c]))
        if not rows:
            return ReadingColumns.empty()
        idx = np.array([r[0] for r in rows])
        col = np.array([r[1] for r in rows])
        val = np.array([r[2] for r in rows], dtype=float)
        # Measurement noise, but a zero (sensor off) stays a zero.
        val = np.where(val == 0, 0.0, np.minimum(val + self.rng.normal(0, 1, len(val)) * NOISE[col], CLIP_HIGH[col]))
        val = np.round(val, 1)
        patients, devices = self.patients[idx], self.devices[idx]
        names = [METRICS[c].value for c in col]
        return ReadingColumns(
            id=np.array([reading_id(d, n, now_ms) for d, n in zip(devices, names)], dtype=object),
            patient=patients, device=devices, metric=col.astype(np.int8), value=val,
            ts=np.full(len(val), now_ms, np.int64), received=np.full(len(val), now_ms, np.int64),
            quality=np.full(len(val), np.nan, np.float32))


def column(metric: Metric) -> int:
    return METRIC_INDEX[metric]
