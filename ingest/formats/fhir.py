"""FHIR R4 as clients send it -> reading mappings (validated later by ``wardwatch.codec``).

Understood (docs/ingest.md, "FHIR"):

* a single ``Observation``, or a ``Bundle`` of type ``transaction``, ``batch``, ``collection`` or
  ``message`` (no type counts as ``collection``) holding Observations beside the ``Patient``,
  ``Device``, ``MessageHeader``, ``Provenance`` and other context resources they refer to;
* references resolved inside the Bundle: by ``fullUrl`` (``urn:uuid:...``, absolute URLs), by
  ``Type/id`` (``Device/x``, ``Patient/y``, also versioned or absolute), to ``#contained``
  resources, or logical references (``identifier``); a ``device`` that is a DeviceMetric of the
  Bundle (or contained) stands for its ``source`` Device;
* codes LOINC (``http://loinc.org``) or IEEE 11073 MDC (``urn:iso:std:iso:11073:10101``, the number
  or partition-and-hex forms of ``wardwatch.metrics_catalog.mdc_code``);
* the value in ``valueQuantity`` (UCUM ``code``, else ``unit``; MDC unit codes too), or in
  ``component``: each component with a numeric value and its own code is a reading of its own
  (blood pressure: systolic, diastolic, mean). A vital sign (a known code, of the Observation or
  of a component) whose value is of another type (``valueInteger``, ``valueString``...) is
  rejected (``schema``), as HL7 v2 rejects it; other components of other value types are skipped,
  and an Observation with no Quantity at all but a value of another type that is no vital sign
  (``valueCodeableConcept``, ``valueDateTime``: a PHD coincident time stamp, a device status), a
  ``dataAbsentReason``, or no value but ``hasMember`` (a panel grouping other Observations, such as
  vital signs 85353-1) is understood and not stored (it is no reading); one with no value at all
  is rejected;
* the device time from ``effectiveDateTime``, ``effectiveInstant`` or ``effectivePeriod.start``
  (a time zone is required);
* the patient from ``subject``: the Bundle's Patient's identifier (MR first), else the id of the
  reference; the device from ``Observation.device`` (a Bundle Device's identifier, UDI or serial,
  made an identifier by ``wardwatch.identifiers.to_identifier``; else the id of the reference),
  else the Bundle's only (non-gateway) Device, else the gateway's own name (its token's).

What a reading must be (metric, value range, unit, ids, time window, registry) is checked by
``wardwatch.codec.reading_from_mapping`` as for every other format; this module only maps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

from wardwatch.codec import Invalid, Retracted
from wardwatch.identifiers import to_identifier
from wardwatch.metrics_catalog import LOINC_TO_METRIC, MDC_TO_METRIC, MDC_UNIT_TO_UCUM, mdc_code

LOINC = "http://loinc.org"
MDC = "urn:iso:std:iso:11073:10101"
UCUM = "http://unitsofmeasure.org"
EUI64 = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"  # IEEE EUI-64 system id, as the PHD IG writes it
GATEWAY_TYPES = {"531981"}  # MDC_MOC_VMS_MDS_AHD: a PHD IG gateway (PHG), not the measuring device

BUNDLE_TYPES = ("transaction", "batch", "collection", "message")
# Resources a Bundle may carry beside its Observations: used to resolve references, not stored.
CONTEXT_TYPES = frozenset({"Patient", "Device", "DeviceMetric", "MessageHeader", "Provenance", "Practitioner",
                           "PractitionerRole", "Organization", "Encounter", "Location", "RelatedPerson"})
OBSERVATION_METHODS = ("POST", "PUT")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


# --------------------------------------------------------------------------------------- values


def parse_time(value: Any, name: str = "effectiveDateTime") -> int:
    if not isinstance(value, str):
        raise Invalid("schema", "effectiveDateTime, effectiveInstant or effectivePeriod.start is required")
    if "T" not in value:
        raise Invalid("schema", f"{name} needs a time of day and a time zone, not only a date")
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid("schema", f"{name} is not an ISO 8601 date-time") from None
    if dt.tzinfo is None:
        raise Invalid("schema", f"{name} needs a time zone")
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def effective_ms(obs: dict) -> int:
    for name in ("effectiveDateTime", "effectiveInstant"):
        if name in obs:
            return parse_time(obs[name], name)
    period = obs.get("effectivePeriod")
    if isinstance(period, dict):
        return parse_time(period.get("start"), "effectivePeriod.start")
    return parse_time(None)


def metric_of(code: Any) -> str:
    codings = code.get("coding") if isinstance(code, dict) else None
    if not isinstance(codings, list):
        raise Invalid("schema", "code.coding is required")
    for c in codings:
        if not isinstance(c, dict) or not isinstance(c.get("code"), (str, int)) or isinstance(c.get("code"), bool):
            continue
        system, value = c.get("system"), str(c["code"]).strip()
        if system == LOINC and value in LOINC_TO_METRIC:
            return LOINC_TO_METRIC[value].value
        if system == MDC:
            n = mdc_code(value)
            if n is not None and n in MDC_TO_METRIC:
                return MDC_TO_METRIC[n].value
    raise Invalid("unknown_metric", "no LOINC or MDC code of a known vital sign")


def quantity(part: dict) -> tuple[Any, Any]:
    q = part["valueQuantity"]
    if not isinstance(q, dict):
        raise Invalid("schema", "valueQuantity must be an object")
    if q.get("comparator") is not None:  # "<70": the value is not 70, only beyond it
        raise Invalid("schema", f"valueQuantity.comparator {str(q['comparator'])[:4]!r}: not an exact value")
    code, unit = q.get("code"), q.get("unit")
    if q.get("system") == MDC and isinstance(code, str):
        n = mdc_code(code)
        code = MDC_UNIT_TO_UCUM.get(n) if n is not None else None
    return q.get("value"), code or unit


# --------------------------------------------------------------------------------------- references


class Index:
    """The resources of one Bundle (and an Observation's contained ones), by the keys references use."""

    def __init__(self) -> None:
        self.by_key: dict[str, dict] = {}

    def add(self, res: Any, full_url: Any) -> None:
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
            return
        kind, rid = res["resourceType"], res.get("id")
        if isinstance(full_url, str) and full_url:
            self.by_key.setdefault(full_url, res)
            tail = _typed_tail(full_url, kind)
            if tail:
                self.by_key.setdefault(f"{kind}/{tail}", res)
        if isinstance(rid, str) and rid:
            self.by_key.setdefault(f"{kind}/{rid}", res)

    def get(self, key: str) -> dict | None:
        return self.by_key.get(key)


EMPTY = Index()


def _typed_tail(url: str, kind: str) -> str | None:
    """``x`` of ``http(s)://.../Kind/x`` (and of ``.../Kind/x/_history/n``)."""
    if not url.startswith(("http://", "https://")):
        return None
    head, sep, tail = url.rpartition(f"/{kind}/")
    if not sep:
        return None
    return tail.split("/_history/", 1)[0]


def resolve(ref: Any, kind: str, where: str, index: Index, contained: dict[str, dict]) -> tuple[str, Any] | None:
    """What ``ref`` (a Reference) points to: ("resource", the resource in the Bundle), ("id", the id
    of a reference to a resource elsewhere), ("identifier", a logical reference's value), or None."""
    if not isinstance(ref, dict):
        return None
    r = ref.get("reference")
    if isinstance(r, str):
        if kind == "Device" and r.startswith("DeviceMetric/") and index.get(r) is None:
            raise Invalid("schema", f"{where} refers to a DeviceMetric that is not in the Bundle (its source Device is needed)")
        if r.startswith("#"):
            res = contained.get(r[1:])
            if res is None:
                raise Invalid("schema", f"{where} {r[:60]} is not a contained resource")
            return _checked(res, kind, where)
        res = index.get(r)
        if res is not None:
            return _checked(res, kind, where)
        if r.startswith(("urn:uuid:", "urn:oid:")):
            raise Invalid("schema", f"{where} {r[:80]} is not in the Bundle")
        tail = _typed_tail(r, kind)
        if tail is None:
            if not r.startswith(kind + "/"):
                raise Invalid("schema", f"{where} must refer to a {kind}")
            tail = r[len(kind) + 1:]
            if "/_history/" in tail:
                tail = tail.split("/_history/", 1)[0]
        res = index.get(f"{kind}/{tail}")
        return _checked(res, kind, where) if res is not None else ("id", tail)
    ident = ref.get("identifier")
    if isinstance(ident, dict) and isinstance(ident.get("value"), str):
        return "identifier", ident["value"]
    return None


def _checked(res: dict, kind: str, where: str) -> tuple[str, Any]:
    if res.get("resourceType") != kind and not (kind == "Device" and res.get("resourceType") == "DeviceMetric"):
        raise Invalid("schema", f"{where} refers to a {str(res.get('resourceType'))[:40]}, not a {kind}")
    return "resource", res


def _identifier_values(res: dict) -> list[tuple[Any, Any]]:
    """(identifier, value) of a resource's identifiers with a string value."""
    ids = res.get("identifier")
    ids = ids if isinstance(ids, list) else [ids] if isinstance(ids, dict) else []
    return [(i, i["value"]) for i in ids if isinstance(i, dict) and isinstance(i.get("value"), str) and i["value"]]


def _codes(concept: Any) -> set[str]:
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return {str(c.get("code")) for c in codings if isinstance(c, dict)} if isinstance(codings, list) else set()


def patient_id(res: dict) -> str:
    """A Patient resource's id for WardWatch: its MR identifier, else its first identifier, else its id."""
    ids = _identifier_values(res)
    for ident, value in ids:
        if "MR" in _codes(ident.get("type")):
            return value
    if ids:
        return ids[0][1]
    if isinstance(res.get("id"), str) and res["id"]:
        return res["id"]
    raise Invalid("schema", "the subject Patient has no identifier")


def device_id(res: dict) -> str:
    """A Device resource's id for WardWatch: its EUI-64 or first identifier, else its UDI (the full
    carrier, else the device identifier), else its serial number, else its id; made an identifier."""
    ids = _identifier_values(res)
    raw = next((v for i, v in ids if i.get("system") == EUI64), ids[0][1] if ids else None)
    if raw is None:
        for udi in res.get("udiCarrier") or [] if isinstance(res.get("udiCarrier"), list) else []:
            if isinstance(udi, dict):
                raw = next((udi[k] for k in ("carrierHRF", "deviceIdentifier") if isinstance(udi.get(k), str) and udi[k]), None)
                if raw:
                    break
    if raw is None and isinstance(res.get("serialNumber"), str) and res["serialNumber"]:
        raw = res["serialNumber"]
    if raw is None and isinstance(res.get("id"), str) and res["id"]:
        return res["id"]
    if raw is None:
        raise Invalid("schema", "the Device has no identifier, UDI or serial number")
    return to_identifier(raw)


def is_gateway(res: dict) -> bool:
    return bool(_codes(res.get("type")) & GATEWAY_TYPES)


# --------------------------------------------------------------------------------------- one Observation


def observation_readings(obs: Any, index: Index = EMPTY, default_device: str | None = None) -> list[dict | Invalid | Retracted]:
    """One reading mapping per numeric value of ``obs`` (its own, and each component's); an Invalid
    for a value that cannot be mapped (unknown code), raised for an Observation with none. An
    entered-in-error Observation gives a withdrawal (:class:`Retracted`) of each vital sign it names."""
    return [item for _, item in located_readings(obs, index, default_device)]


def located_readings(obs: Any, index: Index = EMPTY,
                     default_device: str | None = None) -> list[tuple[str, dict | Invalid | Retracted]]:
    """``observation_readings`` with the FHIRPath of each value within the Observation ("" for its own
    ``valueQuantity``, ``component[j]``)."""
    if not isinstance(obs, dict) or obs.get("resourceType") != "Observation":
        raise Invalid("unsupported", "not a FHIR Observation")
    withdrawn = obs.get("status") == "entered-in-error"  # the sender takes back what it sent before
    if obs.get("status") == "cancelled":
        raise Invalid("schema", "observation status is cancelled")
    components = obs.get("component")
    if components is not None and not isinstance(components, list):
        raise Invalid("schema", "component must be a list")
    located = [("", obs)] + [(f"component[{j}]", c) for j, c in enumerate(components or [])]
    mistyped = {} if withdrawn else {path: bad for path, part in located if (bad := _mistyped(part, path))}
    if not withdrawn and "valueQuantity" not in obs and not any(isinstance(c, dict) and "valueQuantity" in c
                                                                for c in components or []):
        if mistyped:  # a vital sign as valueInteger, valueString...: rejected as in HL7 v2, never dropped
            return list(mistyped.items())
        if any(_has_other_value(p) for p in [obs, *(components or [])]):
            return []  # a coded, text, time or waveform value (a PHD time stamp, a status): not a reading
        if is_grouping(obs):
            return []  # a panel (vital-signs 85353-1...): its hasMember Observations carry the readings
        raise Invalid("schema", "valueQuantity (of the Observation or of a component) is required")
    ts = effective_ms(obs)
    contained = {c["id"]: c for c in obs.get("contained") or [] if isinstance(c, dict) and isinstance(c.get("id"), str)} \
        if isinstance(obs.get("contained"), list) else {}
    patient = None
    found = resolve(obs.get("subject"), "Patient", "subject", index, contained)
    if found is not None:
        patient = patient_id(found[1]) if found[0] == "resource" else found[1]
    device = default_device
    found = resolve(obs.get("device"), "Device", "device", index, contained)
    if found is not None and found[0] == "resource" and found[1].get("resourceType") == "DeviceMetric":
        found = resolve(found[1].get("source"), "Device", "DeviceMetric.source", index, contained)
        if found is None or (found[0] == "resource" and found[1].get("resourceType") != "Device"):
            raise Invalid("schema", "device refers to a DeviceMetric without a source Device")
    if found is not None:
        how, what = found
        device = device_id(what) if how == "resource" else to_identifier(what) if how == "identifier" else what
    if device is None:
        raise Invalid("schema", "device is required: Observation.device, a Device in the Bundle, or the gateway's token")
    parts: list[tuple[str, dict]] = [("", obs)] if "valueQuantity" in obs else []
    for j, comp in enumerate(components or []):
        if not isinstance(comp, dict):
            raise Invalid("schema", f"component[{j}] must be an object")
        if "valueQuantity" in comp:
            parts.append((f"component[{j}]", comp))
    if withdrawn:
        return _withdrawals(obs, parts, patient, device, ts)
    out: list[tuple[str, dict | Invalid | Retracted]] = []
    valued = dict(parts)
    for path, _ in located:  # in the order of the Observation: its own value, then each component's
        if path in mistyped:
            out.append((path, mistyped[path]))
            continue
        part = valued.get(path)
        if part is None:
            continue
        try:
            value, unit = quantity(part)
            out.append((path, {"patient": patient, "device": device, "metric": metric_of(part.get("code")),
                               "value": value, "unit": unit, "ts": ts}))
        except Invalid as exc:
            out.append((path, Invalid(exc.reason, f"{path}: {exc.detail}" if path else exc.detail, part)))
    return out


def _withdrawals(obs: dict, parts: list[tuple[str, dict]], patient: str | None, device: str,
                 ts: int) -> list[tuple[str, Retracted]]:
    """An entered-in-error Observation: a withdrawal of each vital sign it names (its own code with or
    without a value, and each valued component's). Codes that are not vital signs name nothing stored."""
    named = parts or [("", obs)]
    out = []
    for path, part in named:
        try:
            metric = metric_of(part.get("code"))
        except Invalid:
            continue
        out.append((path, Retracted({"patient": patient, "device": device, "metric": metric, "ts": ts,
                                     "reason": "FHIR Observation entered-in-error"})))
    return out


# --------------------------------------------------------------------------------------- a request


@dataclass
class Entry:
    """One resource of the request (the Observation itself, or one Bundle entry)."""

    position: int  # in Bundle.entry (0 for a single resource)
    resource: Any
    kind: str  # "observation" (gave items), "ignored" (an Observation without a numeric value, or a grouping
    # one: nothing to store), "context" (resolves references), "rejected"
    items: list[dict | Invalid] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # per item: FHIRPath of its value within the resource


@dataclass
class Document:
    resource_type: str  # "Observation" or "Bundle"
    bundle_type: str | None = None
    message_header: dict | None = None
    entries: list[Entry] = field(default_factory=list)

    def items(self) -> list[dict | Invalid]:
        return [it for e in self.entries for it in e.items]


def _entries(doc: dict, max_entries: int | None) -> list:
    entries = doc.get("entry", [])
    if not isinstance(entries, list):
        raise Invalid("schema", "Bundle.entry must be a list")
    if max_entries is not None and len(entries) > max_entries:
        raise Invalid("too_large", f"a Bundle of {len(entries)} entries is over {max_entries}")
    return entries


def parse_document(doc: Any, max_entries: int | None = None, default_device: str | None = None) -> Document:
    """A request body (parsed JSON) -> its entries and their reading mappings; Invalid for a body
    that is no Observation or supported Bundle at all (answered and dead-lettered whole)."""
    if not isinstance(doc, dict):
        raise Invalid("unsupported", "not a FHIR Observation or Bundle")
    rtype = doc.get("resourceType")
    if rtype == "Observation":
        entry = Entry(0, doc, "observation")
        _observation_items(entry, doc, EMPTY, default_device)
        entry.kind = "observation" if entry.items else "ignored"
        return Document("Observation", entries=[entry])
    if rtype != "Bundle":
        raise Invalid("unsupported", f"a {str(rtype)[:40]} is not a FHIR Observation or Bundle")
    btype = doc.get("type", "collection")
    if btype not in BUNDLE_TYPES:
        raise Invalid("unsupported", f"a Bundle of type {str(btype)[:40]} is not taken (transaction, batch, "
                                     "collection or message)")
    raw_entries = _entries(doc, max_entries)
    index = Index()
    resources = []
    for e in raw_entries:
        res = e.get("resource") if isinstance(e, dict) else None
        resources.append(res)
        index.add(res, e.get("fullUrl") if isinstance(e, dict) else None)
    out = Document("Bundle", btype)
    if btype == "message":
        first = resources[0] if resources else None
        if not isinstance(first, dict) or first.get("resourceType") != "MessageHeader":
            raise Invalid("schema", "a message Bundle begins with its MessageHeader")
        out.message_header = first
    devices = [r for r in resources if isinstance(r, dict) and r.get("resourceType") == "Device"]
    measuring = [r for r in devices if not is_gateway(r)] or devices
    fallback = default_device
    bundle_device: Invalid | None = None
    if len(measuring) == 1:
        try:
            fallback = device_id(measuring[0])
        except Invalid as exc:
            bundle_device = exc
    elif len(measuring) > 1:
        bundle_device = Invalid("schema", f"Observation.device is required: the Bundle has {len(measuring)} Devices")
    for n, (e, res) in enumerate(zip(raw_entries, resources)):
        entry = Entry(n, res, "rejected")
        out.entries.append(entry)
        try:
            if not isinstance(e, dict):
                raise Invalid("schema", "a Bundle entry must be an object")
            if not isinstance(res, dict):
                raise Invalid("schema", "a Bundle entry needs a resource (only POST/PUT of resources is taken)")
            kind = res.get("resourceType")
            if kind == "Observation":
                method = e.get("request", {}).get("method") if isinstance(e.get("request"), dict) else None
                if btype in ("transaction", "batch") and method not in OBSERVATION_METHODS:
                    raise Invalid("unsupported", f"request.method {str(method)[:10]} (POST or PUT of an Observation is taken)")
                if bundle_device is not None and not _has_device(res):
                    raise bundle_device
                entry.kind = "observation"
                _observation_items(entry, res, index, fallback)
                if not entry.items:
                    entry.kind = "ignored"
            elif isinstance(kind, str) and kind in CONTEXT_TYPES:
                entry.kind = "context"
            else:
                raise Invalid("unsupported", f"a {str(kind)[:40]} entry is not taken (Observations, with their "
                                             "Patient, Device and other context)")
        except Invalid as exc:
            entry.kind = "rejected"
            entry.items = [Invalid(exc.reason, exc.detail, res if res is not None else e)]
            entry.paths = [""]
    if not any(e.kind in ("observation", "ignored") or (e.kind == "rejected" and _is_observation(e.resource)) for e in out.entries):
        raise Invalid("unsupported", "no Observation in the Bundle" if not any(e.kind == "rejected" for e in out.entries)
                      else next(e.items[0].detail for e in out.entries if e.kind == "rejected"))
    return out


def _has_other_value(part: Any) -> bool:
    """A value of another type than Quantity, or a dataAbsentReason (the device measured nothing)."""
    return isinstance(part, dict) and any(k.startswith("value") or k == "dataAbsentReason" for k in part)


def _mistyped(part: Any, path: str) -> Invalid | None:
    """A vital sign (a known code) whose value is of another type than Quantity (valueInteger 72,
    valueString "97", valueCodeableConcept...): an Invalid, since no unit says what the number is."""
    if not isinstance(part, dict) or "valueQuantity" in part:
        return None
    other = next((k for k in part if k.startswith("value")), None)
    if other is None:
        return None
    try:
        metric = metric_of(part.get("code"))
    except Invalid:
        return None  # not a vital sign: a PHD time stamp, a status, a supplemental code...
    where = f"{path}: " if path else ""
    return Invalid("schema", f"{where}{other[:40]} of {metric}: a vital sign's value must be a valueQuantity "
                             "(a number with its unit)", part)


def is_grouping(obs: Any) -> bool:
    """An Observation that groups others (FHIR ``hasMember``: a panel such as vital signs 85353-1)."""
    members = obs.get("hasMember") if isinstance(obs, dict) else None
    return isinstance(members, list) and any(isinstance(m, dict) for m in members)


def _is_observation(res: Any) -> bool:
    return isinstance(res, dict) and res.get("resourceType") == "Observation"


def _has_device(obs: dict) -> bool:
    return isinstance(obs.get("device"), dict)


def _observation_items(entry: Entry, obs: dict, index: Index, default_device: str | None) -> None:
    try:
        located = located_readings(obs, index, default_device)
    except Invalid as exc:
        located = [("", Invalid(exc.reason, exc.detail, obs))]
    entry.paths = [p for p, _ in located]
    entry.items = [it for _, it in located]


def resources(doc: Any, max_entries: int | None = None) -> Iterator[Any]:
    """The resources of a single resource or a Bundle, in order (without reference resolution; see
    ``parse_document``); a Bundle of more than ``max_entries`` entries is refused before any is read."""
    if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
        for e in _entries(doc, max_entries):
            yield e.get("resource") if isinstance(e, dict) else e
    else:
        yield doc
