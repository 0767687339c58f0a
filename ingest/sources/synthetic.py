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
    """``deteriorating`` is the share of patients who deteriorate, each starting at a time drawn from
    ``sick_window`` (seconds after start), ramping to ``drift`` (HR, SpO2, RR) over ``ramp_s``
    seconds (0: at once), and recovering after ``episode_s`` seconds (None: never). ``artefacts``
    False leaves out the spikes, sensor-off episodes and dropouts (clean load)."""

    def __init__(self, n_patients: int, seed: int = 1, deteriorating: float = 0.03, prefix: str = "syn", *,
                 sick_window: tuple[float, float] = (30, 600), ramp_s: float = 300.0,
                 drift: tuple[float, float, float] = (35.0, -12.0, 12.0), episode_s: float | None = None,
                 artefacts: bool = True) -> None:
        rng = self.rng = np.random.default_rng(seed)
        self.n = n_patients
        self.patients = np.array([f"{prefix}-{i:05d}" for i in range(n_patients)], dtype=object)
        self.devices = np.array([f"{prefix}-watch-{i:05d}" for i in range(n_patients)], dtype=object)
        self.base = np.stack([rng.normal(78, 10, n_patients).clip(50, 110), rng.normal(96.5, 1.2, n_patients).clip(92, 99.5),
                              rng.normal(16, 2, n_patients).clip(10, 22)], axis=1)
        self.wander = np.zeros((n_patients, 3))
        self.sick = rng.random(n_patients) < deteriorating
        self.sick_at = rng.uniform(*sick_window, n_patients)  # seconds after start
        self.ramp_s, self.drift, self.episode_s, self.artefacts = ramp_s, np.array(drift), episode_s, artefacts
        self.sensor_off_until = np.zeros(n_patients)
        self.t = 0

    def vitals(self, t_s: float, idx: np.ndarray | None = None) -> np.ndarray:
        """HR, SpO2 and RR (rows: patients ``idx``, default all) at ``t_s`` seconds after start, each
        patient's wander advanced by one second: call once a second for each patient."""
        rng = self.rng
        sel = slice(None) if idx is None else idx
        n = self.n if idx is None else len(idx)
        self.wander[sel] = 0.98 * self.wander[sel] + rng.normal(0, [0.6, 0.08, 0.15], (n, 3))
        v = self.base[sel] + self.wander[sel] + rng.normal(0, [1.0, 0.3, 0.5], (n, 3))
        since = t_s - self.sick_at[sel]
        ramp = np.clip(since / self.ramp_s, 0, 1) if self.ramp_s else (since >= 0).astype(float)
        if self.episode_s is not None:
            ramp = np.where(since < self.episode_s, ramp, 0.0)
        v = v + np.where(self.sick[sel][:, None], ramp[:, None] * self.drift, 0.0)
        if self.artefacts:
            spikes = rng.random((n, 3)) < 0.003
            v = np.where(spikes, v * rng.uniform(0.4, 1.8, (n, 3)), v)
            start_off = rng.random(n) < 0.0002
            off = np.where(start_off, t_s + rng.integers(5, 60, n), self.sensor_off_until[sel])
            self.sensor_off_until[sel] = off
            v[:, 1] = np.where(off > t_s, 0.0, np.minimum(v[:, 1], 100.0))
        else:
            v[:, 1] = np.minimum(v[:, 1], 100.0)
        return np.round(np.clip(v, 0, None), 1)

    def tick(self, now_ms: int) -> ReadingColumns:
        """One second of readings for every patient."""
        rng, n = self.rng, self.n
        v = self.vitals(self.t)
        keep = rng.random((n, 3)) >= 0.01 if self.artefacts else np.ones((n, 3), bool)  # dropouts
        pi, mi = np.nonzero(keep)
        self.t += 1
        from wardwatch.models import reading_id

        devices = self.devices[pi]
        return ReadingColumns(
            id=np.array([reading_id(d, NAMES[m], now_ms) for d, m in zip(devices.tolist(), mi.tolist())], dtype=object),
            patient=self.patients[pi], device=devices, metric=COLS[mi], value=v[pi, mi],
            ts=np.full(len(pi), now_ms, np.int64), received=np.full(len(pi), now_ms, np.int64),
            quality=np.full(len(pi), np.nan, np.float32))
