"""InfluxDB line protocol, built by hand because it is the hot path of every write.

Tags are only bounded sets (patient, metric, score name, alert kind and priority): never a reading
or alert id, which would explode series cardinality.
"""

from __future__ import annotations

import math
from typing import Mapping

import orjson

_TAG_ESCAPE = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_MEAS_ESCAPE = str.maketrans({",": r"\,", " ": r"\ "})
# InfluxDB 1.8 unescapes neither a backslash in a tag or key nor a line break anywhere, and Flux's
# CSV answers turn CR/LF around: such strings cannot be stored and read back, so they are refused.
_NOT_IN_KEYS = ("\\", "\n", "\r")
_NOT_IN_STRINGS = ("\n", "\r")


def _refuse(value: str, bad: tuple[str, ...], what: str) -> str:
    if any(c in value for c in bad):
        raise ValueError(f"a {what} with a backslash or line break cannot be written to line protocol")
    return value


def escape_tag(value: str) -> str:
    """A tag key, tag value or field key."""
    return _refuse(value, _NOT_IN_KEYS, "tag or key").translate(_TAG_ESCAPE)


def escape_str_field(value: str) -> str:
    return '"' + _refuse(value, _NOT_IN_STRINGS, "string field").replace("\\", "\\\\").replace('"', '\\"') + '"'


def field_value(v: object) -> str | None:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v}i"
    if isinstance(v, float):
        return None if not math.isfinite(v) else repr(v)
    if v is None:
        return None
    return escape_str_field(str(v))


def line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, object], ts_ms: int) -> str:
    """One point at millisecond precision; fields that are None or not finite are left out."""
    field_parts = [f"{escape_tag(k)}={fv}" for k, v in fields.items() if (fv := field_value(v)) is not None]
    if not field_parts:
        raise ValueError("a point needs at least one field")
    return f"{series_key(measurement, tags)} {','.join(field_parts)} {int(ts_ms)}"


def series_key(measurement: str, tags: Mapping[str, str]) -> str:
    """The measurement and sorted tags of a point (empty tags left out), escaped."""
    tag_part = "".join(f",{escape_tag(k)}={escape_tag(str(v))}" for k, v in sorted(tags.items()) if v not in (None, ""))
    return f"{_refuse(measurement, _NOT_IN_KEYS, 'measurement').translate(_MEAS_ESCAPE)}{tag_part}"


# ---------------------------------------------------------------------------------------------
# Every point WardWatch stores, built here and only here, so that the writers (the detector
# engine, the detector worker, the alert service) and the readers (the history API) agree on the
# measurement, tag and field names:
#
#   vitals  patient, metric                          value, device, clean, quality
#   scores  patient, score                           value, partial, reasons
#   alerts  patient, kind, priority, condition, event  alert_id, message, state, by, values

def vitals_prefix(patient: str, metric: str) -> str:
    """The measurement and tags of a reading's point; cache it per (patient, metric)."""
    return series_key("vitals", {"patient": patient, "metric": metric})


def vitals_lines(prefixes: list[str], devices: list[str], values: list[float], clean: list[float],
                 quality: list[float], ts: list[int]) -> list[str]:
    """One point per reading (its raw ``value``) and, where the filters passed it, its ``clean`` value.

    The hottest loop of the worker, so columns in, no per-field calls: ``prefixes`` from
    :func:`vitals_prefix`, ``devices`` already escaped with :func:`escape_str_field`, NaN meaning
    "no clean value" or "no quality".

    >>> vitals_lines([vitals_prefix("p 1", "spo2")], [escape_str_field("ox")], [97.0], [float("nan")],
    ...              [0.9], [1000])
    ['vitals,metric=spo2,patient=p\\\\ 1 value=97.0,device="ox",quality=0.9 1000']
    """
    return [f"{p} value={v!r},device={d}{f',clean={c!r}' if c == c else ''}{f',quality={q!r}' if q == q else ''} {t}"
            for p, d, v, c, q, t in zip(prefixes, devices, values, clean, quality, ts)]


def vitals_line(patient: str, metric: str, value: float, device: str, clean: float | None, quality: float | None,
                ts_ms: int) -> str:
    """One reading's point (see :func:`vitals_lines`)."""
    nan = float("nan")
    return vitals_lines([vitals_prefix(patient, metric)], [escape_str_field(device)], [float(value)],
                        [nan if clean is None else float(clean)], [nan if quality is None else float(quality)],
                        [ts_ms])[0]


def score_line(patient: str, score: str, value: float, partial: bool, reasons: str, ts_ms: int) -> str:
    """A score (NEWS2, risk, anomaly, trend) of one patient at one time.

    >>> score_line("p1", "news2", 5.0, True, "spo2 +2", 1000)
    'scores,patient=p1,score=news2 value=5.0,partial=true,reasons="spo2 +2" 1000'
    """
    return line("scores", {"patient": patient, "score": score},
                {"value": float(value), "partial": bool(partial), "reasons": reasons}, int(ts_ms))


def _alerts(event, state: str, values: str) -> str:
    a = event.alert
    return line("alerts", {"patient": a.patient, "kind": a.kind.value, "priority": a.priority.value,
                           "condition": a.condition, "event": event.type.value},
                {"alert_id": a.id, "message": a.message, "state": state, "by": event.by or "", "values": values},
                event.at)


def alert_line(event) -> str:
    """An alarm event as the detectors raise, update or clear it (a :class:`wardwatch.models.AlertEvent`),
    with the values that triggered it."""
    return _alerts(event, event.alert.state.value, orjson.dumps(event.alert.values).decode())


def alert_event_line(event, state: str) -> str:
    """What someone did to an alarm (acknowledge, pause, resolve, escalation), recorded by the alert
    service: ``state`` is the alarm's state after the action; the triggering values are not repeated."""
    return _alerts(event, state, "{}")
