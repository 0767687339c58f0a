"""Clinician history: a patient's vitals, scores and alarms for a time range, downsampled by the store.

Charts need at most ``MAX_POINTS`` points per series, so the window (``every``) is chosen from the
range (the chart asks again with the range it shows after a zoom) and InfluxDB averages into it
(Flux aggregateWindow); the same call works against the embedded store of the demo. The raw and
the clean (filter-passed) values are averaged apart, so artefacts and sensor-off zeros never enter
the clean line; the raw points without a clean value are returned as marks. Exports: CSV, and a
FHIR R4 Bundle of vital-signs Observations.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime, timezone
from typing import Any

from wardwatch import alarm_texts
from wardwatch.alarm_rules import DEFAULT_RULES, apply_override, disabled_until
from wardwatch.identifiers import is_identifier
from wardwatch.lineprotocol import CLEAN_FIELDS, RAW_FIELDS
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


# NEWS2's score-0 bands (RCP 2017, scale 1), as detectors/scores/news2.py scores them: the chart's
# "normal range" shading (tests/alerts/test_history_api.py checks them against that scorer).
NORMAL_RANGE: dict[str, tuple[float, float]] = {
    Metric.resp_rate.value: (12, 20), Metric.spo2.value: (96, 100), Metric.sbp.value: (111, 219),
    Metric.heart_rate.value: (51, 90), Metric.pulse_rate.value: (51, 90), Metric.temperature.value: (36.1, 38.0)}
REASONS_MAX_SPAN_MS = 2 * 86_400_000  # score reasons are text (not averaged): read only for ranges up to this


async def read_vitals(store, patient: str, start_ms: int, stop_ms: int, every: int | None,
                      withdrawn: dict[str, dict[int, str]] | None = None) -> dict[str, dict]:
    """``{metric: {"raw": [[t, v]], "clean": [[t, v]]}}``: THE one place that knows the stored vitals
    schema, ``vitals,patient=<id> <metric>=..,<metric>_clean=..`` (``wardwatch.lineprotocol``; numeric
    fields only: ``_dev`` is a string and ``_q`` is not charted). With a window each field is averaged
    on its own, so a clean mean never holds an artefact or a sensor-off zero. Readings their senders
    withdrew (``withdrawn``, read here when not given) are left out, of every window's mean too."""
    rows = await store.query_series("vitals", patient, start_ms, stop_ms, every, fields=[*RAW_FIELDS, *CLEAN_FIELDS])
    out = _by_metric(rows)
    if withdrawn is None:
        withdrawn = await read_withdrawn(store, patient, start_ms, stop_ms)
    for metric, times in withdrawn.items():
        if metric in out:
            await _leave_out(store, patient, out[metric], metric, times, start_ms, stop_ms, every)
    return out


def _by_metric(rows: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in rows:
        f = r["field"]
        metric, kind = (f[:-6], "clean") if f.endswith("_clean") else (f, "raw")
        out.setdefault(metric, {"raw": [], "clean": []})[kind].append([r["time"], r["value"]])
    return out


async def read_withdrawn(store, patient: str, start_ms: int, stop_ms: int) -> dict[str, dict[int, str]]:
    """``{metric: {reading time: what withdrew it}}``: the patient's readings withdrawn by their
    senders (HL7 OBX-11 D/W, FHIR entered-in-error), as the worker stored them
    (``wardwatch.lineprotocol.retraction_line``)."""
    out: dict[str, dict[int, str]] = {}
    for r in await store.query_series("retractions", patient, start_ms, stop_ms, None):
        out.setdefault(r["field"], {})[r["time"]] = str(r["value"])
    return out


async def _leave_out(store, patient: str, series: dict, metric: str, times: dict[int, str], start_ms: int,
                     stop_ms: int, every: int | None) -> None:
    """Take withdrawn readings out of one metric's raw and clean series. Unwindowed, they are
    dropped; windowed, each window that held one is averaged again from its stored points without it
    (windows as the stores make them: epoch-aligned, shown at their end, clipped to the range).
    Withdrawals are rare, so the extra reads are a few small ones."""
    if not every:
        for kind in ("raw", "clean"):
            series[kind] = [p for p in series[kind] if p[0] not in times]
        return
    ends = sorted({(t // every + 1) * every for t in times})
    runs: list[list[int]] = []  # windows next to each other are read in one query
    for end in ends:
        if runs and end == runs[-1][-1] + every:
            runs[-1].append(end)
        else:
            runs.append([end])
    fields = [metric, f"{metric}_clean"]
    limit = asyncio.Semaphore(8)  # a device that withdrew readings all over a month is not a query storm

    async def read(run: list[int]) -> list[dict]:
        async with limit:
            return await store.query_series("vitals", patient, max(start_ms, run[0] - every), min(stop_ms, run[-1]),
                                            None, fields=fields)

    points = {kind: {t: v for t, v in series[kind]} for kind in ("raw", "clean")}
    for run, rows in zip(runs, await asyncio.gather(*(read(run) for run in runs))):
        kept: dict[int, list[dict]] = {end: [] for end in run}
        for r in rows:
            if r["time"] not in times:
                kept[(r["time"] // every + 1) * every].append(r)
        for end, window in kept.items():
            values = _by_metric(window).get(metric, {"raw": [], "clean": []})
            for kind in ("raw", "clean"):
                points[kind].pop(min(end, stop_ms), None)
                if values[kind]:
                    points[kind][min(end, stop_ms)] = sum(v for _, v in values[kind]) / len(values[kind])
    for kind in ("raw", "clean"):
        series[kind] = [[t, v] for t, v in sorted(points[kind].items())]


def split_marks(raw: list, clean: list) -> list:
    """The raw points (or windows) with no clean value at the same time: artefacts and sensor-off,
    which the chart marks instead of drawing (and never averages into the line)."""
    have = {t for t, _ in clean}
    return [[t, v] for t, v in raw if t not in have]


def episodes(alarms: list[dict]) -> list[dict]:
    """Alarm episodes for the timeline: one per alarm id, from its raise to its clear or resolve
    (``end`` None while open), at its highest priority, with its clinical title."""
    out: dict[str, dict] = {}
    rank = {"low": 1, "medium": 2, "high": 3}
    for a in alarms:
        aid = a.get("alert_id") or f"{a.get('condition')}@{a['time']}"
        ep = out.get(aid)
        if ep is None:
            # A monitor's alarm is named by the monitor's own text, not by our catalogue.
            title = a.get("message") if a.get("kind") == "device" else alarm_texts.title(a.get("condition") or "")
            ep = out[aid] = {"alert_id": aid, "condition": a.get("condition"), "title": title,
                             "kind": a.get("kind"), "priority": a.get("priority"), "start": a["time"], "end": None,
                             "message": a.get("message", "")}
        if rank.get(a.get("priority"), 0) > rank.get(ep["priority"], 0):
            ep["priority"] = a["priority"]
        if a.get("event") in ("cleared", "resolved"):
            ep["end"] = a["time"] if ep["end"] is None else min(ep["end"], a["time"])
        elif a.get("event") == "raised":
            ep["start"], ep["message"] = min(ep["start"], a["time"]), a.get("message", ep["message"])
    return sorted(out.values(), key=lambda e: e["start"])


def limits_view(override: dict) -> list[dict]:
    """The patient's alarm limits in force (defaults with the clinician's override), one row per rule."""
    current = apply_override(DEFAULT_RULES, override)
    off = disabled_until(override)
    return [{"condition": r.condition, "title": alarm_texts.title(r.condition), "metric": r.metric.value,
             "side": r.side, "value": c.limit if c.limit == c.limit and abs(c.limit) != float("inf") else None,
             "default": r.limit, "priority": r.priority.value, "disabled_until": off.get(r.condition)}
            for r, c in zip(DEFAULT_RULES, current)]


def monitor_alarm_rows(events: list[dict]) -> list[dict]:
    """Device-alarm events (as the alert log holds them, :meth:`EventLog.monitor_reports`) as rows of
    the history's ``alarms``, beside the detectors' rows read from InfluxDB."""
    return [{"time": e["at"], "condition": e["alert"]["condition"], "event": e["type"],
             "priority": e["alert"]["priority"], "kind": "device", "alert_id": e["alert"]["id"],
             "message": e["alert"]["message"], "by": ""} for e in events]


async def patient_history(store, patient: str, start_ms: int, stop_ms: int, every_ms: int | None = None,
                          monitor_events: list[dict] = ()) -> dict[str, Any]:
    """Raw values (``vitals``, as before), the clean series (``clean``), the raw points the filters
    did not pass (``marks``), scores with their reasons, alarm events and episodes. With a window
    (``every_ms``) the store averages each field on its own, so a clean window's mean never
    contains an artefact or a sensor-off zero. ``monitor_events``: the monitors' own alarms from the
    alert service's view (the newest may not be in InfluxDB yet), merged into the alarms in time order."""
    every = choose_every(start_ms, stop_ms, every_ms)
    withdrawn = await read_withdrawn(store, patient, start_ms, stop_ms)
    vitals = await read_vitals(store, patient, start_ms, stop_ms, every, withdrawn)
    scores = await store.query_series("scores", patient, start_ms, stop_ms, every, fields=["value"])
    reasons = (await store.query_series("scores", patient, start_ms, stop_ms, None, fields=["reasons"])
               if stop_ms - start_ms <= REASONS_MAX_SPAN_MS else [])
    alarms = await store.query_series("alerts", patient, start_ms, stop_ms, None, fields=["alert_id", "message", "by"])
    out: dict[str, Any] = {"patient": patient, "start": start_ms, "stop": stop_ms, "every_ms": every,
                           "vitals": {}, "clean": {}, "marks": {}, "scores": {}, "score_reasons": {}, "alarms": [],
                           "withdrawn": {m: sorted([t, why] for t, why in times.items()) for m, times in withdrawn.items()}}
    for metric, s in sorted(vitals.items()):
        out["vitals"][metric] = s["raw"]
        out["clean"][metric] = s["clean"]
        out["marks"][metric] = split_marks(s["raw"], s["clean"])
    for r in scores:
        out["scores"].setdefault(r.get("score", "?"), []).append([r["time"], r["value"]])
    for r in reasons:  # in the catalogue's words, as the alarm texts say them
        why = alarm_texts.reasons_text(r["value"].split("; "))[1] if r["value"] else ""
        if why:
            out["score_reasons"].setdefault(r.get("score", "?"), []).append([r["time"], why])
    by_time: dict[tuple, dict] = {}
    for r in alarms:
        key = (r["time"], r.get("condition"), r.get("event"))
        row = by_time.setdefault(key, {"time": r["time"], "condition": r.get("condition"), "event": r.get("event"),
                                       "priority": r.get("priority"), "kind": r.get("kind")})
        row[r["field"]] = r["value"]
    # The monitors' alarms are in InfluxDB too once alerts/monitor_history.py stored them: the view's
    # copies of those are left out, so each shows once (the view has the newest, InfluxDB the old).
    from_view = [r for r in monitor_alarm_rows(list(monitor_events)) if (r["time"], r["condition"], r["event"]) not in by_time]
    out["alarms"] = sorted([*by_time.values(), *from_view], key=lambda a: a["time"])
    out["episodes"] = episodes(out["alarms"])
    out["normal"] = {m: list(r) for m, r in NORMAL_RANGE.items()}
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
        for t, v in history.get("clean", {}).get(metric, []):
            w.writerow([p, _iso(t), "vital_clean", csv_cell(metric), f"{v:.6g}", csv_cell(unit)])
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
        marked = {t for t, _ in history.get("marks", {}).get(metric, [])}
        for t, v in points:
            note = [{"text": "not passed by the signal filters (artefact or sensor off)"}] if t in marked else []
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
            } | ({"note": note} if note else {})})
    return {"resourceType": "Bundle", "type": "collection", "timestamp": _iso(history["stop"]), "entry": entries}
