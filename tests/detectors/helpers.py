"""Builders shared by the detector tests."""

from __future__ import annotations

import numpy as np

from wardwatch.columns import ReadingColumns
from wardwatch.metrics_catalog import METRIC_INDEX, Metric
from wardwatch.models import reading_id


def columns(patients, metrics, values, ts, quality=None, device="dev") -> ReadingColumns:
    n = len(values)
    patients = list(patients) if not isinstance(patients, str) else [patients] * n
    metrics = list(metrics) if not isinstance(metrics, str) else [metrics] * n
    q = np.full(n, np.nan, np.float32) if quality is None else np.asarray(quality, np.float32)
    return ReadingColumns(
        id=np.array([reading_id(f"{device}-{p}", m, int(t)) for p, m, t in zip(patients, metrics, ts)], object),
        patient=np.array(patients, object), device=np.array([f"{device}-{p}" for p in patients], object),
        metric=np.array([METRIC_INDEX[Metric(m)] for m in metrics], np.int8), value=np.asarray(values, float),
        ts=np.asarray(ts, np.int64), received=np.zeros(n, np.int64), quality=q)
