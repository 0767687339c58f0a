"""InfluxDB line protocol, built by hand because it is the hot path of every write.

Tags are only bounded sets (patient, metric, score name, alert kind and priority): never a reading
or alert id, which would explode series cardinality.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import orjson

from .metrics_catalog import METRICS

_TAG_ESCAPE = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_MEAS_ESCAPE = str.maketrans({",": r"\,", " ": r"\ "})
# InfluxDB 1.8 unescapes neither a backslash in a tag or key nor a line break anywhere, and Flux's
# CSV answers turn CR/LF around: such strings cannot be stored and read back, so they are refused.
_NOT_IN_KEYS = ("\\", "\n", "\r")
_NOT_IN_STRINGS = ("\n", "\r")


def _refuse(value: str, bad: tuple[str, ...], what: str) -> str:
    if any(map(value.__contains__, bad)):
        raise ValueError(f"a {what} with a backslash or line break cannot be written to line protocol")
    return value


def escape_tag(value: str) -> str:
    """A tag key, tag value or field key."""
    return _refuse(value, _NOT_IN_KEYS, "tag or key").translate(_TAG_ESCAPE)


def escape_str_field(value: str) -> str:
    return '"' + _refuse(value, _NOT_IN_STRINGS, "string field").replace("\\", "\\\\").replace('"', '\\"') + '"'


class _EscapedOnce(dict):
    """str -> its string field, escaped the first time it is asked for."""

    def __missing__(self, text: str) -> str:
        self[text] = out = escape_str_field(text)
        return out


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
#   vitals  patient                                  <metric>, <metric>_clean, <metric>_q, <metric>_dev
#   scores  patient, score                           value, partial, reasons
#   alerts  patient, kind, priority, condition, event  alert_id, message, state, by, values
#
# A vitals point is one patient at one reading time, each metric read then a field (its name a
# wardwatch.metrics_catalog.Metric value): the raw value as received; ``_clean`` where the signal
# filters passed it (absent for artefacts and sensor-off); ``_q`` the device's signal quality when
# known; ``_dev`` the device id.

METRIC_NAMES = [m.value for m in METRICS]
M = len(METRIC_NAMES)
RAW_FIELDS = tuple(METRIC_NAMES)  # the raw value of each metric: what the history API reads
CLEAN_FIELDS = tuple(f"{m}_clean" for m in METRIC_NAMES)
_K_RAW = [f"{escape_tag(m)}=" for m in METRIC_NAMES]
_K_CLEAN = [f",{escape_tag(m)}_clean=" for m in METRIC_NAMES]
_K_Q = [f",{escape_tag(m)}_q=" for m in METRIC_NAMES]
_K_DEV = [f",{escape_tag(m)}_dev=" for m in METRIC_NAMES]


def patient_heads(measurement: str, patients: list) -> list[str]:
    """``series_key(measurement, {"patient": p})`` of each patient: one escape over all the ids joined
    (a worker meets thousands of new patients in its first batch); any id that needs more than that
    (empty, refused, not a string) takes the one-by-one path, which refuses it as it would."""
    try:
        joined = "\n".join(patients)
    except TypeError:
        joined = None
    if (joined is None or not patients or "" in patients or "\\" in joined or "\r" in joined
            or joined.count("\n") != len(patients) - 1):
        return [series_key(measurement, {"patient": p}) for p in patients]
    start = series_key(measurement, {}) + ",patient="
    return [start + p for p in joined.translate(_TAG_ESCAPE).split("\n")]


def vitals_head(patient: str) -> str:
    """The measurement and tag of a patient's vitals points; cache it per patient."""
    return series_key("vitals", {"patient": patient})


def _finite(a: np.ndarray) -> list[float]:
    """The column as Python floats, NaN wherever it is not finite (such a field is left out)."""
    a = np.asarray(a, np.float64)
    return np.where(np.isfinite(a), a, np.nan).tolist()


class VitalsLines:
    """The vitals points of a whole batch: readings grouped per (patient, reading time), one line
    each, the metrics as fields (see the table above). Escaped patient tags and device fields are
    cached (bounded sets: the ward's patients and devices), everything else is columns in, one
    formatted fragment per reading and one join per point out.

    Of repeated readings of the same patient, time and metric in one batch the last one wins, as a
    later write of the same field would. Values that are not finite are left out.

    >>> VitalsLines().build(np.array(["p 1", "p 1", "p2"], object), np.array([2, 0, 2]),
    ...                     np.array([97.0, 72.0, 95.5]), np.array([97.0, np.nan, 95.5]),
    ...                     np.array([0.9, np.nan, np.nan]), np.array(["ox", "ecg", "ox"], object),
    ...                     np.array([1000, 1000, 1000]))
    ['vitals,patient=p\\\\ 1 heart_rate=72.0,heart_rate_dev="ecg",spo2=97.0,spo2_clean=97.0,spo2_q=0.9,spo2_dev="ox" 1000', \
'vitals,patient=p2 spo2=95.5,spo2_clean=95.5,spo2_dev="ox" 1000']
    """

    def __init__(self) -> None:
        self._heads: dict[str, str] = {}  # patient -> escaped head
        self._key_heads: list[str | None] = []  # stable key -> escaped head (see ``build``)
        self._devices = _EscapedOnce()

    def build(self, patient: np.ndarray, metric: np.ndarray, value: np.ndarray, clean: np.ndarray,
              quality: np.ndarray, device: np.ndarray, ts: np.ndarray, keys: np.ndarray | None = None) -> list[str]:
        """``metric`` indexes wardwatch.metrics_catalog.METRICS; ``clean`` and ``quality`` are NaN
        where there is none; ``keys`` (optional) a small integer per patient that always means the same
        patient for this builder (the engine's patient rows): points are grouped and heads cached by it."""
        n = len(value)
        if n == 0:
            return []
        stable = keys is not None
        if not stable:
            _, keys = np.unique(np.asarray(patient).astype(str), return_inverse=True)
        metric = np.asarray(metric, np.int64)
        ts = np.asarray(ts, np.int64)
        order = np.lexsort((np.arange(n), metric, ts, keys))
        k, t, m = keys[order], ts[order], metric[order]
        point_end = np.r_[(k[1:] != k[:-1]) | (t[1:] != t[:-1]), True]
        last = point_end | np.r_[m[1:] != m[:-1], True]
        order, m, point_end = order[last], m[last], point_end[last]
        ends = np.flatnonzero(point_end)
        head = self._heads_of(patient[order[ends]], keys[order[ends]] if stable else None)
        devices = device[order].tolist()
        joined = "\x00".join(devices)
        plain = not any(c in joined for c in '"\\\n\r')  # ids as ingest admits them: quoting is all they need
        if not plain:
            cache = self._devices
            devices = [cache[d] for d in devices]
        q = '"' if plain else ""
        value, clean = np.asarray(value, np.float64)[order], np.asarray(clean, np.float64)[order]
        quality = np.asarray(quality, np.float64)[order]
        if np.isnan(quality).all() and np.isfinite(value).all():
            fields = self._common_fields(m, value, clean, q)
        else:
            vals, cleans, quals = _finite(value), _finite(clean), _finite(quality)
            fields = [f"{_K_RAW[c] + repr(v) + ',' if v == v else ''}{_K_CLEAN[c][1:] + repr(cl) + ',' if cl == cl else ''}"
                      f"{_K_Q[c][1:] + repr(qv) + ',' if qv == qv else ''}{_K_DEV[c][1:]}{q}"
                      for c, v, cl, qv in zip(m.tolist(), vals, cleans, quals)]
        # The batch as one string: per reading [head and space at a point's start] fields, device, then
        # "," or the point's time and a line break; one join and one split make the lines.
        n_out = len(m)
        start = np.full(n_out, "", object)
        start[np.r_[0, ends[:-1] + 1]] = [h + " " for h in head]
        end = np.full(n_out, q + ",", object)
        times = ts[order[ends]]
        uniq_t, t_inv = np.unique(times, return_inverse=True)  # a batch has few distinct reading times
        end[ends] = np.array([f"{q} {x}\n" for x in uniq_t.tolist()], object)[t_inv]
        pieces = np.empty(4 * n_out, object)
        pieces[0::4], pieces[1::4], pieces[2::4], pieces[3::4] = start, fields, devices, end
        return "".join(pieces.tolist()).split("\n")[:-1]

    @staticmethod
    def _common_fields(m: np.ndarray, value: np.ndarray, clean: np.ndarray, q: str) -> np.ndarray:
        """The fields of each reading up to its device, in the common batch (every raw value finite, no
        device quality): a batch holds few distinct (metric, value) pairs and the clean value is mostly
        the raw one, so each distinct text is formatted once. Values are told apart by their bits (-0.0
        is not 0.0)."""
        bits = value.view(np.int64)
        no_clean = ~np.isfinite(clean)  # left out
        same = clean.view(np.int64) == bits
        uniq_bits, v_inv = np.unique(bits, return_inverse=True)
        kinds, inv = np.unique((v_inv.reshape(-1) * M + m) * 2 + no_clean, return_inverse=True)
        reprs = [repr(x) for x in uniq_bits.view(np.float64).tolist()]
        text = []
        for k in kinds.tolist():
            r, c = reprs[k // (2 * M)], k // 2 % M
            text.append(f"{_K_RAW[c]}{r}{_K_DEV[c]}{q}" if k & 1 else f"{_K_RAW[c]}{r}{_K_CLEAN[c]}{r}{_K_DEV[c]}{q}")
        out = np.array(text, object)[inv.reshape(-1)]
        other = np.flatnonzero(~same & ~no_clean)  # a clean value that is not the raw one
        if len(other):
            out[other] = [f"{_K_RAW[c]}{v!r}{_K_CLEAN[c]}{cl!r}{_K_DEV[c]}{q}"
                          for c, v, cl in zip(m[other].tolist(), value[other].tolist(), clean[other].tolist())]
        return out

    def _heads_of(self, patients: np.ndarray, keys: np.ndarray | None) -> list[str]:
        if keys is None:
            heads = self._heads
            return [heads.get(p) or heads.setdefault(p, vitals_head(p)) for p in patients.tolist()]
        cache = self._key_heads
        kl = keys.tolist()
        if max(kl) >= len(cache):
            cache.extend([None] * (max(kl) + 1 - len(cache)))
        out = [cache[x] for x in kl]
        new = [i for i, h in enumerate(out) if h is None]
        if new:
            for i, h in zip(new, patient_heads("vitals", patients[new].tolist())):
                out[i] = cache[kl[i]] = h
        return out


def vitals_line(patient: str, metric: str, value: float, device: str, clean: float | None, quality: float | None,
                ts_ms: int) -> str:
    """One reading's point (see :class:`VitalsLines`)."""
    nan = float("nan")
    return VitalsLines().build(np.array([patient], object), np.array([METRIC_NAMES.index(metric)]),
                               np.array([float(value)]), np.array([nan if clean is None else float(clean)]),
                               np.array([nan if quality is None else float(quality)]), np.array([device], object),
                               np.array([ts_ms]))[0]


def retraction_line(patient: str, metric: str, reason: str, ts_ms: int) -> str:
    """A withdrawn reading: ``retractions,patient=<id> <metric>="<reason>"`` at the reading's time
    (alerts/history.py leaves the reading out of the history)."""
    return line("retractions", {"patient": patient}, {metric: reason}, ts_ms)


def score_lines(heads: Sequence[str], score: str, values: np.ndarray, partial: np.ndarray, reasons: Sequence[str],
                ts: np.ndarray) -> list[str]:
    """One score of many patients (NaN values left out): ``heads`` from :func:`scores_head`, ``reasons``
    in words (one string per row). Equal to :func:`score_line` of each row.

    >>> score_lines([scores_head("p 1")], "news2", np.array([5.0]), np.array([True]), ["spo2 +2"], np.array([1000]))
    ['scores,patient=p\\\\ 1,score=news2 value=5.0,partial=true,reasons="spo2 +2" 1000']
    """
    key = f",score={escape_tag(score)} value="
    escaped = _EscapedOnce()  # many patients share a reason text ("spo2 +2"): each is escaped once
    return [f"{h}{key}{v!r},partial={'true' if p else 'false'},reasons={escaped[r]} {t}"
            for h, v, p, r, t in zip(heads, _finite(values), np.asarray(partial, bool).tolist(), reasons,
                                     np.asarray(ts, np.int64).tolist()) if v == v]


def scores_head(patient: str) -> str:
    """``scores,patient=<id>``: the start of a patient's score points; cache it per patient."""
    return series_key("scores", {"patient": patient})


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
