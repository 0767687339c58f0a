"""FHIR R4 vital-signs Observations (single, or a Bundle of them) -> reading mappings.

Codes: LOINC (``http://loinc.org``) or IEEE 11073 MDC (``urn:iso:std:iso:11073:10101``); a blood
pressure panel's components become one reading each. ``valueQuantity`` carries the value and its
UCUM unit; ``effectiveDateTime`` (or ``effectiveInstant``) the device time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterator

from wardwatch.metrics_catalog import LOINC_TO_METRIC, MDC_TO_METRIC

from wardwatch.codec import Invalid

LOINC = "http://loinc.org"
MDC = "urn:iso:std:iso:11073:10101"


def parse_time(value: Any) -> int:
    if not isinstance(value, str):
        raise Invalid("schema", "effectiveDateTime is required")
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid("schema", "effectiveDateTime is not an ISO 8601 date-time") from None
    if dt.tzinfo is None:
        raise Invalid("schema", "effectiveDateTime needs a time zone")
    return int(dt.timestamp() * 1000)


def metric_of(code: Any) -> str:
    codings = (code or {}).get("coding") if isinstance(code, dict) else None
    if not isinstance(codings, list):
        raise Invalid("schema", "code.coding is required")
    for c in codings:
        if not isinstance(c, dict):
            continue
        system, value = c.get("system"), str(c.get("code", ""))
        if system == LOINC and value in LOINC_TO_METRIC:
            return LOINC_TO_METRIC[value].value
        if system == MDC and value.isdigit() and int(value) in MDC_TO_METRIC:
            return MDC_TO_METRIC[int(value)].value
    raise Invalid("unknown_metric", "no LOINC or MDC code of a known vital sign")


def _ref(obj: Any, kind: str) -> str | None:
    ref = obj.get("reference") if isinstance(obj, dict) else None
    if isinstance(ref, str) and ref.startswith(kind + "/"):
        return ref[len(kind) + 1:]
    ident = obj.get("identifier", {}).get("value") if isinstance(obj, dict) and isinstance(obj.get("identifier"), dict) else None
    return ident if isinstance(ident, str) else None


def _quantity(obj: dict) -> tuple[Any, Any]:
    q = obj.get("valueQuantity")
    if not isinstance(q, dict):
        raise Invalid("schema", "valueQuantity is required")
    return q.get("value"), q.get("code") or q.get("unit")


def observation_readings(obs: Any) -> list[dict]:
    if not isinstance(obs, dict) or obs.get("resourceType") != "Observation":
        raise Invalid("unsupported", "not a FHIR Observation")
    if obs.get("status") in ("entered-in-error", "cancelled"):
        raise Invalid("schema", f"observation status is {obs.get('status')}")
    ts = parse_time(obs.get("effectiveDateTime") or obs.get("effectiveInstant"))
    patient = _ref(obs.get("subject"), "Patient")
    device = _ref(obs.get("device"), "Device")
    if not device:
        raise Invalid("schema", "device (Device/...) is required")
    parts = obs.get("component") if isinstance(obs.get("component"), list) else [obs]
    out = []
    for part in parts:
        if not isinstance(part, dict):
            raise Invalid("schema", "component must be an object")
        value, unit = _quantity(part)
        out.append({"patient": patient, "device": device, "metric": metric_of(part.get("code")),
                    "value": value, "unit": unit, "ts": ts})
    return out


def resources(doc: Any, max_entries: int | None = None) -> Iterator[Any]:
    """The Observations of a single resource or a Bundle, in order; a Bundle of more than
    ``max_entries`` entries is refused before any is read."""
    if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
        entries = doc.get("entry")
        if not isinstance(entries, list):
            raise Invalid("schema", "Bundle.entry must be a list")
        if max_entries is not None and len(entries) > max_entries:
            raise Invalid("too_large", f"a Bundle of {len(entries)} entries is over {max_entries}")
        for e in entries:
            yield e.get("resource") if isinstance(e, dict) else e
    else:
        yield doc
