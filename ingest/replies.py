"""Answers in the sender's own terms: FHIR (``application/fhir+json``) for ``/v1/fhir`` and HL7 v2
acknowledgements (``x-application/hl7-v2+er7``) for ``/v1/hl7v2``, when the request asks for them.

Each reply object parses the body the way its route always has (the same items, so the same
readings and the same dead letters) and remembers where every item came from (a Bundle entry and
component, an HL7 message and segment), so that the answer can speak of each entry or message.
The JSON answer (``IngestResult``) stays the default for a request that does not ask.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from wardwatch.auth import Principal
from wardwatch.codec import Invalid
from wardwatch.identifiers import to_identifier

from .bounds import Bounds
from .formats import fhir, hl7v2, hl7v2_alarms
from .pipeline import Batch, IngestResult, ItemResult, loads

FHIR_JSON = "application/fhir+json"
HL7_ER7 = "x-application/hl7-v2+er7"
REASON_SYSTEM = "urn:wardwatch:ingest:reason"  # the WardWatch reject reason codes (docs/ingest.md)

# FHIR issue types (http://hl7.org/fhir/issue-type) for WardWatch's reasons.
ISSUE_TYPES = {"malformed_json": "structure", "schema": "invalid", "unknown_metric": "code-invalid", "unit": "value",
               "impossible_value": "value", "future_timestamp": "business-rule", "too_old": "business-rule",
               "unknown_patient": "not-found", "unknown_device": "not-found", "device_patient_mismatch": "business-rule",
               "duplicate_in_batch": "duplicate", "too_large": "too-costly", "unsupported": "not-supported",
               "bad_identifier": "value", "body_timeout": "timeout"}
WHOLE_STATUS = {"too_large": 413, "body_timeout": 408}  # else 400


def wants(request: Request, media: str, also: tuple[str, ...] = ()) -> bool:
    accept = request.headers.get("accept", "").lower()
    return media in accept or any(a in accept for a in also)


def issue(severity: str, code: str, text: str, reason: str | None = None, expression: str | None = None) -> dict:
    out: dict[str, Any] = {"severity": severity, "code": code}
    if reason:
        out["details"] = {"coding": [{"system": REASON_SYSTEM, "code": reason}], "text": text}
    out["diagnostics"] = text
    if expression:
        out["expression"] = [expression]
    return out


def outcome(issues: list[dict]) -> dict:
    return {"resourceType": "OperationOutcome", "issue": issues or [issue("information", "informational", "ok")]}


def fhir_response(body: dict, status: int, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=FHIR_JSON, headers=headers)


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


# ------------------------------------------------------------------------------------------ FHIR


class FhirReply:
    """Parses a FHIR body (``fhir.parse_document``) and answers as FHIR expects when ``as_fhir``."""

    def __init__(self, as_fhir: bool, expect: str | None = None) -> None:
        self.as_own = as_fhir
        self.expect = expect  # "Observation" (POST .../Observation), "message" (POST .../$process-message)
        self.doc: fhir.Document | None = None
        self.where: list[tuple[fhir.Entry, str]] = []  # per item: its entry and the path of its value
        self.parsed = -1

    def parser(self, principal: Principal | None) -> Callable[[bytes, Bounds], list]:
        device = to_identifier(principal.name) if principal is not None and principal.name else None

        def parse(raw: bytes, bounds: Bounds) -> list:
            body = loads(raw)
            if self.expect == "Observation" and not (isinstance(body, dict) and body.get("resourceType") == "Observation"):
                raise Invalid("unsupported", "POST [base]/Observation takes an Observation (a Bundle goes to [base])")
            if self.expect == "message" and not (isinstance(body, dict) and body.get("resourceType") == "Bundle"
                                                 and body.get("type") == "message"):
                raise Invalid("unsupported", "$process-message takes a Bundle of type message")
            doc = fhir.parse_document(body, bounds.fhir_max_entries, device)
            self.doc = doc
            self.where = [(e, p) for e in doc.entries for p in e.paths]
            items = doc.items()
            self.parsed = len(items)
            return items

        return parse

    # ---------------------------------------------------------------- answers

    def failure(self, status: int, code: str, text: str, reason: str | None = None,
                headers: dict | None = None) -> Response:
        return fhir_response(outcome([issue("error" if status < 500 else "fatal", code, text, reason)]), status, headers)

    def answer(self, batch: Batch, result: IngestResult, bounds: Bounds) -> Response:
        if self.doc is None or self.parsed > bounds.max_items or self.parsed != len(self.where):
            r = batch.rejected[0] if batch.rejected else None
            reason, detail = (r.reason, r.detail) if r else ("schema", "the body could not be read")
            return self.failure(WHOLE_STATUS.get(reason, 400), ISSUE_TYPES.get(reason, "invalid"), detail, reason)
        per_entry: dict[int, list[tuple[str, ItemResult]]] = {}
        by_index = {it.index: it for it in result.items}
        for i, (entry, path) in enumerate(self.where):
            it = by_index.get(i)
            if it is not None:
                per_entry.setdefault(entry.position, []).append((path, it))
        doc = self.doc
        if doc.resource_type == "Observation":
            entry = doc.entries[0]
            if entry.kind == "ignored":
                return fhir_response(outcome([self._not_stored(entry, "Observation")]), 200)
            results = per_entry.get(0, [])
            issues = self._issues("Observation", results)
            return fhir_response(outcome(issues), 201 if any(it.status == "accepted" for _, it in results) else 400)
        base = "Bundle.entry[{}].resource"
        if doc.bundle_type in ("transaction", "batch"):
            entries = []
            for e in doc.entries:
                results = per_entry.get(e.position, [])
                if e.kind in ("context", "ignored"):
                    entries.append({"response": {"status": "200 OK", "outcome": outcome(
                        [self._not_stored(e, base.format(e.position))])}})
                    continue
                ok = any(it.status == "accepted" for _, it in results)
                entries.append({"response": {"status": "201 Created" if ok else "400 Bad Request",
                                             "outcome": outcome(self._issues(base.format(e.position), results))}})
            return fhir_response({"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": f"{doc.bundle_type}-response",
                                  "timestamp": _now_iso(), "entry": entries}, 200)
        issues = []
        for e in doc.entries:
            where = base.format(e.position)
            issues += [self._not_stored(e, where)] if e.kind in ("context", "ignored") else \
                self._issues(where, per_entry.get(e.position, []))
        accepted = result.accepted > 0
        if doc.bundle_type == "message":
            return fhir_response(self._message_response(doc.message_header or {}, outcome(issues), result), 200)
        return fhir_response(outcome(issues), 400 if result.rejected and not accepted else 200)  # a collection

    @staticmethod
    def _not_stored(entry: fhir.Entry, where: str) -> dict:
        kind = entry.resource.get("resourceType") if isinstance(entry.resource, dict) else "resource"
        if entry.kind != "ignored":
            text = f"a {kind} read to resolve references: not stored"
        elif fhir.is_grouping(entry.resource):
            text = "a grouping Observation (hasMember): its members are Observations of their own; understood, not stored"
        else:
            text = "an Observation without a numeric value (Quantity): understood, not stored"
        return issue("information", "informational", text, expression=where)

    @staticmethod
    def _issues(base: str, results: list[tuple[str, ItemResult]]) -> list[dict]:
        out = []
        for path, it in results:
            where = f"{base}.{path}" if path else base
            if it.status == "accepted":
                out.append(issue("information", "informational", f"accepted as reading {it.id}", expression=where))
            else:
                reason = it.reason or "schema"
                out.append(issue("error", ISSUE_TYPES.get(reason, "invalid"), it.detail or reason, reason, where))
        return out

    @staticmethod
    def _message_response(header: dict, oo: dict, result: IngestResult) -> dict:
        """A response message (FHIR R4 messaging): a MessageHeader whose ``response`` names the request's
        MessageHeader, and an OperationOutcome with what became of each reading."""
        oo_url, mh_url = _urn(), _urn()
        code = "ok" if result.rejected == 0 else ("fatal-error" if result.accepted == 0 else "ok")
        mh: dict[str, Any] = {"resourceType": "MessageHeader", "id": mh_url.rsplit(":", 1)[1]}
        if isinstance(header.get("eventCoding"), dict):
            mh["eventCoding"] = header["eventCoding"]
        elif isinstance(header.get("eventUri"), str):
            mh["eventUri"] = header["eventUri"]
        else:
            mh["eventUri"] = "urn:wardwatch:ingest:readings"
        src = header.get("source")
        if isinstance(src, dict) and isinstance(src.get("endpoint"), str):
            mh["destination"] = [{"endpoint": src["endpoint"]}]
        mh["source"] = {"name": "WardWatch ingest", "endpoint": "urn:wardwatch:ingest"}
        mh["response"] = {"identifier": str(header.get("id") or "unknown"), "code": code,
                          "details": {"reference": oo_url}}
        return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "message", "timestamp": _now_iso(),
                "entry": [{"fullUrl": mh_url, "resource": mh}, {"fullUrl": oo_url, "resource": oo}]}


def capability_statement(base_url: str) -> dict:
    """What ``GET [base]/metadata`` answers (FHIR clients such as HAPI read it before their first request)."""
    return {"resourceType": "CapabilityStatement", "status": "active", "date": _now_iso()[:10], "kind": "instance",
            "software": {"name": "WardWatch ingest"},
            "implementation": {"description": "WardWatch vital-sign ingest: Observations become readings", "url": base_url},
            "fhirVersion": "4.0.1", "format": [FHIR_JSON, "json"],
            "rest": [{"mode": "server",
                      "documentation": "Readings are kept, not resources: nothing can be read back (see docs/ingest.md).",
                      "security": {"description": "Authorization: Bearer <token of role gateway>"},
                      "resource": [{"type": "Observation", "interaction": [{"code": "create"}]}],
                      "interaction": [{"code": "transaction"}, {"code": "batch"}],
                      "operation": [{"name": "process-message",
                                     "definition": "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message"}]}]}


# ------------------------------------------------------------------------------------------ HL7 v2


_ack_ids = itertools.count(1)
_ACK_PREFIX = f"WH{int(datetime.now(timezone.utc).timestamp()):x}-"


def ack_control_id() -> str:
    return f"{_ACK_PREFIX}{next(_ack_ids)}"


class Hl7Reply:
    """Parses an HL7 v2 body as ``POST /v1/hl7v2`` always has (the same items), remembering each
    message's header and segments, and answers with one acknowledgement per message
    (``hl7v2.ack_messages``, as the MLLP listener does) when ``as_ack``."""

    def __init__(self, as_ack: bool) -> None:
        self.as_own = as_ack
        self.msgs: list[hl7v2.MessageSpan] = []
        self.text = ""
        self.parsed = -1

    def parse(self, raw: bytes, bounds: Bounds) -> list:
        text = self.text = hl7v2.decode(raw)
        bounds.check_hl7(text)
        messages = hl7v2.split_messages(text)
        if not messages:
            raise Invalid("schema", "no HL7 v2 message in the body")
        out: list = []
        for m in messages:
            header, start = hl7v2.header_of(m), len(out)
            try:
                parsed = hl7v2_alarms.parse_any_message(m)
                if not parsed.items and not hl7v2_alarms.is_alarm_message(header):
                    raise Invalid("schema", "no numeric vital-sign OBX segment")
            except Invalid as exc:
                out.append(Invalid(exc.reason, exc.detail, m))
                self.msgs.append(hl7v2.MessageSpan(header, start, start + 1, [("MSH", 1)], exc.reason in ("unsupported", "too_large")))
                continue
            out.extend(parsed.items)
            self.msgs.append(hl7v2.MessageSpan(header, start, len(out), list(parsed.where)))
        self.parsed = len(out)
        return out

    def _whole(self, raw: bytes, bounds: Bounds) -> bool:
        return self.parsed < 0 or self.parsed > bounds.max_items

    def answer(self, batch: Batch, result: IngestResult, bounds: Bounds, status: int = 200,
               retry: hl7v2.Problem | None = None, headers: dict | None = None) -> Response:
        now = datetime.now(timezone.utc)
        msgs = self.msgs
        if retry is None and self._whole(batch.raw, bounds):
            r = batch.rejected[0] if batch.rejected else None
            problem = hl7v2.Problem(r.reason if r else "schema", r.detail if r else "the body could not be read", "MSH", 1)
            acks = hl7v2.ack_messages(hl7v2.header_of(self.text or batch.raw[:4096].decode("utf-8", "replace")),
                                      [problem], rejected=True, control_id=ack_control_id(), now=now)
            return self._response(acks, status, headers)
        if retry is not None:
            if not msgs:
                msgs = [hl7v2.MessageSpan(hl7v2.header_of(self.text or batch.raw[:4096].decode("utf-8", "replace")), 0, 1)]
            acks = [a for m in msgs for a in hl7v2.ack_messages(m.header, [retry], retry=True,
                                                                 control_id=ack_control_id(), now=now)]
            return self._response(acks, status, headers)
        acks = hl7v2.acks_for(msgs, result.items, ack_control_id, now)
        return self._response(acks, status, headers)

    @staticmethod
    def _response(acks: list[str], status: int, headers: dict | None) -> Response:
        return Response("".join(acks).encode("utf-8"), status_code=status, media_type=HL7_ER7, headers=headers)
