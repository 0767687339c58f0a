"""The consumer side's decoder: raw Kafka message values -> validated numpy columns + rejections.

This is the detector worker's hot path, so it avoids pydantic per message: orjson, plain type
checks, and numpy for the range and time checks across the whole batch. It never raises: every
input ends up either in the columns or in the rejections, so accepted + rejected = received.
"""

from __future__ import annotations

import numpy as np
import orjson

from wardwatch.columns import ReadingColumns
from wardwatch.metrics_catalog import CATALOG, METRIC_INDEX, METRICS, Metric
from wardwatch.models import RejectedInput

from .validate import Limits, rejected

_METRIC_BY_NAME = {m.value: METRIC_INDEX[m] for m in Metric}
_CANONICAL_UNIT = np.array([CATALOG[m].unit for m in METRICS], dtype=object)
_LOW = np.array([CATALOG[m].low for m in METRICS])
_HIGH = np.array([CATALOG[m].high for m in METRICS])
_NUM = (int, float)


def decode_readings(values: list[bytes], now_ms: int, registry_view=None, source: str = "kafka:readings",
                    limits: Limits | None = None) -> tuple[ReadingColumns, list[RejectedInput]]:
    limits = limits or Limits(max_future_ms=120_000, max_age_ms=7 * 86_400_000)
    rej: list[RejectedInput] = []
    n = len(values)
    ids, patients, devices = [], [], []
    metric = np.empty(n, np.int8)
    value = np.empty(n, np.float64)
    ts = np.empty(n, np.int64)
    received = np.zeros(n, np.int64)
    quality = np.full(n, np.nan, np.float32)
    src = []  # index into values of each kept row
    k = 0
    for i, raw in enumerate(values):
        try:
            d = orjson.loads(raw)
        except Exception:
            rej.append(rejected(source, "malformed_json", "not valid JSON", raw or b"", i))
            continue
        try:
            m = _METRIC_BY_NAME.get(d.get("metric")) if isinstance(d, dict) else None
        except TypeError:  # an unhashable "metric" (a list, an object)
            m = None
        if not isinstance(d, dict):
            rej.append(rejected(source, "schema", "a reading must be a JSON object", raw, i))
            continue
        if m is None:
            rej.append(rejected(source, "unknown_metric", "unknown metric", raw, i))
            continue
        v, t, pid, dev, rid = d.get("value"), d.get("ts"), d.get("patient"), d.get("device"), d.get("id")
        if (type(v) not in _NUM or type(t) is not int or type(pid) is not str or type(dev) is not str
                or type(rid) is not str or not pid or not dev or not rid or len(pid) > 64 or len(dev) > 64
                or len(rid) > 64):
            rej.append(rejected(source, "schema", "id, patient, device (strings), value (number), ts (integer ms) are required", raw, i))
            continue
        if d.get("unit") != _CANONICAL_UNIT[m]:
            rej.append(rejected(source, "unit", f"unit must be {_CANONICAL_UNIT[m]} on the readings topic", raw, i))
            continue
        q = d.get("quality")
        if q is not None and (type(q) not in _NUM or not 0 <= q <= 1):
            rej.append(rejected(source, "schema", "quality must be a number in 0..1", raw, i))
            continue
        if not -(2**62) < t < 2**62:
            rej.append(rejected(source, "schema", "ts out of range", raw, i))
            continue
        r = d.get("received")
        ids.append(rid)
        patients.append(pid)
        devices.append(dev)
        metric[k] = m
        value[k] = v
        ts[k] = t
        received[k] = r if type(r) is int and 0 <= r < 2**62 else 0
        if q is not None:
            quality[k] = q
        src.append(i)
        k += 1
    metric, value, ts, received, quality = metric[:k], value[:k], ts[:k], received[:k], quality[:k]
    src_idx = np.asarray(src, dtype=np.int64)
    # Whole-batch checks with numpy.
    bad_value = ~np.isfinite(value) | (value < _LOW[metric]) | (value > _HIGH[metric])
    bad_future = ts > now_ms + limits.max_future_ms
    bad_old = ts < now_ms - limits.max_age_ms
    ok = ~(bad_value | bad_future | bad_old)
    if registry_view is not None:
        for j in range(k):
            if ok[j] and not registry_view.is_admitted(patients[j]):
                ok[j] = False
                rej.append(rejected(source, "unknown_patient", "patient is not admitted", values[src[j]], src[j]))
    for j in np.flatnonzero(bad_value | bad_future | bad_old):
        reason, detail = (("impossible_value", "value outside the physiologically possible range") if bad_value[j]
                          else ("future_timestamp", "device time too far in the future") if bad_future[j]
                          else ("too_old", "device time older than the accepted window"))
        rej.append(rejected(source, reason, detail, values[src[j]], int(src_idx[j])))
    cols = ReadingColumns(np.array(ids, dtype=object), np.array(patients, dtype=object),
                          np.array(devices, dtype=object), metric, value, ts, received, quality)
    return cols.take(ok), rej
