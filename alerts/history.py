"""Clinician history: a patient's vitals, scores and alarms for a time range, downsampled by the store.

Charts need at most ``MAX_POINTS`` points per series, so the window (``every``) is chosen from the
range and InfluxDB averages into it (Flux aggregateWindow); the same call works against the
embedded store of the demo. Exports: CSV, and a FHIR R4 Bundle of vital-signs Observations.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Any

from wardwatch.identifiers import is_identifier
from wardwatch.lineprotocol import RAW_FIELDS
from wardwatch.metrics_catalog import CATALOG, Metric

MAX_POINTS = 1000
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: the last time Flux and datetime both write
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet evaluates a cell that starts so


def history_query(patient: str, start: int, stop: int, every: int | None) -> tuple[str, int, int, int | None]:
    """The parameters of a history request, or ValueError (a 400): the patient id must pass the
    identifier rule before it goes anywhere near Flux, and times must be ones Flux can write."""
    if not is_identifier(patient):
        raise ValueError("patient is not a valid identifier")
    if not 0 <= start < stop <= MAX_MS or (every is not None and not 0 < every <= MAX_MS):
        raise ValueError("need 0 <= start < stop <= 9999-12-31 and 0 < every (epoch ms)")
    return patient, start, stop, every


def choose_every(start_ms: int, stop_ms: int, requested: int | None = None) -> int | None:
    span = max(1, stop_ms - start_ms)
    every = -(-span // (MAX_POINTS - 1))  # windows align to the epoch: one more may start inside the range
    if requested:
        every = max(every, requested)
    return None if every <= 1000 else int(every)


async def read_vitals(store, patient: str, start_ms: int, stop_ms: int, every_ms: int | None,
                      fields=RAW_FIELDS) -> dict[str, list[list]]:
    """``{field: [[t, v], ...]}`` of a patient's vitals points (one point per reading time, a field per
    metric: ``wardwatch.lineprotocol``); the raw values by default, ``CLEAN_FIELDS`` for the clean ones."""
    out: dict[str, list[list]] = {}
    for r in await store.query_series("vitals", patient, start_ms, stop_ms, every_ms, fields=list(fields)):
        out.setdefault(r["field"], []).append([r["time"], r["value"]])
    return out


async def patient_history(store, patient: str, start_ms: int, stop_ms: int, every_ms: int | None = None) -> dict[str, Any]:
    every = choose_every(start_ms, stop_ms, every_ms)
    vitals = await read_vitals(store, patient, start_ms, stop_ms, every)
    scores = await store.query_series("scores", patient, start_ms, stop_ms, every, fields=["value"])
    alarms = await store.query_series("alerts", patient, start_ms, stop_ms, None, fields=["alert_id", "message"])
    out: dict[str, Any] = {"patient": patient, "start": start_ms, "stop": stop_ms, "every_ms": every,
                           "vitals": vitals, "scores": {}, "alarms": []}
    for r in scores:
        out["scores"].setdefault(r.get("score", "?"), []).append([r["time"], r["value"]])
    by_time: dict[tuple, dict] = {}
    for r in alarms:
        key = (r["time"], r.get("condition"), r.get("event"))
        row = by_time.setdefault(key, {"time": r["time"], "condition": r.get("condition"), "event": r.get("event"),
                                       "priority": r.get("priority"), "kind": r.get("kind")})
        row[r["field"]] = r["value"]
    out["alarms"] = sorted(by_time.values(), key=lambda a: a["time"])
    return out


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def csv_cell(value: Any) -> str:
    """A text cell a spreadsheet shows as text: one that would start a formula gets a leading ``'``."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(history: dict[str, Any]) -> str:
    """Text cells pass through :func:`csv_cell`; numbers are ours (``%.6g``), written as numbers."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["patient", "time", "kind", "name", "value", "unit"])
    p = csv_cell(history["patient"])
    for metric, points in sorted(history["vitals"].items()):
        unit = CATALOG[Metric(metric)].unit if metric in Metric.__members__ else ""
        for t, v in points:
            w.writerow([p, _iso(t), "vital", csv_cell(metric), f"{v:.6g}", csv_cell(unit)])
    for score, points in sorted(history["scores"].items()):
        for t, v in points:
            w.writerow([p, _iso(t), "score", csv_cell(score), f"{v:.6g}", ""])
    for a in history["alarms"]:
        w.writerow([p, _iso(a["time"]), csv_cell(f"alarm:{a.get('event')}"), csv_cell(a.get("condition")),
                    csv_cell(a.get("message", "")), csv_cell(a.get("priority"))])
    return buf.getvalue()


def to_fhir_bundle(history: dict[str, Any]) -> dict[str, Any]:
    """A FHIR R4 collection Bundle of vital-signs Observations (LOINC code, UCUM valueQuantity)."""
    entries = []
    p = history["patient"]
    for metric, points in sorted(history["vitals"].items()):
        if metric not in Metric.__members__:
            continue
        info = CATALOG[Metric(metric)]
        for t, v in points:
            entries.append({"fullUrl": f"urn:uuid:ww-{p}-{metric}-{t}", "resource": {
                "resourceType": "Observation", "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                          "code": "vital-signs", "display": "Vital Signs"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": info.loinc, "display": info.label}],
                         "text": info.label},
                "subject": {"reference": f"Patient/{p}"},
                "effectiveDateTime": _iso(t),
                "valueQuantity": {"value": round(float(v), 4), "unit": info.unit, "system": "http://unitsofmeasure.org",
                                  "code": info.unit},
            }})
    return {"resourceType": "Bundle", "type": "collection", "timestamp": _iso(history["stop"]), "entry": entries}
