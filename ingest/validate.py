"""The validation rules every path shares (HTTP, FHIR, HL7 v2, the gateway client, the consumer side).

A rejection has a stable machine-readable reason code and a sentence for people; nothing is
dropped silently: the caller sends every rejection to the dead-letter topic.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping

import orjson

from wardwatch.identifiers import REASON as BAD_IDENTIFIER, is_identifier
from wardwatch.metrics_catalog import CATALOG, Metric, to_canonical
from wardwatch.models import RejectedInput, Reading, reading_id
from wardwatch.settings import Settings

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
    "too_large": "the request, batch, HL7 message or FHIR Bundle is larger than allowed",
    "body_timeout": "the request body did not arrive in time",
    "unsupported": "the message type or format is not supported",
    BAD_IDENTIFIER: "a patient, device or reading id breaks the identifier rule (wardwatch.identifiers)",
}


class Invalid(Exception):
    """A rejection; ``payload`` is the part of the input it is about (an HL7 message or segment, a
    FHIR resource) where that is narrower than the item the caller holds."""

    def __init__(self, reason: str, detail: str, payload: Any = None) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.payload = reason, detail, payload


@dataclass(frozen=True)
class Limits:
    max_future_ms: int
    max_age_ms: int

    @classmethod
    def from_settings(cls, s: Settings) -> "Limits":
        return cls(int(s.max_future_s * 1000), int(s.max_age_s * 1000))


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


def check_value(metric: Metric, value: float) -> None:
    info = CATALOG[metric]
    if not (info.low <= value <= info.high):
        raise Invalid("impossible_value", f"{metric.value} {value:g} {info.unit} is outside {info.low:g}..{info.high:g}")


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


def reading_from_mapping(d: Mapping[str, Any], now_ms: int, limits: Limits, registry=None) -> Reading:
    """Validate one JSON reading object; converts units to the metric's canonical unit."""
    if not isinstance(d, Mapping):
        raise Invalid("schema", "a reading must be a JSON object")
    metric_raw = d.get("metric")
    try:
        metric = Metric(metric_raw)
    except (ValueError, TypeError):
        raise Invalid("unknown_metric", f"unknown metric {str(metric_raw)[:40]!r}") from None
    value, unit, ts = d.get("value"), d.get("unit"), d.get("ts")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid("schema", "value must be a number")
    if not isinstance(unit, str) or not unit:
        raise Invalid("schema", "unit must be a non-empty string")
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise Invalid("schema", "ts must be an integer (epoch milliseconds)")
    try:
        canonical = to_canonical(metric, float(value), unit)
    except ValueError as exc:
        raise Invalid("unit", str(exc)) from None
    check_value(metric, canonical)
    check_time(ts, now_ms, limits)
    device = d.get("device")
    if not isinstance(device, str):
        raise Invalid("schema", "device must be a string")
    patient = d.get("patient")
    if patient is not None and not isinstance(patient, str):
        raise Invalid("schema", "patient must be a string")
    for name in ("device", "patient", "id"):
        if d.get(name) is not None and not is_identifier(d[name]):
            raise Invalid(BAD_IDENTIFIER, f"{name} is not a valid identifier")
    patient = resolve_patient(device, patient, registry)
    fields = {k: d[k] for k in ("id", "received", "quality") if d.get(k) is not None}
    try:
        return Reading(patient=patient, device=device, metric=metric, value=canonical,
                       unit=CATALOG[metric].unit, ts=ts, **fields)
    except Exception as exc:  # pydantic ValidationError: ids, quality, extra fields
        first = getattr(exc, "errors", lambda: [{}])()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "reading"
        raise Invalid("schema", f"{where}: {first.get('msg', 'invalid')}") from None


def stamp_id(d: Mapping[str, Any]) -> str:
    return d.get("id") or reading_id(str(d.get("device")), str(d.get("metric")), int(d.get("ts") or 0))
