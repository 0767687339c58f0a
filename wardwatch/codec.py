"""The one reading codec: the rules a reading must meet, checked the same way on every path.

* ``RULES``: one table (metrics, canonical units, possible ranges as numpy arrays, built once from
  ``metrics_catalog.CATALOG``), with the identifier rule of ``wardwatch.identifiers`` and the time
  window ``Limits``.
* ``reading_from_mapping``: one mapping (HTTP JSON, FHIR, HL7 v2) -> a ``Reading`` or ``Invalid``.
* ``check_columns``: the same rules on a whole batch of ``ReadingColumns`` (the gateway client,
  and ``decode_readings`` on the consumer side, the detector worker's hot path).
* ``encode_readings``: ``ReadingColumns`` -> readings-topic JSON (orjson), which ``decode_readings``
  reads back.

A reading breaking several rules is rejected for the first of them, in the same order on every path:
the shape (``schema``, ``unknown_metric``, ``unit``, a quality outside 0..1), then ``bad_identifier``,
``impossible_value``, ``future_timestamp``, ``too_old``, and last the registry (``unknown_patient``...).
A rejection has a stable machine-readable reason code and a sentence for people; nothing is dropped
silently: the caller sends every rejection to the dead-letter topic.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import orjson

from .columns import ReadingColumns
from .identifiers import REASON as BAD_IDENTIFIER, all_identifiers, is_identifier
from .metrics_catalog import CATALOG, METRIC_INDEX, METRICS, Metric, to_canonical
from .models import Reading, RejectedInput, Retraction
from .readings_template import match_template
from .settings import Settings

MAX_PAYLOAD_KEEP = 64 << 10  # bytes of an original payload kept in the dead-letter record

REASONS = {
    "malformed_json": "the body is not valid JSON",
    "schema": "a field is missing, has the wrong type, or is not allowed",
    "unknown_metric": "the metric or its code is not one WardWatch knows",
    "unit": "the unit is unknown or cannot be converted to the metric's unit",
    "impossible_value": "the value is outside what is physiologically possible",
    "future_timestamp": "the device time is too far in the future",
    "too_old": "the device time is older than the accepted window",
    "unknown_patient": "the patient is not admitted",
    "unknown_device": "the device is not assigned to a patient",
    "device_patient_mismatch": "the device is assigned to another patient",
    "duplicate_in_batch": "the same reading id appears earlier in the batch",
    "other_source": "the device reported the same vital sign at the same time from a preferred source",
    "too_large": "the request, batch, HL7 message or FHIR Bundle is larger than allowed",
    "body_timeout": "the request body did not arrive in time",
    "unsupported": "the message type or format is not supported",
    BAD_IDENTIFIER: "a patient, device or reading id breaks the identifier rule (wardwatch.identifiers)",
}

_NUM = (int, float)
TS_BOUND = 2**62  # a device or received time must lie strictly inside +-TS_BOUND (fits int64 with room)


@dataclass(frozen=True)
class Rules:
    """The table every check reads; index ``i`` is ``metrics_catalog.METRICS[i]`` (the column's int8)."""

    metrics: tuple[Metric, ...]
    names: tuple[str, ...]
    index: dict[str, int]  # metric name -> index
    units: tuple[str, ...]  # canonical UCUM unit
    low: np.ndarray  # float64: the physiologically possible range, inclusive
    high: np.ndarray

    @classmethod
    def from_catalog(cls) -> "Rules":
        return cls(METRICS, tuple(m.value for m in METRICS), {m.value: METRIC_INDEX[m] for m in METRICS},
                   tuple(CATALOG[m].unit for m in METRICS), np.array([CATALOG[m].low for m in METRICS], dtype=np.float64),
                   np.array([CATALOG[m].high for m in METRICS], dtype=np.float64))


RULES = Rules.from_catalog()


@dataclass(frozen=True)
class Limits:
    max_future_ms: int
    max_age_ms: int

    @classmethod
    def from_settings(cls, s: Settings) -> "Limits":
        return cls(int(s.max_future_s * 1000), int(s.max_age_s * 1000))


DEFAULT_LIMITS = Limits(max_future_ms=120_000, max_age_ms=7 * 86_400_000)


class Invalid(Exception):
    """A rejection; ``payload`` is the part of the input it is about (an HL7 message or segment, a
    FHIR resource) where that is narrower than the item the caller holds."""

    def __init__(self, reason: str, detail: str, payload: Any = None) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.payload = reason, detail, payload


def as_bytes(payload: Any) -> bytes | None:
    """An input as the bytes it came in as, or as JSON; None if it cannot be serialised (too deep)."""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogatepass")
    try:
        return orjson.dumps(payload, default=str)
    except orjson.JSONEncodeError:
        return None


def rejected(source: str, reason: str, detail: str, payload: Any, index: int | None = None,
             whole: bytes = b"") -> RejectedInput:
    """A dead-letter record; ``whole`` (the request body) stands in for a payload that cannot be serialised."""
    data = as_bytes(payload)
    data = whole if data is None else data
    return RejectedInput(source=source, reason=reason, detail=detail[:500],
                         payload=data[:MAX_PAYLOAD_KEEP].decode("utf-8", "replace"), payload_bytes=len(data),
                         payload_sha256=hashlib.sha256(data).hexdigest(), index=index)


# --- one reading -----------------------------------------------------------------------------------

def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_quality(q: object) -> None:
    if q is not None and not (_is_number(q) and 0 <= q <= 1):
        raise Invalid("schema", "quality must be a number in 0..1")


def check_identifiers(ids: Mapping[str, Any]) -> None:
    for name, v in ids.items():
        if v is not None and not is_identifier(v):
            raise Invalid(BAD_IDENTIFIER, f"{name} is not a valid identifier")


SPO2 = METRIC_INDEX[Metric.spo2]


def check_value(metric: Metric, value: float) -> None:
    i = METRIC_INDEX[metric]
    low, high = RULES.low[i], RULES.high[i]
    if not (low <= value <= high):
        raise Invalid("impossible_value", f"{metric.value} {value:g} {RULES.units[i]} is outside {low:g}..{high:g}")
    if i == SPO2 and 0 < value <= 1:
        # A saturation written as a fraction with the unit "%": 0.97 % would raise a false desaturation
        # alarm and score NEWS2 3. (0 stays: monitors send it for a probe off.)
        raise Invalid("impossible_value", f"spo2 {value:g} % looks like a fraction: send it in % or with unit 1")


def check_time(ts: int, now_ms: int, limits: Limits) -> None:
    if ts > now_ms + limits.max_future_ms:
        raise Invalid("future_timestamp", f"device time is {(ts - now_ms) / 1000:.0f}s in the future")
    if ts < now_ms - limits.max_age_ms:
        raise Invalid("too_old", f"device time is {(now_ms - ts) / 3600_000:.1f}h old")


def resolve_patient(device: str, patient: str | None, registry) -> str:
    """The patient a reading belongs to, from the device assignment when the registry knows it."""
    if registry is None:
        if not patient:
            raise Invalid("schema", "patient is required when no device registry is configured")
        return patient
    assigned = registry.patient_for_device(device)
    if patient:
        if not registry.is_admitted(patient):
            raise Invalid("unknown_patient", "patient is not admitted")
        if assigned is not None and assigned != patient:
            raise Invalid("device_patient_mismatch", "device is assigned to another patient")
        return patient
    if assigned is None:
        raise Invalid("unknown_device", "device is not assigned to a patient")
    return assigned


def schema_error(exc: Exception, what: str) -> Invalid:
    """A model's validation error (pydantic) as the ``schema`` reason, naming the first field it
    found wrong (``what`` when it names none)."""
    first = getattr(exc, "errors", lambda: [{}])()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or what
    return Invalid("schema", f"{where}: {first.get('msg', 'invalid')}")


def reading_from_mapping(d: Mapping[str, Any], now_ms: int, limits: Limits, registry=None) -> Reading:
    """Validate one reading object (HTTP JSON, or what FHIR/HL7 map to); converts units to the metric's
    canonical unit. The rules and their order are those of ``check_columns``."""
    if not isinstance(d, Mapping):
        raise Invalid("schema", "a reading must be a JSON object")
    metric_raw = d.get("metric")
    try:
        metric = Metric(metric_raw)
    except (ValueError, TypeError):
        raise Invalid("unknown_metric", f"unknown metric {str(metric_raw)[:40]!r}") from None
    value, unit, ts, device, patient = d.get("value"), d.get("unit"), d.get("ts"), d.get("device"), d.get("patient")
    if not _is_number(value):
        raise Invalid("schema", "value must be a number")
    if not isinstance(unit, str) or not unit:
        raise Invalid("schema", "unit must be a non-empty string")
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise Invalid("schema", "ts must be an integer (epoch milliseconds)")
    if not isinstance(device, str):
        raise Invalid("schema", "device must be a string")
    if patient is not None and not isinstance(patient, str):
        raise Invalid("schema", "patient must be a string")
    try:
        canonical = to_canonical(metric, float(value), unit)
    except ValueError as exc:
        raise Invalid("unit", str(exc)) from None
    check_quality(d.get("quality"))
    check_identifiers({"device": device, "patient": patient, "id": d.get("id")})
    check_value(metric, canonical)
    check_time(ts, now_ms, limits)
    patient = resolve_patient(device, patient, registry)
    fields = {k: d[k] for k in ("id", "received", "quality") if d.get(k) is not None}
    try:
        return Reading(patient=patient, device=device, metric=metric, value=canonical,
                       unit=CATALOG[metric].unit, ts=ts, **fields)
    except Exception as exc:  # pydantic ValidationError: received, extra fields
        raise schema_error(exc, "reading") from None


@dataclass(frozen=True)
class Retracted:
    """A parser's item for a result its sender withdrew (HL7 OBX-11 D or W, FHIR entered-in-error):
    ``mapping`` has patient, device, metric, ts and reason, validated by :func:`retraction_from_mapping`."""

    mapping: Mapping[str, Any]


def retraction_from_mapping(d: Mapping[str, Any], now_ms: int, limits: Limits, registry=None) -> Retraction:
    """Validate a withdrawal as the reading it names would be: its identifiers, its device time and
    its patient (given, or the device's assignment), so it reaches the partition that reading did."""
    device, patient, ts = d.get("device"), d.get("patient"), d.get("ts")
    if not isinstance(device, str):
        raise Invalid("schema", "device must be a string")
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise Invalid("schema", "ts must be an integer (epoch milliseconds)")
    reason = d.get("reason") or "withdrawn by the sender"
    if not isinstance(reason, str) or any(c < " " for c in reason):
        raise Invalid("schema", "reason must be one line of text")
    check_identifiers({"device": device, "patient": patient})
    check_time(ts, now_ms, limits)
    patient = resolve_patient(device, patient, registry)
    try:
        return Retraction(patient=patient, device=device, metric=d.get("metric"), ts=ts, reason=reason[:120],
                          received=now_ms)
    except Exception as exc:  # pydantic ValidationError
        raise schema_error(exc, "retraction") from None


# --- a batch as columns ----------------------------------------------------------------------------

COLUMN_DETAIL = {
    "schema": "quality must be a number in 0..1",
    BAD_IDENTIFIER: "id, patient or device is not a valid identifier",
    "impossible_value": "value outside the physiologically possible range",
    "future_timestamp": "device time too far in the future",
    "too_old": "device time older than the accepted window",
    "unknown_patient": "patient is not admitted",
}


def _mark_bad_ids(reasons: np.ndarray, ids: np.ndarray, unchecked: np.ndarray | None) -> None:
    idx = None if unchecked is None else np.flatnonzero(unchecked)
    values = ids.tolist() if idx is None else ids[idx].tolist()
    if all_identifiers(values):
        return
    bad = {v for v in set(values) if not is_identifier(v)}
    if bad:
        hit = np.array([v in bad for v in values], bool)
        reasons[hit if idx is None else idx[hit]] = BAD_IDENTIFIER


def check_columns(cols: ReadingColumns, now_ms: int, limits: Limits, registry=None,
                  ids_ok: np.ndarray | None = None) -> np.ndarray:
    """The reason each row is rejected for ("" where it passes): the rules of ``reading_from_mapping``
    on a whole batch. ``registry`` (``is_admitted``) may be None. ``ids_ok`` (optional, bool per row)
    marks rows whose id, patient and device are already known to follow the identifier rule (the
    template parse checked them on the bytes), so only the others are checked here. Later
    assignments win, so they run from the last rule to the first."""
    m = cols.metric.astype(np.intp)
    reasons = np.full(len(cols), "", dtype=object)
    if registry is not None:
        patients = cols.patient.tolist()
        known = {p: registry.is_admitted(p) for p in set(patients)}
        if not all(known.values()):
            reasons[[not known[p] for p in patients]] = "unknown_patient"
    reasons[cols.ts < now_ms - limits.max_age_ms] = "too_old"
    reasons[cols.ts > now_ms + limits.max_future_ms] = "future_timestamp"
    v = cols.value
    reasons[~np.isfinite(v) | (v < RULES.low[m]) | (v > RULES.high[m]) | ((m == SPO2) & (v > 0) & (v <= 1))] = \
        "impossible_value"  # the last: a fraction as "%" (check_value)
    unchecked = None if ids_ok is None else ~ids_ok
    for ids in (cols.device, cols.patient, cols.id):
        _mark_bad_ids(reasons, ids, unchecked)
    q = cols.quality
    reasons[(q < 0) | (q > 1)] = "schema"  # NaN (no quality) compares False
    return reasons


def column_rejections(reasons: np.ndarray, source: str, payload: Callable[[int], Any],
                      index: Sequence[int] | np.ndarray | None = None) -> list[RejectedInput]:
    """A dead-letter record for each rejected row; ``payload(row)`` is what to keep of it, ``index[row]``
    its place in the batch the caller received (the row itself if None)."""
    return [rejected(source, reasons[j], COLUMN_DETAIL.get(reasons[j], reasons[j].replace("_", " ")), payload(j),
                     int(j if index is None else index[j]))
            for j in np.flatnonzero(reasons != "")]


def row_dict(cols: ReadingColumns, j: int) -> dict:
    """One row as a readings-topic mapping (for dead-letter records)."""
    q = float(cols.quality[j])
    return {"id": cols.id[j], "patient": cols.patient[j], "device": cols.device[j],
            "metric": RULES.names[int(cols.metric[j])], "value": float(cols.value[j]), "unit": RULES.units[int(cols.metric[j])],
            "ts": int(cols.ts[j]), "received": int(cols.received[j]), "quality": None if q != q else q}


# --- the readings topic ----------------------------------------------------------------------------

_NEXT = b'},{"id":'  # only between two encoded readings: inside a JSON string orjson escapes every '"'


def encode_readings(cols: ReadingColumns, received: int | None = None,
                    checked: bool = False) -> list[tuple[bytes, bytes]]:
    """(key, value) per row for the readings topic: the patient as key, the reading as one JSON object.
    ``received`` stamps every row with one time (a gateway's); None keeps the column's.

    ``checked`` says every row passed :func:`check_columns`: its ids follow the identifier rule and
    its value and quality are finite, so nothing in the object needs escaping and it is written from
    a template (the gateway's hot path). Otherwise orjson escapes and formats
    everything: the batch in one call, then cut between the objects."""
    if not len(cols):
        return []
    n = len(cols)
    patients = cols.patient.tolist()
    rx = cols.received.tolist() if received is None else [received] * n
    q = cols.quality
    quality = [None] * n if np.isnan(q).all() else [None if v != v else v for v in q.astype(np.float64).tolist()]
    rows = zip(cols.id.tolist(), patients, cols.device.tolist(), cols.metric.tolist(), cols.value.tolist(),
               cols.ts.tolist(), rx, quality)
    names, units = RULES.names, RULES.units
    if checked:
        return [(p.encode(), f'{{"id":"{i}","patient":"{p}","device":"{d}","metric":"{names[m]}","value":{v!r},'
                             f'"unit":"{units[m]}","ts":{t},"received":{r},"quality":{"null" if qv is None else repr(qv)}}}'
                 .encode()) for i, p, d, m, v, t, r, qv in rows]
    batch = orjson.dumps([{"id": i, "patient": p, "device": d, "metric": names[m], "value": v, "unit": units[m],
                           "ts": t, "received": r, "quality": qv} for i, p, d, m, v, t, r, qv in rows])
    values = batch[1:-1].replace(_NEXT, b'}\n{"id":').split(b"\n")  # a raw newline is never inside orjson's output
    return list(zip(map(str.encode, patients), values))


# The template of a checked row (encode_readings): the metric names and units it writes unescaped
# are plain ASCII that JSON does not escape.
assert all(orjson.dumps(x).decode() == f'"{x}"' for x in RULES.names + RULES.units)


def decode_readings(values: list[bytes], now_ms: int, registry_view=None, source: str = "kafka:readings",
                    limits: Limits | None = None) -> tuple[ReadingColumns, list[RejectedInput]]:
    """Raw readings-topic message values -> validated columns + rejections (the detector worker's hot path).

    The messages our encoder wrote are parsed for the whole batch at once
    (:mod:`wardwatch.readings_template`), the others one by one as :func:`decode_each` does; then
    ``check_columns`` runs on the batch. Columns and rejections are those :func:`decode_each` gives.
    It never raises: every input ends up either in the columns or in the rejections."""
    limits = limits or DEFAULT_LIMITS
    fast = match_template(values)
    if fast is None or not len(fast.index):
        return decode_each(values, now_ms, registry_view, source, limits)
    rej: list[RejectedInput] = []
    n, k = len(values), len(fast.index)
    cols = ReadingColumns(fast.id, fast.patient, fast.device, fast.metric, fast.value, fast.ts, fast.received,
                          np.full(k, np.nan, np.float32))
    src, ids_ok = fast.index, fast.ids_ok
    if k < n:
        rest = np.ones(n, bool)
        rest[fast.index] = False
        rows = [row for i in np.flatnonzero(rest).tolist() if (row := _per_message(values[i], i, source, rej))]
        if rows:  # back in the batch's order
            src = np.concatenate([src, np.array([r[0] for r in rows], np.int64)])
            ids_ok = np.concatenate([ids_ok, np.zeros(len(rows), bool)])  # per-message rows: checked in check_columns
            order = np.argsort(src, kind="stable")
            src, ids_ok, cols = src[order], ids_ok[order], ReadingColumns.concat([cols, _columns(rows)]).take(order)
    return _checked(cols, src, values, now_ms, registry_view, source, limits, rej, ids_ok)


def decode_each(values: list[bytes], now_ms: int, registry_view=None, source: str = "kafka:readings",
                limits: Limits | None = None) -> tuple[ReadingColumns, list[RejectedInput]]:
    """:func:`decode_readings` one message at a time (orjson and plain type checks per message for the
    shape, then ``check_columns`` on the batch): the reference the batch path must agree with."""
    limits = limits or DEFAULT_LIMITS
    rej: list[RejectedInput] = []
    rows = [row for i, raw in enumerate(values) if (row := _per_message(raw, i, source, rej))]
    if not rows:
        return ReadingColumns.empty(), rej
    return _checked(_columns(rows), [r[0] for r in rows], values, now_ms, registry_view, source, limits, rej)


def _checked(cols: ReadingColumns, src, values: list, now_ms: int, registry_view, source: str, limits: Limits,
             rej: list[RejectedInput], ids_ok: np.ndarray | None = None) -> tuple[ReadingColumns, list[RejectedInput]]:
    """The rows that pass ``check_columns``; the others join ``rej`` (``src``: each row's place in ``values``)."""
    reasons = check_columns(cols, now_ms, limits, registry_view, ids_ok)
    ok = reasons == ""
    if ok.all():
        return cols, rej
    rej += column_rejections(reasons, source, lambda j: values[src[j]], src)
    return cols.take(ok), rej


def _columns(rows: list[tuple]) -> ReadingColumns:
    _, ids, patients, devices, metric, value, ts, received, quality = zip(*rows)
    return ReadingColumns(np.array(ids, dtype=object), np.array(patients, dtype=object), np.array(devices, dtype=object),
                          np.array(metric, dtype=np.int8), np.array(value, dtype=np.float64), np.array(ts, dtype=np.int64),
                          np.array(received, dtype=np.int64), np.array(quality, dtype=np.float32))


def _per_message(raw: bytes, i: int, source: str, rej: list[RejectedInput]) -> tuple | None:
    """One message as a row (index, id, patient, device, metric, value, ts, received, quality), or None
    with its rejection appended to ``rej``."""
    # The common case in one try: every field present and of the right type, nothing per field.
    try:
        d = orjson.loads(raw)
        m = RULES.index[d["metric"]]
        rid, pid, dev, v, t = d["id"], d["patient"], d["device"], d["value"], d["ts"]
        q, r = d.get("quality"), d.get("received")
        if (type(t) is int and (type(v) is float or type(v) is int) and d["unit"] == RULES.units[m] and q is None
                and type(rid) is str and type(pid) is str and type(dev) is str and -TS_BOUND < t < TS_BOUND):
            return (i, rid, pid, dev, m, v, t, r if type(r) is int and 0 <= r < TS_BOUND else 0, np.nan)
    except Exception:
        pass
    return _careful(raw, i, source, rej)


def _careful(raw: bytes, i: int, source: str, rej: list[RejectedInput]) -> tuple | None:
    """One message that failed the quick checks: find what is wrong with its shape, or take it (e.g. with
    a quality) for ``check_columns``."""
    try:
        d = orjson.loads(raw)
    except Exception:
        rej.append(rejected(source, "malformed_json", "not valid JSON", raw or b"", i))
        return None
    if not isinstance(d, dict):
        rej.append(rejected(source, "schema", "a reading must be a JSON object", raw, i))
        return None
    try:
        m = RULES.index.get(d.get("metric"))
    except TypeError:  # an unhashable "metric" (a list, an object)
        m = None
    if m is None:
        rej.append(rejected(source, "unknown_metric", "unknown metric", raw, i))
        return None
    v, t, pid, dev, rid = d.get("value"), d.get("ts"), d.get("patient"), d.get("device"), d.get("id")
    if type(v) not in _NUM or type(t) is not int or type(pid) is not str or type(dev) is not str or type(rid) is not str:
        rej.append(rejected(source, "schema", "id, patient, device (strings), value (number), ts (integer ms) are required", raw, i))
        return None
    if d.get("unit") != RULES.units[m]:
        rej.append(rejected(source, "unit", f"unit must be {RULES.units[m]} on the readings topic", raw, i))
        return None
    q = d.get("quality")
    try:
        check_quality(q)
    except Invalid as exc:
        rej.append(rejected(source, exc.reason, exc.detail, raw, i))
        return None
    if not -TS_BOUND < t < TS_BOUND:
        rej.append(rejected(source, "schema", "ts out of range", raw, i))
        return None
    r = d.get("received")
    return (i, rid, pid, dev, m, v, t, r if type(r) is int and 0 <= r < TS_BOUND else 0, np.nan if q is None else q)
