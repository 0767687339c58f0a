"""HL7 v2 ORU^R40 as IHE PCD-04 (ACM, "Report Alert") monitors and gateways write it -> device alarms.

The message (IHE PCD TF-2, PCD-04): MSH (MSH-9 ``ORU^R40^ORU_R40``, MSH-21 ``IHE_PCD_ACM_001``), PID,
PV1, then per alarm an OBR (OBR-3 the alarm's identifier, OBR-4 ``196616^MDC_EVT_ALARM^MDC``,
OBR-7 its time, OBR-29 the parent alarm on updates) and the alarm's *facets*: OBX segments whose
OBX-4 is the source's containment (MDS.VMD.channel.metric) with the facet number appended:

* ``.1`` event identification: either OBX-3 ``196616^MDC_EVT_ALARM^MDC`` and the event in OBX-5
  (``196648^MDC_EVT_HI^MDC``, its text in CWE-9), as the TF-2 examples write it, or the event in
  OBX-3 and the monitor's text in OBX-5 (``196670^MDC_EVT_LO^MDC`` ... ``Low SpO2``), as several
  gateways do; OBX-8 carries the priority (PH/PM/PL/PN/PI), the alarm type (SP/ST/SA) and the
  abnormality (H/L); OBX-14 the event time, OBX-18 the device;
* ``.2`` source: the parameter (OBX-3, e.g. ``150456^MDC_PULS_OXIM_SAT_O2^MDC``) with its value
  (OBX-5), unit (OBX-6) and alarm limits (OBX-7), or ``68480^MDC_ATTR_ALERT_SOURCE^MDC`` naming it;
* ``68481^MDC_ATTR_EVENT_PHASE`` (start, start_only, continue, update, end, ...), ``68482^
  MDC_ATTR_ALARM_STATE`` (off, inactive, active, latched), ``68483^MDC_ATTR_ALARM_INACTIVATION_STATE``
  (enabled, audio-paused, audio-off, alarm-paused, alarm-off, alert-acknowledged), ``68484^
  MDC_ATTR_ALARM_PRIORITY``, ``68485^MDC_ATTR_ALERT_TYPE`` and ``MDC_ATTR_ALERT_TEXT``, recognised by
  their code or their reference id, whatever facet number they carry.

Facets are grouped by their OBX-4 prefix, so an OBR with several alarms (each its own prefix) gives
several; OBX segments that describe the device (MDS/VMD, four components, no facet) only lend their
OBX-18 to the alarms below them, as in PCD-01. One mapping (or an Invalid) per alarm; the ingest
makes a ``wardwatch.models.DeviceAlarm`` of it (``device_alarm_from_mapping``).

The alarm's identity is the device and the facets' OBX-4 prefix with OBR-29's parent alarm (EIP-2),
else OBR-3, else (for senders that give neither) the event and its source; a report's identity adds
what it says (time, phase, states, priority, text), so a resent report is the same event and shows
once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Mapping

from wardwatch.codec import Invalid, Limits, check_identifiers, check_time, resolve_patient, schema_error
from wardwatch.identifiers import to_identifier
from wardwatch.metrics_catalog import MDC_TO_METRIC, MDC_UNIT_TO_UCUM, mdc_code
from wardwatch.models import DeviceAlarm, DeviceAlarmState, Priority

from . import hl7v2
from .hl7v2 import CodeTable, Header, Parsed, comp, fld, reps, unescape

MESSAGE_TYPE = ("ORU", "R40")
MDC_EVT_ALARM = 196616
EVENT_PARTITION = range(3 * 65536, 4 * 65536)  # MDC partition 3: events (MDC_EVT_*)

# Facet attributes: MDC code and reference id(s). Some senders write MDC_ATTR_EVT_PHASE.
ATTRS = {
    "source": (68480, ("MDC_ATTR_ALERT_SOURCE", "MDC_ATTR_ALARM_SOURCE")),
    "phase": (68481, ("MDC_ATTR_EVENT_PHASE", "MDC_ATTR_EVT_PHASE")),
    "alarm_state": (68482, ("MDC_ATTR_ALARM_STATE",)),
    "inactivation": (68483, ("MDC_ATTR_ALARM_INACTIVATION_STATE",)),
    "priority": (68484, ("MDC_ATTR_ALARM_PRIORITY",)),
    "alert_type": (68485, ("MDC_ATTR_ALERT_TYPE",)),
    "text": (None, ("MDC_ATTR_ALERT_TEXT", "MDC_ATTR_ALARM_TEXT", "MDC_ATTR_EVENT_TEXT")),
}
_BY_NAME = {name: attr for attr, (_, names) in ATTRS.items() for name in names}
_BY_CODE = {code: attr for attr, (code, _) in ATTRS.items() if code is not None}

PRIORITIES = {"PH": Priority.high, "PM": Priority.medium, "PL": Priority.low, "PN": Priority.low,
              "PI": Priority.low, "HIGH": Priority.high, "HI": Priority.high, "MEDIUM": Priority.medium,
              "MED": Priority.medium, "LOW": Priority.low, "LO": Priority.low, "NONE": Priority.low,
              "INFO": Priority.low, "MDC_ALARM_PRIO_HI": Priority.high, "MDC_ALARM_PRIO_MED": Priority.medium,
              "MDC_ALARM_PRIO_LO": Priority.low}
ALERT_TYPES = {"SP": "physiological", "ST": "technical", "SA": "advisory"}
ENDED_PHASES = frozenset({"end", "stop", "reset"})
ENDED_STATES = frozenset({"inactive", "off"})


def is_alarm_message(header: Header) -> bool:
    """MSH-9 is ORU^R40, read with the component separator MSH-2 declares."""
    return tuple(comp(header.message_type, header.delims, i).upper() for i in (1, 2)) == MESSAGE_TYPE


def _attr(value: str, d) -> str | None:
    """Which facet attribute OBX-3 names, by reference id (either component) or MDC code."""
    for c in (comp(value, d, 2), comp(value, d, 1), comp(value, d, 5), comp(value, d, 4)):
        a = _BY_NAME.get(c.upper())
        if a:
            return a
    code = comp(value, d, 1)
    return _BY_CODE.get(int(code)) if code.isascii() and code.isdigit() else None  # int() refuses "²"


def _code_and_name(value: str, d) -> tuple[int | None, str]:
    """(MDC code, reference id or code as written) of a CWE: ``196648^MDC_EVT_HI^MDC``, ``MDC_EVT_HI``."""
    c1, c2 = comp(value, d, 1), comp(value, d, 2)
    code = mdc_code(c1) if c1 else None
    if code is None and c2:
        code = mdc_code(c2)
    name = c2 if c2.upper().startswith("MDC") else (c1 if c1.upper().startswith("MDC") else (c2 or c1))
    return code, name


def _is_event(value: str, d) -> bool:
    code, name = _code_and_name(value, d)
    return (code is not None and code in EVENT_PARTITION) or name.upper().startswith("MDC_EVT_")


def _facet(sub_id: str) -> tuple[str, int] | None:
    """OBX-4 ``1.3.1.150456.1`` -> (``1.3.1.150456``, 1); None for the four-part device OBXs."""
    parts = sub_id.strip().split(".")
    if len(parts) < 5 or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    return ".".join(parts[:-1]), int(parts[-1])


def _text(value: str, d) -> str:
    return " ".join(unescape(reps(value, d)[0] if value else "", d).split())


def _hash(*parts: object) -> str:
    return hashlib.blake2b("|".join(str(p) for p in parts).encode(), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class AlarmItem:
    """A monitor's alarm among a message's parsed items: ingest validates it as a device alarm
    (``ingest.pipeline.Batch.add``), not as a reading, whichever way the message came."""

    mapping: Any


def parse_any_message(text: str, codes: CodeTable | None = None, default_tz: tzinfo | None = None) -> Parsed:
    """One HL7 v2 message as ingest takes it: an ORU^R40 as the monitor's alarms (each parsed alarm
    an :class:`AlarmItem`), anything else as readings (``hl7v2.parse_message``, which refuses what
    is not ORU^R01). Raises Invalid when the whole message is unusable."""
    if not is_alarm_message(hl7v2.header_of(text)):
        return hl7v2.parse_message(text, codes, default_tz)
    parsed = parse_alarm_message(text, default_tz)
    parsed.items = [i if isinstance(i, Invalid) else AlarmItem(i) for i in parsed.items]
    return parsed


def parse_alarm_message(text: str, default_tz: tzinfo | None = None) -> Parsed:
    """The device-alarm mappings (or Invalids) of one ORU^R40 message, each with its OBR; raises
    Invalid when the whole message is unusable."""
    default_tz = default_tz or hl7v2.default_zone()
    msg = hl7v2.parse(text)
    header = hl7v2.header_of(text)
    d = msg.delims
    msh = msg.segments[0]
    mtype = tuple(comp(fld(msh, 9), d, i).upper() for i in (1, 2))
    if mtype != MESSAGE_TYPE:
        raise Invalid("unsupported", f"message type {'^'.join(mtype)[:20]!r} is not ORU^R40")
    if header.version and header.version not in hl7v2.SUPPORTED_VERSIONS:
        raise Invalid("unsupported", f"HL7 version {header.version[:10]!r} is not supported")
    patient = hl7v2._patient(msg)
    location = hl7v2._location(msg)
    msh_time = fld(msh, 7)
    _, msh_zone = hl7v2._split_zone(msh_time.split(d.comp)[0]) if msh_time else ("", None)
    tz = msh_zone or default_tz
    sender = hl7v2._device_field(fld(msh, 3), d)

    # OBR groups: (ordinal, OBR, [OBX ...])
    groups: list[tuple[int, list[str], list[list[str]]]] = []
    for seg in msg.segments:
        if seg[0] == "OBR":
            groups.append((len(groups) + 1, seg, []))
        elif seg[0] == "OBX" and groups:
            groups[-1][2].append(seg)
    out = Parsed(header)
    if not groups:
        raise Invalid("schema", "an ORU^R40 message needs an OBR per alarm; there is none")
    for n, obr, obxs in groups:
        for item in _alarms_of(n, obr, obxs, d, tz, msh_time, sender, patient, location):
            out.items.append(item)
            out.where.append(("OBR", n))
    return out


def _alarms_of(n: int, obr: list[str], obxs: list[list[str]], d, tz, msh_time: str, sender: str,
               patient: str | None, location: dict | None) -> list[dict | Invalid]:
    raw = "|".join(obr)
    devices: dict[tuple[int, ...], str] = {}
    facets: dict[str, dict[int | str, list[str]]] = {}  # prefix -> facet number or attribute -> OBX
    order: list[str] = []
    for seg in obxs:
        sub = fld(seg, 4)
        own = hl7v2._device_field(fld(seg, 18), d)
        f = _facet(sub)
        if f is None:
            level = hl7v2._hierarchy(sub)
            if own and level is not None:
                devices[level] = own
            continue
        prefix, number = f
        if prefix not in facets:
            facets[prefix] = {}
            order.append(prefix)
        g = facets[prefix]
        attr = _attr(fld(seg, 3), d)
        if attr is not None:
            g.setdefault(attr, seg)
        elif _is_event(fld(seg, 3), d) and "event" not in g:
            g["event"] = seg
        else:
            g.setdefault(number, seg)
    # An alarm is a prefix with an event identification (by its code, or as facet 1).
    alarms = [p for p in order if "event" in facets[p] or 1 in facets[p]]
    if not alarms:
        return [Invalid("schema", f"OBR {n} has no alarm: no OBX with the event identification "
                                  "(MDC_EVT_*, OBX-4 ending .1)", raw)]
    out: list[dict | Invalid] = []
    for prefix in alarms:
        try:
            out.append(_alarm(prefix, facets[prefix], obr, d, tz, msh_time, sender, devices, patient, location))
        except Invalid as exc:
            out.append(Invalid(exc.reason, exc.detail, raw))
    return out


def _alarm(prefix: str, g: dict, obr: list[str], d, tz, msh_time: str, sender: str,
           devices: dict[tuple[int, ...], str], patient: str | None, location: dict | None) -> dict:
    ev = g.get("event") or g[1]
    ev3, ev5 = fld(ev, 3), fld(ev, 5)
    kind = comp(fld(ev, 2), d, 1).upper()
    text = ""
    code, name = _code_and_name(ev3, d)
    if code == MDC_EVT_ALARM and ev5 and _is_event(ev5, d):
        # TF-2: OBX-3 MDC_EVT_ALARM, the event in OBX-5 (CWE), its text in CWE-9 (original text)
        code, name = _code_and_name(ev5, d)
        text = comp(ev5, d, 9) or ""
    elif ev5 and kind in ("ST", "TX", "FT", ""):
        # The event in OBX-3; OBX-5 the monitor's text (or, CWE-like, a source)
        if comp(ev5, d, 2) or comp(ev5, d, 3):
            pass
        else:
            text = _text(ev5, d)
    if code is None and not name:
        raise Invalid("schema", "the alarm's event identification (OBX-3/OBX-5) names no event")

    # OBX-8 of any facet: priority, alarm type, abnormality (repetitions)
    device_priority, alert_type = "", ""
    for seg in [ev] + [s for k, s in g.items() if s is not ev]:
        for r in reps(fld(seg, 8), d):
            flag = comp(r, d, 1).upper()
            if flag in ("PH", "PM", "PL", "PN", "PI", "PU") and not device_priority:
                device_priority = flag
            elif flag in ALERT_TYPES and not alert_type:
                alert_type = ALERT_TYPES[flag]

    def value_of(attr: str) -> str:
        seg = g.get(attr)
        if seg is None:
            return ""
        v = fld(seg, 5)
        return (comp(v, d, 2) or comp(v, d, 1)) if comp(v, d, 2) else _text(v, d)

    phase = value_of("phase").lower()
    alarm_state = value_of("alarm_state").lower()
    inactivation = value_of("inactivation").lower()
    if g.get("priority") is not None:
        device_priority = value_of("priority").upper() or device_priority
    if g.get("alert_type") is not None:
        t = value_of("alert_type").upper()
        alert_type = ALERT_TYPES.get(t, t.lower()[:20]) or alert_type
    if g.get("text") is not None:
        text = value_of("text") or text

    # Source: MDC_ATTR_ALERT_SOURCE naming it, or facet 2 as the parameter with its value and limits
    source, source_code, source_value, source_unit, limits = "", None, None, "", ""
    src = g.get("source")
    if src is not None:
        source_code, source = _code_and_name(fld(src, 5), d)
    elif g.get(2) is not None:
        s2 = g[2]
        source_code, source = _code_and_name(fld(s2, 3), d)
        if comp(fld(s2, 2), d, 1).upper() in ("NM", "SN") and fld(s2, 5):
            try:
                source_value = hl7v2._value(comp(fld(s2, 2), d, 1).upper(), fld(s2, 5), d)
            except Invalid:
                source_value = None
        u1, u2 = comp(fld(s2, 6), d, 1), comp(fld(s2, 6), d, 2)
        ucum = MDC_UNIT_TO_UCUM.get(mdc_code(u1) if u1 else None) or MDC_UNIT_TO_UCUM.get(mdc_code(u2) if u2 else None)
        source_unit = ucum or u1 or u2
        limits = unescape(fld(s2, 7), d).strip()[:40]
    elif ev5 and code is not None and (comp(ev5, d, 2) or comp(ev5, d, 3)) and not _is_event(ev5, d):
        source_code, source = _code_and_name(ev5, d)  # the event in OBX-3 and its source in OBX-5
    metric = MDC_TO_METRIC.get(source_code) if source_code is not None else None

    # Device: OBX-18 of a facet, else of the nearest device OBX above it (OBX-4 containment), else MSH-3
    device = next((hl7v2._device_field(fld(s, 18), d) for s in [ev] + list(g.values())
                   if hl7v2._device_field(fld(s, 18), d)), "")
    device = device or hl7v2.device_above(hl7v2._hierarchy(prefix) or (), devices) or sender
    if not device:
        raise Invalid("schema", "no device: neither OBX-18 nor MSH-3 names one")
    device_id = to_identifier(device)

    ts = hl7v2.parse_ts(fld(ev, 14) or fld(obr, 7) or msh_time, tz, d.comp)
    # OBR-29 (EIP): the parent alarm's filler id (EIP-2, written with sub-components); else OBR-3 (EI).
    # Their entity identifier alone (EI-1): the device is part of the identity already. With the
    # facets' OBX-4 prefix, so that two alarms an OBR may carry stay two.
    p29 = fld(obr, 29).split(d.comp)
    parent = unescape(p29[1].split(d.sub)[0], d).strip() if len(p29) > 1 else ""
    filler = parent or comp(fld(obr, 3), d, 1)
    identity = (f"alarm|{filler}|{prefix}" if filler else f"event|{code or name}|{source_code or source}|{prefix}")
    alarm_id = "da-" + _hash(device_id, identity)
    ended = phase in ENDED_PHASES or alarm_state in ENDED_STATES
    priority = PRIORITIES.get(device_priority.upper(), Priority.medium)
    event = name if name.upper().startswith("MDC") else (str(code) if code is not None else name)
    item: dict[str, Any] = {
        "id": alarm_id, "patient": patient, "device": device_id, "event": event[:80], "event_code": code,
        "source": source[:80], "source_metric": metric.value if metric is not None else None,
        "source_value": source_value, "source_unit": source_unit[:32], "limits": limits,
        "priority": priority.value, "device_priority": device_priority[:40], "alert_type": alert_type,
        "phase": phase[:20], "alarm_state": alarm_state[:20], "inactivation": inactivation[:30],
        "state": (DeviceAlarmState.ended if ended else DeviceAlarmState.active).value, "text": text[:200], "ts": ts,
    }
    item["event_id"] = f"{alarm_id}:" + _hash(ts, phase, alarm_state, inactivation, device_priority, text, source_value)
    if location:
        item["location"] = location
    return item


def device_alarm_from_mapping(d: Mapping[str, Any], now_ms: int, limits: Limits, registry=None) -> DeviceAlarm:
    """Validate one parsed alarm as a reading is validated: identifiers, device time, the patient
    (PID-3, or the device's assignment in the registry; the two must agree)."""
    device, patient = d.get("device"), d.get("patient")
    check_identifiers({"device": device, "patient": patient})
    check_time(int(d["ts"]), now_ms, limits)
    patient = resolve_patient(device, patient, registry)
    try:
        return DeviceAlarm(**{**d, "patient": patient, "received": now_ms})
    except Exception as exc:  # pydantic ValidationError
        raise schema_error(exc, "alarm") from None
