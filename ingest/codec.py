"""The consumer side's decoder: raw Kafka message values -> validated numpy columns + rejections.

This is the detector worker's hot path, so it avoids pydantic per message: orjson, plain type
checks, and numpy for the range and time checks across the whole batch. It never raises: every
input ends up either in the columns or in the rejections, so accepted + rejected = received.
"""

from __future__ import annotations

import numpy as np
import orjson

from wardwatch.columns import ReadingColumns
from wardwatch.identifiers import REASON as BAD_IDENTIFIER, is_identifier
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
    rows = []  # (index, id, patient, device, metric, value, ts, received, quality) of well-formed messages
    append, loads, by_name, units, ok_id = rows.append, orjson.loads, _METRIC_BY_NAME, _CANONICAL_UNIT, is_identifier
    for i, raw in enumerate(values):
        # The common case in one try: every field present and of the right type, nothing per field.
        try:
            d = loads(raw)
            m = by_name[d["metric"]]
            rid, pid, dev, v, t = d["id"], d["patient"], d["device"], d["value"], d["ts"]
            q, r = d.get("quality"), d.get("received")
            if (type(t) is int and (type(v) is float or type(v) is int) and d["unit"] == units[m] and q is None
                    and ok_id(rid) and ok_id(pid) and ok_id(dev) and -(2**62) < t < 2**62):
                append((i, rid, pid, dev, m, v, t, r if type(r) is int and 0 <= r < 2**62 else 0, np.nan))
                continue
        except Exception:
            pass
        row = _careful(raw, i, source, rej)
        if row is not None:
            append(row)
    k = len(rows)
    if k:
        src, ids, patients, devices, metric, value, ts, received, quality = (list(c) for c in zip(*rows))
    else:
        src, ids, patients, devices, metric, value, ts, received, quality = ([] for _ in range(9))
    metric = np.array(metric, dtype=np.int8)
    value = np.array(value, dtype=np.float64)
    ts = np.array(ts, dtype=np.int64)
    received = np.array(received, dtype=np.int64)
    quality = np.array(quality, dtype=np.float32)
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


def _careful(raw: bytes, i: int, source: str, rej: list[RejectedInput]) -> tuple | None:
    """One message that failed the quick checks: find what is wrong, or accept it (e.g. with a quality)."""
    try:
        d = orjson.loads(raw)
    except Exception:
        rej.append(rejected(source, "malformed_json", "not valid JSON", raw or b"", i))
        return None
    if not isinstance(d, dict):
        rej.append(rejected(source, "schema", "a reading must be a JSON object", raw, i))
        return None
    try:
        m = _METRIC_BY_NAME.get(d.get("metric"))
    except TypeError:  # an unhashable "metric" (a list, an object)
        m = None
    if m is None:
        rej.append(rejected(source, "unknown_metric", "unknown metric", raw, i))
        return None
    v, t, pid, dev, rid = d.get("value"), d.get("ts"), d.get("patient"), d.get("device"), d.get("id")
    if type(v) not in _NUM or type(t) is not int or type(pid) is not str or type(dev) is not str or type(rid) is not str:
        rej.append(rejected(source, "schema", "id, patient, device (strings), value (number), ts (integer ms) are required", raw, i))
        return None
    if not (is_identifier(pid) and is_identifier(dev) and is_identifier(rid)):
        rej.append(rejected(source, BAD_IDENTIFIER, "id, patient or device is not a valid identifier", raw, i))
        return None
    if d.get("unit") != _CANONICAL_UNIT[m]:
        rej.append(rejected(source, "unit", f"unit must be {_CANONICAL_UNIT[m]} on the readings topic", raw, i))
        return None
    q = d.get("quality")
    if q is not None and (type(q) not in _NUM or not 0 <= q <= 1):
        rej.append(rejected(source, "schema", "quality must be a number in 0..1", raw, i))
        return None
    if not -(2**62) < t < 2**62:
        rej.append(rejected(source, "schema", "ts out of range", raw, i))
        return None
    r = d.get("received")
    return (i, rid, pid, dev, m, v, t, r if type(r) is int and 0 <= r < 2**62 else 0, np.nan if q is None else q)
