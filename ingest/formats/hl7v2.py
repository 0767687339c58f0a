"""HL7 v2 ORU^R01 as IHE PCD-01 (DEC) devices and gateways write it -> reading mappings; HL7 ACKs.

What is understood (docs/ingest.md, "HL7 v2"):

* segments ended by CR, LF or CRLF; the delimiters the message declares in MSH-1/MSH-2; the escape
  sequences ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\`` and ``\\Xhh\\`` (formatting escapes become a space); ``""``
  (an explicit null) read as empty; repetitions (``~``) in PID-3 and OBX-18;
* the character set each message's MSH-18 declares (``8859/1`` ... ``8859/15``), else UTF-8 (``decode``);
* PID-3: the repetition whose identifier type (CX-5) is MR, else PI, else the first; its CX-1 is
  the patient; the assigning authority (CX-4, with ``&`` sub-components) is allowed and not part
  of the id. PV1-3 (point of care^room^bed) is read into ``location``;
* OBX-3: an MDC code as a number, a reference id (``MDC_...``), partition-hex (``0002-4182``) or
  partition::term, in the first or the alternate triplet (OBX-3.4..6), or a code of the code
  table (``wardwatch/data/hl7_codes.toml`` merged with ``WARDWATCH_HL7_CODE_TABLE``);
* OBX-2 NM and SN (``=``, or no comparator) numerics (a vital-sign code with a value of another type
  is rejected, not skipped); OBX-11 X (no value) is skipped; a vital sign with D or W (the device
  withdrew it) becomes a withdrawal (``wardwatch.codec.Retracted``), acknowledged AA: the worker
  stores it and the history leaves that reading out from then on;
* OBX-6 as UCUM or MDC (number, reference id, partition-hex), or a code-table unit;
* times (OBX-14, else OBR-7, else MSH-7): ``YYYYMMDD[HH[MM[SS[.S...]]]][+/-ZZZZ]``; a time without a
  zone takes MSH-7's zone, else the setting ``hl7_local_timezone`` (UTC by default);
* the device: OBX-18 of the OBX, else of its nearest ancestor in the OBX-4 containment hierarchy
  (MDS.VMD.channel.metric, e.g. the MDS OBX ``1.0.0.0`` that carries the EUI-64), else MSH-3; the
  field as written (first repetition, trailing empty components dropped, delimiters made standard)
  goes through ``wardwatch.identifiers.to_identifier``, so ``VSP^080019FFFE134535^EUI-64`` is the
  device ``x_VSP:080019FFFE134535:EUI-64`` and two devices never become one.

``ack_messages`` builds the HL7 acknowledgements for a message's outcome as MSH-15/MSH-16 ask
(original mode AA/AE/AR when both are empty; enhanced mode CA/CE/CR then AA/AE/AR), with MSA and
ERR segments; the MLLP listener (ingest/mllp.py) sends them, and ``/v1/hl7v2`` can.
"""

from __future__ import annotations

import codecs
import json
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Iterable

from wardwatch.codec import Invalid, Retracted
from wardwatch.identifiers import to_identifier
from wardwatch.metrics_catalog import MDC_TO_METRIC, MDC_UNIT_TO_UCUM, SOURCE_RANK, Metric, mdc_code

# Package data of the core, so it ships in the wheel, not a path beside the checkout.
SHIPPED_CODE_TABLE = Path(str(files("wardwatch") / "data" / "hl7_codes.toml"))
SUPPORTED_VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2", "2.9")


# ------------------------------------------------------------------------------------ code table


@dataclass(frozen=True)
class CodeTable:
    observations: dict[str, dict[str, Metric]]  # coding system (upper case, "*" any) -> code -> metric
    units: dict[str, dict[str, str]]  # coding system -> code -> UCUM

    def metric(self, system: str, code: str) -> Metric | None:
        for s in (system.strip().upper(), "*"):
            m = self.observations.get(s, {}).get(code)
            if m is not None:
                return m
        return None

    def unit(self, system: str, code: str) -> str | None:
        for s in (system.strip().upper(), "*"):
            u = self.units.get(s, {}).get(code)
            if u is not None:
                return u
        return None


def _read_table(path: Path) -> dict:
    text = path.read_text("utf-8")
    return json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)


@lru_cache(maxsize=8)
def code_table(extra: str | None = None) -> CodeTable:
    """The shipped table with the operator's (``WARDWATCH_HL7_CODE_TABLE``) merged over it."""
    obs: dict[str, dict[str, Metric]] = {}
    units: dict[str, dict[str, str]] = {}
    for path in [SHIPPED_CODE_TABLE] + ([Path(extra)] if extra else []):
        doc = _read_table(path)
        for system, codes in (doc.get("observations") or {}).items():
            tab = obs.setdefault(system.upper(), {})
            for code, metric in codes.items():
                if metric:
                    tab[str(code)] = Metric(metric)  # a bad metric name fails at start, not per message
                else:
                    tab.pop(str(code), None)
        for system, codes in (doc.get("units") or {}).items():
            tab2 = units.setdefault(system.upper(), {})
            for code, unit in codes.items():
                if unit:
                    tab2[str(code)] = str(unit)
                else:
                    tab2.pop(str(code), None)
    return CodeTable(obs, units)


def default_code_table() -> CodeTable:
    from wardwatch.settings import get_settings

    path = get_settings().hl7_code_table
    return code_table(str(path) if path else None)


@lru_cache(maxsize=8)
def zone(name: str) -> tzinfo:
    """The zone of device times written without one (``hl7_local_timezone``)."""
    if name.upper() in ("UTC", "Z", ""):
        return timezone.utc
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def default_zone() -> tzinfo:
    from wardwatch.settings import get_settings

    return zone(get_settings().hl7_local_timezone)


# --------------------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Delims:
    field: str = "|"
    comp: str = "^"
    rep: str = "~"
    esc: str = "\\"
    sub: str = "&"


STD = Delims()
_SEG_ID = re.compile(r"^[A-Z][A-Z0-9]{2}$")


# MLLP framing is <VT> message <FS><CR>. A VT or FS is framing only where a frame starts or ends;
# anywhere else it is data, which then fails the identifier rule where it lands. Read as a segment
# break, an FS inside PID-3 cut the patient id short and filed the readings under another patient.
FRAME_END_NEXT = "\r\n\x0b"  # what may follow an FS that ends a frame: its CR (LF as some engines relay it), the next VT
_FRAME_END = re.compile(f"\x1c(?=[{FRAME_END_NEXT}]|\\Z)")
_FRAME_START = re.compile(r"(\A|[\r\n])\x0b+")
_BOM = re.compile("(\\A|[\r\n])\ufeff+")  # a UTF-8 byte order mark before a message (files saved on Windows)


def unframe(text: str) -> str:
    """MLLP framing bytes at frame boundaries and byte order marks before a message removed, line
    ends as HL7's CR."""
    text = _BOM.sub(r"\1", _FRAME_START.sub(r"\1", _FRAME_END.sub("\n", text)))
    return text.replace("\r\n", "\r").replace("\n", "\r")


BATCH_SEGMENTS = ("FHS", "BHS", "BTS", "FTS")
_MSH_AT = re.compile(rb"(?:\A|(?<=[\r\n\x0b]))(?:\xef\xbb\xbf)?MSH")


def _charset(msh: bytes) -> str:
    """The Python codec of MSH-18 (HL7 table 0211: ``8859/1`` ... ``8859/15``, ``UNICODE UTF-8``,
    ``ASCII``) of the message beginning at ``msh``; UTF-8 when none, or one that is not ASCII-compatible."""
    line = re.split(rb"[\r\n]", msh, maxsplit=1)[0]
    if msh.startswith(b"\xef\xbb\xbf") or len(line) < 8:
        return "utf-8"
    f = line[3:].split(line[3:4])  # f[k] = MSH-(k+1)
    declared = f[17].split(line[5:6])[0].split(line[4:5])[0] if len(f) > 17 else b""
    name = declared.strip().decode("ascii", "replace").upper()
    if name.startswith("8859/") and name[5:].isdecimal():
        try:
            return codecs.lookup(f"iso8859-{name[5:]}").name
        except LookupError:
            pass
    return "utf-8"


def decode(raw: bytes) -> str:
    """A body or MLLP frame as text, each message in the character set its MSH-18 declares (UTF-8
    when none): read as UTF-8, Latin-1 ids lost their letters to U+FFFD and two devices became one."""
    starts = [m.start() for m in _MSH_AT.finditer(raw)]
    if not starts:
        return raw.decode("utf-8", "replace")
    cuts = [0] + starts[1:] + [len(raw)]
    return "".join(raw[a:b].decode(_charset(raw[s:b]), "replace") for a, b, s in zip(cuts, cuts[1:], starts))


def split_messages(text: str) -> list[str]:
    """Several messages in one body: MLLP frames, or MSH segments one after another; the envelope of
    an HL7 batch file (FHS, BHS ... BTS, FTS) is no message and is left out."""
    text = unframe(text)
    msgs, cur = [], []
    for seg in text.split("\r"):
        if not seg.strip() or seg[:3] in BATCH_SEGMENTS:
            continue
        if seg.startswith("MSH") and cur:
            msgs.append("\r".join(cur))
            cur = []
        cur.append(seg)
    if cur:
        msgs.append("\r".join(cur))
    return msgs


@dataclass
class BatchEnvelope:
    """The FHS/BHS of an HL7 batch, as written, for the batch of acknowledgements that answers it."""

    sending_app: str = ""  # BHS-3, else FHS-3: the answer's receiving application
    sending_facility: str = ""  # BHS-4, else FHS-4
    file_control_id: str = ""  # FHS-11, echoed in the answer's FHS-12
    batch_control_id: str = ""  # BHS-11, echoed in the answer's BHS-12


def batch_envelope(text: str) -> BatchEnvelope | None:
    """The envelope of ``text`` when it is an HL7 batch (its first segment is FHS or BHS), else None."""
    heads: dict[str, list[str]] = {}
    for line in unframe(text).split("\r"):
        if not line.strip():
            continue
        if line[:3] not in ("FHS", "BHS") or len(line) < 4:
            break
        heads.setdefault(line[:3], line[3:].split(line[3]))  # [k] = FHS-(k+1) / BHS-(k+1), as in MSH
    if not heads:
        return None
    fhs, bhs = heads.get("FHS", []), heads.get("BHS", [])
    return BatchEnvelope(sending_app=fld(bhs, 2) or fld(fhs, 2), sending_facility=fld(bhs, 3) or fld(fhs, 3),
                         file_control_id=fld(fhs, 10), batch_control_id=fld(bhs, 10))


def ack_batch(acks: list[str], envelope: BatchEnvelope, control_id: str, now: datetime) -> str:
    """``acks`` as one HL7 batch (FHS BHS ... BTS FTS), the answer to a batch (HL7 v2 ch. 2, batch
    protocol): BHS-12/FHS-12 name the batch and file it answers, BTS-1 counts the ACK messages."""
    when = now.strftime("%Y%m%d%H%M%S") + "+0000"

    def head(name: str, ref: str) -> str:
        return "|".join([name, "^~\\&", "WARDWATCH", "WARDWATCH", envelope.sending_app, envelope.sending_facility,
                         when, "", "", "", control_id, ref]).rstrip("|")

    return (head("FHS", envelope.file_control_id) + "\r" + head("BHS", envelope.batch_control_id) + "\r"
            + "".join(acks) + f"BTS|{len(acks)}\rFTS|1\r")


@dataclass
class Message:
    delims: Delims
    segments: list[list[str]]  # fields as written (escaped); for MSH, [0]="MSH", [1]=MSH-1, [2]=MSH-2, ...

    def all(self, name: str) -> list[list[str]]:
        return [s for s in self.segments if s[0] == name]

    def first(self, name: str) -> list[str] | None:
        for s in self.segments:
            if s[0] == name:
                return s
        return None


def parse(text: str) -> Message:
    text = unframe(text)
    lines = [ln for ln in text.split("\r") if ln.strip()]
    if not lines or not lines[0].startswith("MSH") or len(lines[0]) < 8:
        raise Invalid("schema", "not an HL7 v2 message: it does not begin with an MSH segment")
    head = lines[0]
    fs, enc = head[3], head[4:8]
    if len(set(fs + enc[:4])) != 5 or any(c.isalnum() for c in fs + enc):
        raise Invalid("schema", "MSH-1/MSH-2 do not declare five distinct delimiters")
    d = Delims(fs, enc[0], enc[1], enc[2], enc[3])
    rest = head[4:].split(fs)
    segs = [["MSH", fs] + rest]
    for ln in lines[1:]:
        parts = ln.split(fs)
        # A line that is no segment is most often a field broken by a stray line break (monitors
        # put them in OBX-5 text): it is skipped, so the message's readings are not lost for it.
        if _SEG_ID.match(parts[0]):
            segs.append(parts)
    n_msh = sum(1 for seg in segs if seg[0] == "MSH")
    if n_msh > 1:  # read as one message, the later messages' readings went to the first one's PID
        raise Invalid("unsupported", f"{n_msh} messages (MSH segments) run together: one message per MLLP frame is taken")
    return Message(d, segs)


def fld(seg: list[str] | None, i: int) -> str:
    """Field ``i`` as written (escaped); ``""`` (an explicit null) is empty."""
    if seg is None or len(seg) <= i:
        return ""
    v = seg[i]
    return "" if v == '""' else v


def unescape(text: str, d: Delims) -> str:
    if d.esc not in text:
        return "" if text == '""' else text
    out, i, e = [], 0, d.esc
    while i < len(text):
        ch = text[i]
        if ch == e:
            j = text.find(e, i + 1)
            if j < 0:
                out.append(text[i:])
                break
            seq = text[i + 1:j]
            i = j + 1
            simple = {"F": d.field, "S": d.comp, "T": d.sub, "R": d.rep, "E": e}
            if seq in simple:
                out.append(simple[seq])
            elif seq[:1] == "X" and len(seq) > 1 and len(seq) % 2 == 1:
                try:
                    out.append(bytes.fromhex(seq[1:]).decode("utf-8", "replace"))
                except ValueError:
                    out.append(" ")
            elif seq in ("H", "N"):
                pass  # highlighting on/off
            else:
                out.append(" ")  # .br, .sp, .in and other formatting: a space
            continue
        out.append(ch)
        i += 1
    s = "".join(out)
    return "" if s == '""' else s


def reps(value: str, d: Delims) -> list[str]:
    return [r for r in value.split(d.rep)] if value else []


def comps(value: str, d: Delims) -> list[str]:
    """Components, unescaped (sub-components kept, joined by ``&``)."""
    return [unescape(c, d) for c in value.split(d.comp)] if value else []


def comp(value: str, d: Delims, i: int, strip: bool = True) -> str:
    """Component ``i`` (1-based), unescaped and stripped (unless told not to); its first sub-component."""
    parts = value.split(d.comp) if value else []
    if len(parts) < i:
        return ""
    c = unescape(parts[i - 1].split(d.sub)[0], d)
    return c.strip() if strip else c


def canonical(value: str, d: Delims) -> str:
    """One repetition as written, in standard delimiters, literal delimiters re-escaped, trailing empty
    components and sub-components dropped, surrounding spaces trimmed: the device id before mapping."""
    def esc(s: str) -> str:
        return (s.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\")
                 .replace("&", "\\T\\").replace("~", "\\R\\"))

    cs = []
    for c in value.split(d.comp):
        subs = [esc(unescape(s, d).strip()) for s in c.split(d.sub)]
        while subs and not subs[-1]:
            subs.pop()
        cs.append("&".join(subs))
    while cs and not cs[-1]:
        cs.pop()
    return "^".join(cs)


def parse_ts(value: str, default_tz: tzinfo = timezone.utc, comp: str = "^") -> int:
    """HL7 DTM/TS -> epoch ms: ``YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]``; TS's ``^precision``
    (after the message's component separator ``comp``) ignored."""
    value = value.split(comp)[0].strip()
    if not value:
        raise Invalid("schema", "no observation time (OBX-14, OBR-7 or MSH-7)")
    body, tz = _split_zone(value)
    tz = tz or default_tz
    frac = 0.0
    if "." in body:
        body, f = body.split(".", 1)
        if not (f.isascii() and f.isdigit()):  # isdigit alone is true for "²", which float() refuses
            raise Invalid("schema", f"HL7 timestamp {value[:24]!r} has a bad fraction of a second")
        frac = float("0." + f)
    fmt = {4: "%Y", 6: "%Y%m", 8: "%Y%m%d", 10: "%Y%m%d%H", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}.get(len(body))
    if fmt is None or not body.isdigit():
        raise Invalid("schema", f"HL7 timestamp {value[:24]!r} is not YYYYMMDD[HH[MM[SS[.S]]]][+/-ZZZZ]")
    try:
        dt = datetime.strptime(body, fmt).replace(tzinfo=tz)
    except ValueError:
        raise Invalid("schema", f"HL7 timestamp {value[:24]!r} is not a date") from None
    return int(round((dt.timestamp() + frac) * 1000))


def _split_zone(value: str) -> tuple[str, tzinfo | None]:
    for sign in "+-":
        i = value.find(sign, 4)
        if i >= 0:
            off = value[i + 1:]
            if len(off) != 4 or not (off.isascii() and off.isdigit()) or int(off[:2]) > 14 or int(off[2:]) > 59:
                raise Invalid("schema", f"bad time zone offset in HL7 timestamp {value[:24]!r}")
            delta = timedelta(hours=int(off[:2]), minutes=int(off[2:]))
            return value[:i], timezone(delta if sign == "+" else -delta)
    return value, None


# --------------------------------------------------------------------------------------- mapping


@dataclass
class Header:
    """What an acknowledgement needs from MSH (also when the rest of the message is unusable)."""

    control_id: str = ""  # MSH-10
    sending_app: str = ""  # MSH-3 as written
    sending_facility: str = ""  # MSH-4
    receiving_app: str = ""  # MSH-5
    receiving_facility: str = ""  # MSH-6
    message_type: str = ""  # MSH-9
    processing_id: str = "P"  # MSH-11
    version: str = "2.6"  # MSH-12
    accept_ack: str = ""  # MSH-15
    app_ack: str = ""  # MSH-16
    delims: Delims = STD  # MSH-1/MSH-2: message_type (and the ACK's trigger) is read with these


@dataclass
class Parsed:
    header: Header
    items: list[dict | Invalid] = field(default_factory=list)
    where: list[tuple[str, int]] = field(default_factory=list)  # per item: (segment id, its ordinal), e.g. ("OBX", 3)


def _first_segment(text: str) -> str:
    """The first segment that is not blank, as ``parse`` reads it: a frame some gateways begin with
    a line break still has its MSH read for the ACK (MSA-2 = MSH-10), or the sender cannot match it."""
    for line in unframe(text).split("\r"):
        if line.strip():
            return line
    return ""


def header_of(text: str) -> Header:
    """MSH fields read leniently, for the ACK of a message that may not parse."""
    line = _first_segment(text)
    if not line.startswith("MSH") or len(line) < 4:
        return Header()
    f = line[3:].split(line[3])  # f[k] = MSH-(k+1) for k >= 1
    d = Delims(line[3], *(line[4:8] + "^~\\&"[len(line[4:8]):])[:4]) if len(line) >= 5 else STD

    def g(i: int) -> str:
        return fld(f, i - 1)

    return Header(control_id=g(10), sending_app=g(3), sending_facility=g(4), receiving_app=g(5),
                  receiving_facility=g(6), message_type=g(9), processing_id=comp(g(11), d, 1) or "P",
                  version=comp(g(12), d, 1) or "2.6", accept_ack=comp(g(15), d, 1).upper(),
                  app_ack=comp(g(16), d, 1).upper(), delims=d)


def _patient(msg: Message) -> str | None:
    d = msg.delims
    rs = reps(fld(msg.first("PID"), 3), d)
    best = None
    for want in ("MR", "PI", None):
        for r in rs:
            if comp(r, d, 1) and (want is None or comp(r, d, 5).upper() == want):
                best = comp(r, d, 1, strip=False)
                break
        if best:
            break
    # As written: a patient id is matched against the registry, so one that breaks the identifier
    # rule is rejected (bad_identifier), never renamed into an id nobody admitted.
    return best or None


def _location(msg: Message) -> dict | None:
    d = msg.delims
    pl = fld(msg.first("PV1"), 3)
    if not pl:
        return None
    return {"point_of_care": comp(pl, d, 1), "room": comp(pl, d, 2), "bed": comp(pl, d, 3),
            "facility": comp(pl, d, 4)}


def _device_field(value: str, d: Delims) -> str:
    for r in reps(value, d):
        c = canonical(r, d)
        if c:
            return c
    return ""


def _hierarchy(sub_id: str) -> tuple[int, ...] | None:
    parts = sub_id.strip().split(".")
    if not sub_id.strip() or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    out = [int(p) for p in parts]
    while out and out[-1] == 0:
        out.pop()
    return tuple(out)


def _code(value: str, d: Delims, codes: CodeTable) -> Metric | None:
    """OBX-3 -> metric: the first triplet, then the alternate one (CWE 4..6)."""
    for base in (1, 4):
        code, text, system = comp(value, d, base), comp(value, d, base + 1), comp(value, d, base + 2)
        m = codes.metric(system, code) if code else None
        if m is not None:
            return m
        if system.upper() in ("MDC", "") or system.upper().startswith("ISO11073") or system == "":
            for c in (code, text):
                n = mdc_code(c) if c else None
                if n is not None and n in MDC_TO_METRIC:
                    return MDC_TO_METRIC[n]
    return None


def _unit(value: str, d: Delims, codes: CodeTable) -> str:
    """OBX-6 -> a unit string ``normalise_unit`` knows (UCUM where the code says), else as written."""
    for base in (1, 4):
        code, text, system = comp(value, d, base), comp(value, d, base + 1), comp(value, d, base + 2)
        if not (code or text):
            continue
        u = codes.unit(system, code) if code else None
        if u is not None:
            return u
        for c in (code, text):
            n = mdc_code(c) if c else None
            if n is not None and n in MDC_UNIT_TO_UCUM:
                return MDC_UNIT_TO_UCUM[n]
        if base == 1:
            return code or text
    return ""


_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")  # NM (and an exponent)


def _value(kind: str, value: str, d: Delims) -> float:
    v = unescape(value.split(d.rep)[0], d).strip() if kind == "NM" else value.split(d.rep)[0]
    if kind == "SN":
        comparator, num = comp(v, d, 1), comp(v, d, 2)
        if comparator not in ("", "="):
            raise Invalid("schema", f"OBX-5 is {comparator}{num}: not an exact value")
        if comp(v, d, 3):
            raise Invalid("schema", "OBX-5 is a ratio or range, not one value")
        v = num
    if not _NUMBER.fullmatch(v.strip()):  # float() alone also reads "9_6" and non-ASCII digits
        raise Invalid("schema", "OBX-5 is not a number")
    x = float(v)
    if x != x or x in (float("inf"), float("-inf")):
        raise Invalid("schema", "OBX-5 is not a finite number")
    return x


def parse_message(text: str, codes: CodeTable | None = None, default_tz: tzinfo | None = None) -> Parsed:
    """The reading mappings (or Invalids) of one ORU^R01 message, with where each came from; raises
    Invalid when the whole message is unusable."""
    codes = codes or default_code_table()
    default_tz = default_tz or default_zone()
    msg = parse(text)
    header = header_of(text)
    d = msg.delims
    msh = msg.segments[0]
    mtype = [comp(fld(msh, 9), d, i) for i in (1, 2)]
    if mtype != ["ORU", "R01"]:
        raise Invalid("unsupported", f"message type {'^'.join(mtype)[:20]!r} is not ORU^R01")
    if header.version and header.version not in SUPPORTED_VERSIONS:
        raise Invalid("unsupported", f"HL7 version {header.version[:10]!r} is not supported")
    patient = _patient(msg)
    location = _location(msg)
    msh_time = fld(msh, 7)
    _, msh_zone = _split_zone(msh_time.split(d.comp)[0]) if msh_time else ("", None)
    tz = msh_zone or default_tz
    sender = _device_field(fld(msh, 3), d)
    out = Parsed(header)
    sources: dict[int, tuple[int, int | None, str]] = {}  # item -> (rank, MDC code, raw) of a reading's source
    obr_time = ""
    devices: dict[tuple[int, ...], str] = {}  # OBX-4 hierarchy -> OBX-18 device, within the current OBR
    n_obx = 0
    for seg in msg.segments:
        if seg[0] == "OBR":
            obr_time, devices = fld(seg, 7), {}
            continue
        if seg[0] != "OBX":
            continue
        n_obx += 1
        level = _hierarchy(fld(seg, 4))
        own = _device_field(fld(seg, 18), d)
        if own and level is not None:
            devices[level] = own
        kind = comp(fld(seg, 2), d, 1).upper()
        status = comp(fld(seg, 11), d, 1).upper()
        when = fld(seg, 14) or obr_time or msh_time  # the result's time: OBX-14, else OBR-7, else MSH-7
        if status in ("D", "W") and (withdrawn := _code(fld(seg, 3), d, codes)) is not None:
            # A vital sign the device takes back (D: delete, W: wrong): the worker stores the withdrawal
            # and the history leaves the reading out (alerts/history.py).
            try:
                item = Retracted({"patient": patient, "device": obx_device(own, level, devices, sender),
                                  "metric": withdrawn.value, "ts": parse_ts(when, tz, d.comp),
                                  "reason": f"HL7 OBX-11 {status}"})
            except Invalid as exc:
                item = Invalid(exc.reason, exc.detail, "|".join(seg))
            out.items.append(item)
            out.where.append(("OBX", n_obx))
            continue
        if status in ("X", "D", "W") or not fld(seg, 5):
            continue  # no value (X); a deleted (D) or withdrawn (W) result of something else
        metric = _code(fld(seg, 3), d, codes)
        if kind not in ("NM", "SN") and metric is None:
            continue  # PCD-01 also reports devices, settings and text: not vital-sign numerics
        raw = "|".join(seg)
        where = ("OBX", n_obx)
        item: dict | Invalid
        if kind not in ("NM", "SN"):  # a vital sign's value as ST, TX, no type...: kept with its reason
            item = Invalid("schema", f"OBX-2 value type {kind[:10]!r} is not NM or SN: a vital sign must be numeric", raw)
        elif metric is None:
            shown = comp(fld(seg, 3), d, 1) or comp(fld(seg, 3), d, 2)
            item = Invalid("unknown_metric", f"OBX-3 code {shown[:30]!r} is not a known vital sign", raw)
        else:
            try:
                value = _value(kind, fld(seg, 5), d)
                ts = parse_ts(when, tz, d.comp)
                unit = _unit(fld(seg, 6), d, codes)
                if not unit:
                    raise Invalid("unit", "OBX-6 (units) is empty")
                item = {"patient": patient, "device": obx_device(own, level, devices, sender),
                        "metric": metric.value, "value": value, "unit": unit, "ts": ts}
                if location:
                    item["location"] = location
                sources[len(out.items)] = _source(fld(seg, 3), d) + (raw,)
            except Invalid as exc:
                item = Invalid(exc.reason, exc.detail, raw)
        out.items.append(item)
        out.where.append(where)
    _keep_best_sources(out.items, sources)
    return out  # no items: a message of settings, device descriptions or "no value" (X) only


def _source(value: str, d: Delims) -> tuple[int, int | None]:
    """OBX-3's MDC code (either triplet) and its rank among the sources of its vital sign."""
    for base in (1, 4):
        for c in (comp(value, d, base), comp(value, d, base + 1)):
            n = mdc_code(c) if c else None
            if n is not None and n in MDC_TO_METRIC:
                return SOURCE_RANK.get(n, 1), n
    return 1, None


def _keep_best_sources(items: list, sources: dict[int, tuple[int, int | None, str]]) -> None:
    """One value per device, vital sign and time: a monitor's readings of one vital sign from other
    sources at the same moment (metrics_catalog.SOURCE_RANK) are set aside, kept with the reason
    ``other_source``, which is no error of the sender's. The same code twice stays a duplicate."""
    kept: dict[tuple, int] = {}
    for i, (rank, code, _) in sources.items():
        item = items[i]
        key = (item["device"], item["metric"], item["ts"])
        j = kept.setdefault(key, i)
        if j == i or sources[j][1] == code:
            continue
        # the lower rank wins, the lower code between equals: the same whatever order the OBX came in
        loser, winner = (j, i) if (rank, code or 0) < (sources[j][0], sources[j][1] or 0) else (i, j)
        kept[key] = winner
        items[loser] = Invalid("other_source", f"{item['metric']} from MDC {sources[loser][1]} set aside: the same "
                               f"device reported it at that time from MDC {sources[winner][1]}, a preferred source",
                               sources[loser][2])


def message_readings(text: str, codes: CodeTable | None = None) -> list[dict | Invalid]:
    """One reading mapping (or an Invalid) per numeric OBX of one ORU^R01 message."""
    items = parse_message(text, codes).items
    if not items:
        raise Invalid("schema", "no numeric vital-sign OBX segment")
    return items


# ------------------------------------------------------------------------------ acknowledgements

# The HL7 error code (table 0357) and field (ERR-2 field position) each rejection reason reports.
ERROR_CODES: dict[str, tuple[str, str]] = {
    "schema": ("102", "Data type error"), "unknown_metric": ("103", "Table value not found"),
    "unit": ("103", "Table value not found"), "unsupported": ("200", "Unsupported message type"),
    "unknown_patient": ("204", "Unknown key identifier"), "unknown_device": ("204", "Unknown key identifier"),
    "device_patient_mismatch": ("204", "Unknown key identifier"), "bad_identifier": ("102", "Data type error"),
    "duplicate_in_batch": ("205", "Duplicate key identifier"), "too_large": ("207", "Application internal error"),
    "impossible_value": ("207", "Application internal error"), "future_timestamp": ("207", "Application internal error"),
    "too_old": ("207", "Application internal error"), "unavailable": ("207", "Application internal error"),
}
ERROR_FIELD = {"unknown_metric": ("OBX", 3), "unit": ("OBX", 6), "impossible_value": ("OBX", 5),
               "future_timestamp": ("OBX", 14), "too_old": ("OBX", 14), "unknown_device": ("OBX", 18),
               "device_patient_mismatch": ("OBX", 18), "unknown_patient": ("PID", 3), "unsupported": ("MSH", 9)}


@dataclass
class Problem:
    reason: str
    detail: str
    segment: str = ""  # "OBX", "MSH", ...
    ordinal: int = 0  # which occurrence of the segment (1-based)


def _esc(s: str) -> str:
    return (s.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\").replace("&", "\\T\\")
             .replace("~", "\\R\\").replace("\r", " ").replace("\n", " "))


def _err(p: Problem) -> str:
    code, name = ERROR_CODES.get(p.reason, ("207", "Application internal error"))
    loc = ""
    if p.segment:
        seg, fieldno = ERROR_FIELD.get(p.reason, (p.segment, 0))
        ordinal = p.ordinal if seg == p.segment else 1
        loc = f"{seg}^{ordinal}" + (f"^{fieldno}" if fieldno else "")
    return "|".join(["ERR", "", loc, f"{code}^{name}^HL70357", "E", f"{_esc(p.reason)}^^WARDWATCH", "", "",
                     _esc(p.detail[:200])])


def _ack(header: Header, code: str, problems: list[Problem], control_id: str, now: datetime) -> str:
    # MSH-9 is in the message's own delimiters (split by "^", ORU$R40 was answered ACK^R01); the
    # trigger is re-escaped for the ACK's standard ones.
    trigger = _esc(comp(header.message_type, header.delims, 2)) or "R01"
    text = "" if not problems else _esc(problems[0].detail[:80])
    msh = "|".join(["MSH", "^~\\&", "WARDWATCH", "WARDWATCH", header.sending_app, header.sending_facility,
                    now.strftime("%Y%m%d%H%M%S") + "+0000", "", f"ACK^{trigger}^ACK", control_id,
                    header.processing_id or "P", header.version or "2.6"])
    segs = [msh, "|".join(["MSA", code, header.control_id, text])]
    segs += [_err(p) for p in problems[:50]]
    return "\r".join(segs) + "\r"


def _wanted(condition: str, ok: bool) -> bool:
    c = condition or "AL"
    return c == "AL" or (c == "ER" and not ok) or (c == "SU" and ok)


def obx_device(own: str | None, level, devices: dict, sender: str | None) -> str | None:
    """The identifier of the device of an OBX: its own OBX-18, else its nearest ancestor's in the OBX-4
    hierarchy, else the sender's (MSH-3)."""
    device = own or device_above(level[:-1] if level else (), devices) or sender
    return to_identifier(device) if device else None


def device_above(level, devices: dict) -> str | None:
    """The device of the nearest OBX at or above ``level`` in the OBX-4 containment hierarchy
    (trailing zeros dropped: ``1.0.0`` is the MDS ``1``), or None."""
    for k in range(len(level), 0, -1):
        anc = tuple(level[:k])
        while anc and anc[-1] == 0:
            anc = anc[:-1]
        if anc in devices:
            return devices[anc]
    return None


@dataclass
class MessageSpan:
    """Where one message's items sit in a batch (``start:end``) and the segment each came from, so
    its acknowledgement can name what was rejected. ``refused``: the message itself (AR / CR)."""

    header: Header
    start: int
    end: int
    where: list[tuple[str, int]] = field(default_factory=list)
    refused: bool = False


def acks_for(spans: list[MessageSpan], items, control_id, now: datetime) -> list[str]:
    """One acknowledgement per message, from the batch's per-item results (``index``, ``status``,
    ``reason``, ``detail``): what the MLLP listener and ``POST /v1/hl7v2`` both answer."""
    by_index = {it.index: it for it in items}
    out = []
    for m in spans:
        problems = []
        for i in range(m.start, m.end):
            it = by_index.get(i)
            if it is not None and it.status == "rejected" and it.reason != "other_source":  # no error of theirs
                seg, n = m.where[i - m.start] if i - m.start < len(m.where) else ("MSH", 1)
                problems.append(Problem(it.reason or "schema", it.detail or "", seg, n))
        out += ack_messages(m.header, problems, rejected=m.refused, control_id=control_id(), now=now)
    return out


def ack_messages(header: Header, problems: list[Problem], *, rejected: bool = False, retry: bool = False,
                 control_id: str = "", now: datetime | None = None) -> list[str]:
    """The ACK messages for one message, as its MSH-15/MSH-16 ask.

    ``problems`` empty: all readings accepted. ``rejected``: the message itself was refused
    (unsupported type or version, unparseable: AR / CR). ``retry``: nothing was stored (Kafka did not
    acknowledge): AR in original mode, CE in enhanced mode, so that the sender resends. Otherwise
    problems mean AE: the message was stored, the readings named in ERR went to the dead-letter
    topic, and resending the same message will not help.
    """
    now = now or datetime.now(timezone.utc)
    cid = control_id or f"WW{int(now.timestamp() * 1000)}"
    if not (header.accept_ack or header.app_ack):  # original mode
        code = "AR" if (rejected or retry) else ("AE" if problems else "AA")
        return [_ack(header, code, problems, cid, now)]
    out = []
    commit = "CE" if retry else ("CR" if rejected else "CA")
    if _wanted(header.accept_ack, commit == "CA"):
        out.append(_ack(header, commit, problems if commit != "CA" else [], cid + "A", now))
    if commit == "CA":
        app = "AE" if problems else "AA"
        if _wanted(header.app_ack, app == "AA"):
            out.append(_ack(header, app, problems, cid + "B", now))
    return out


def problems_of(items: Iterable[tuple[str, int, str, str]]) -> list[Problem]:
    """(segment, ordinal, reason, detail) -> Problems."""
    return [Problem(reason, detail, seg, n) for seg, n, reason, detail in items]
