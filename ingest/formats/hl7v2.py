"""HL7 v2 ORU^R01 as IHE PCD-01 devices send it -> reading mappings.

PID-3 is the patient, OBX-3 the IEEE 11073 MDC code (``150456^MDC_PULS_OXIM_SAT_O2^MDC``), OBX-5 the
value, OBX-6 the unit (MDC or UCUM), OBX-14 (else OBR-7, else MSH-7) the time, OBX-18 the device
(else MSH-3, the sending application). MLLP framing characters are tolerated. Parsing is by the
``hl7`` package.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import hl7

from wardwatch.metrics_catalog import MDC_TO_METRIC

from wardwatch.codec import Invalid


def split_messages(text: str) -> list[str]:
    """Several messages in one body: MLLP frames, or MSH segments one after another."""
    text = text.replace("\x0b", "").replace("\x1c", "\n").replace("\r\n", "\r").replace("\n", "\r")
    msgs, cur = [], []
    for seg in text.split("\r"):
        if not seg.strip():
            continue
        if seg.startswith("MSH") and cur:
            msgs.append("\r".join(cur))
            cur = []
        cur.append(seg)
    if cur:
        msgs.append("\r".join(cur))
    return msgs


def parse_ts(value: str) -> int:
    value = value.strip()
    if not value:
        raise Invalid("schema", "no observation time (OBX-14, OBR-7 or MSH-7)")
    tz = timezone.utc
    for sign in "+-":
        if sign in value[8:]:
            i = value.rindex(sign)
            value, off = value[:i], value[i + 1:]
            if len(off) != 4 or not off.isdigit():
                raise Invalid("schema", "bad time zone offset in HL7 timestamp")
            delta = timedelta(hours=int(off[:2]), minutes=int(off[2:]))
            tz = timezone(delta if sign == "+" else -delta)
    frac = 0.0
    if "." in value:
        value, f = value.split(".", 1)
        frac = float("0." + f) if f.isdigit() else 0.0
    fmt = {8: "%Y%m%d", 10: "%Y%m%d%H", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}.get(len(value))
    if fmt is None or not value.isdigit():
        raise Invalid("schema", f"HL7 timestamp {value[:20]!r} is not YYYYMMDD[HH[MM[SS]]]")
    dt = datetime.strptime(value, fmt).replace(tzinfo=tz)
    return int((dt.timestamp() + frac) * 1000)


def _field(seg, i: int) -> str:
    try:
        return str(seg[i]) if len(seg) > i else ""
    except Exception:
        return ""


def message_readings(text: str) -> list[dict | Invalid]:
    """One reading mapping (or an Invalid) per numeric OBX of one ORU^R01 message."""
    try:
        msg = hl7.parse(text)
    except Exception as exc:
        raise Invalid("schema", f"not an HL7 v2 message: {type(exc).__name__}") from None
    try:
        msh = msg.segment("MSH")
    except KeyError:
        raise Invalid("schema", "no MSH segment") from None
    mtype = _field(msh, 9)
    if not mtype.startswith("ORU^R01"):
        raise Invalid("unsupported", f"message type {mtype[:20]!r} is not ORU^R01")
    patient = None
    try:
        patient = _field(msg.segment("PID"), 3).split("^")[0] or None
    except KeyError:
        pass
    msh_time = _field(msh, 7)
    sender = _field(msh, 3).split("^")[0]
    obr_time = ""
    try:
        obr_time = _field(msg.segment("OBR"), 7)
    except KeyError:
        pass
    out: list[dict | Invalid] = []
    for seg in msg.segments("OBX") if any(str(s[0]) == "OBX" for s in msg) else []:
        if _field(seg, 2) not in ("NM", "SN"):
            continue  # PCD-01 also reports device settings and text: not vital-sign numerics
        code = _field(seg, 3).split("^")[0].split("&")[0]
        if not code.isdigit() or int(code) not in MDC_TO_METRIC:
            out.append(Invalid("unknown_metric", f"MDC code {code[:20]!r} is not a known vital sign", str(seg)))
            continue
        raw = _field(seg, 5)
        try:
            value = float(raw)
        except ValueError:
            out.append(Invalid("schema", "OBX-5 is not a number", str(seg)))
            continue
        try:
            ts = parse_ts(_field(seg, 14) or obr_time or msh_time)
        except Invalid as exc:
            out.append(Invalid(exc.reason, exc.detail, str(seg)))
            continue
        unit = _field(seg, 6)
        unit_id = unit.split("^")
        unit = unit_id[1] if len(unit_id) > 1 and unit_id[1] else unit_id[0]
        device = _field(seg, 18).split("^")[0] or sender
        out.append({"patient": patient, "device": device or None, "metric": MDC_TO_METRIC[int(code)].value,
                    "value": value, "unit": unit, "ts": ts})
    if not out:
        raise Invalid("schema", "no numeric OBX segment")
    return out
