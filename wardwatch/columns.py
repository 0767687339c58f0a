"""A batch of readings as numpy columns: the hot path's unit of work (never one message at a time)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterable

import numpy as np

from .metrics_catalog import METRIC_INDEX, METRICS
from .models import Reading


@dataclass
class ReadingColumns:
    id: np.ndarray  # object (str)
    patient: np.ndarray  # object (str)
    device: np.ndarray  # object (str)
    metric: np.ndarray  # int8: index into metrics_catalog.METRICS
    value: np.ndarray  # float64, canonical unit
    ts: np.ndarray  # int64 epoch ms, device time
    received: np.ndarray  # int64 epoch ms (0 where unknown)
    quality: np.ndarray  # float32 0..1, NaN where the device gives none

    def __len__(self) -> int:
        return len(self.value)

    def take(self, index: np.ndarray) -> "ReadingColumns":
        """Rows by boolean mask or integer index."""
        return ReadingColumns(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @classmethod
    def empty(cls) -> "ReadingColumns":
        return cls(np.empty(0, object), np.empty(0, object), np.empty(0, object), np.empty(0, np.int8),
                   np.empty(0, np.float64), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))

    @classmethod
    def concat(cls, parts: Iterable["ReadingColumns"]) -> "ReadingColumns":
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    @classmethod
    def from_readings(cls, readings: Iterable[Reading]) -> "ReadingColumns":
        rs = list(readings)
        return cls(
            id=np.array([r.id for r in rs], dtype=object),
            patient=np.array([r.patient for r in rs], dtype=object),
            device=np.array([r.device for r in rs], dtype=object),
            metric=np.array([METRIC_INDEX[r.metric] for r in rs], dtype=np.int8),
            value=np.array([r.value for r in rs], dtype=np.float64),
            ts=np.array([r.ts for r in rs], dtype=np.int64),
            received=np.array([r.received or 0 for r in rs], dtype=np.int64),
            quality=np.array([np.nan if r.quality is None else r.quality for r in rs], dtype=np.float32),
        )

    def metric_names(self) -> np.ndarray:
        return np.array([m.value for m in METRICS], dtype=object)[self.metric]
