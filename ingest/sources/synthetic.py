"""A synthetic ward for load: thousands of patients at 1 Hz with realistic trouble.

Each patient has a baseline HR, SpO2 and RR (and BP and temperature every 15 minutes), slow
AR(1) wander, measurement noise, motion artefacts (spikes), dropouts (a missing second), sensor-off
episodes (zeros) and, for a share of patients, a deterioration (HR and RR rise, SpO2 falls) that
should raise alarms. Vectorised: a tick for 10,000 patients is a few numpy operations.
"""

from __future__ import annotations

import numpy as np

from wardwatch.columns import ReadingColumns
from wardwatch.metrics_catalog import METRIC_INDEX, Metric

VITALS = [Metric.heart_rate, Metric.spo2, Metric.resp_rate]
COLS = np.array([METRIC_INDEX[m] for m in VITALS], np.int8)
NAMES = [m.value for m in VITALS]


class SyntheticWard:
    def __init__(self, n_patients: int, seed: int = 1, deteriorating: float = 0.03, prefix: str = "syn") -> None:
        rng = self.rng = np.random.default_rng(seed)
        self.n = n_patients
        self.patients = np.array([f"{prefix}-{i:05d}" for i in range(n_patients)], dtype=object)
        self.devices = np.array([f"{prefix}-watch-{i:05d}" for i in range(n_patients)], dtype=object)
        self.base = np.stack([rng.normal(78, 10, n_patients).clip(50, 110), rng.normal(96.5, 1.2, n_patients).clip(92, 99.5),
                              rng.normal(16, 2, n_patients).clip(10, 22)], axis=1)
        self.wander = np.zeros((n_patients, 3))
        self.sick = rng.random(n_patients) < deteriorating
        self.sick_at = rng.uniform(30, 600, n_patients)  # seconds after start
        self.sensor_off_until = np.zeros(n_patients)
        self.t = 0

    def tick(self, now_ms: int) -> ReadingColumns:
        """One second of readings for every patient."""
        rng, n = self.rng, self.n
        self.wander = 0.98 * self.wander + rng.normal(0, [0.6, 0.08, 0.15], (n, 3))
        v = self.base + self.wander + rng.normal(0, [1.0, 0.3, 0.5], (n, 3))
        drift = np.clip((self.t - self.sick_at) / 300.0, 0, 1)[:, None] * np.array([35.0, -12.0, 12.0])
        v = v + np.where(self.sick[:, None], drift, 0.0)
        spikes = rng.random((n, 3)) < 0.003
        v = np.where(spikes, v * rng.uniform(0.4, 1.8, (n, 3)), v)
        start_off = rng.random(n) < 0.0002
        self.sensor_off_until = np.where(start_off, self.t + rng.integers(5, 60, n), self.sensor_off_until)
        v[:, 1] = np.where(self.sensor_off_until > self.t, 0.0, np.minimum(v[:, 1], 100.0))
        v = np.round(np.clip(v, 0, None), 1)
        keep = rng.random((n, 3)) >= 0.01  # dropouts
        pi, mi = np.nonzero(keep)
        self.t += 1
        from wardwatch.models import reading_id

        devices = self.devices[pi]
        return ReadingColumns(
            id=np.array([reading_id(d, NAMES[m], now_ms) for d, m in zip(devices.tolist(), mi.tolist())], dtype=object),
            patient=self.patients[pi], device=devices, metric=COLS[mi], value=v[pi, mi],
            ts=np.full(len(pi), now_ms, np.int64), received=np.full(len(pi), now_ms, np.int64),
            quality=np.full(len(pi), np.nan, np.float32))
