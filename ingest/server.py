"""Run the HTTP ingest endpoint (``wardwatch ingest``) for gateways that cannot speak Kafka.

    POST /v1/readings   JSON: {"readings": [...]} or a list of readings        (role gateway)
    POST /v1/fhir       a FHIR R4 Observation, or a transaction/batch/collection/message Bundle (role gateway)
    POST /v1/fhir/Observation, POST /v1/fhir/$process-message, GET /v1/fhir/metadata (FHIR's own places)
    POST /v1/hl7v2      HL7 v2 ORU^R01 (IHE PCD-01) / ORU^R40 (PCD-04) messages (role gateway)
    POST /v1/patients   admit {"patient","ward","bed","devices"}               (role admin)
    POST /v1/patients/{patient}/devices {"device"}  and  .../discharge          (role admin)
    GET  /healthz  (503 when Kafka is unreachable)   GET /metrics (admin)   GET /openapi.json

The handlers are module-level functions; what they share lives in ``request.app.state`` (an
:class:`IngestState`, set up by :func:`create_app`). ``/openapi.json`` is generated from the routes'
pydantic types and the access table (:func:`wardwatch.web.openapi`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wardwatch import access, web
from wardwatch.auth import AuthError, TokenStore, bearer
from wardwatch.bus import Bus, BusProducer, open_bus
from wardwatch.models import PatientRecord, Reading
from wardwatch.registry import Registry, RegistryView
from wardwatch.settings import Settings
from wardwatch.supervisor import Supervisor
from wardwatch.token_sync import follow_tokens

from . import replies
from .bounds import Bounds, read_body
from .formats import hl7v2
from .pipeline import Backpressure, Batch, Ingestor, IngestResult, loads, now_ms
from wardwatch.codec import REASONS, Invalid, Limits, Retracted

log = logging.getLogger("wardwatch.ingest")


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.accepted = Counter("wardwatch_ingest_accepted_total", "readings accepted", ["format"], registry=r)
        self.rejected = Counter("wardwatch_ingest_rejected_total", "inputs rejected", ["format", "reason"], registry=r)
        self.bytes = Counter("wardwatch_ingest_bytes_total", "request bytes", ["format"], registry=r)
        self.latency = Histogram("wardwatch_ingest_request_seconds", "request latency", ["format"], registry=r)
        self.backpressure = Counter("wardwatch_ingest_backpressure_total", "429/503 answers", ["status"], registry=r)


@dataclass
class IngestState:
    """Everything the handlers share, as ``request.app.state.ingest``."""

    settings: Settings
    bus: Bus
    tokens: TokenStore
    producer: BusProducer
    registry: Registry
    view: RegistryView
    limits: Limits
    bounds: Bounds
    metrics: IngestMetrics
    ingestor: Ingestor
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    follow: asyncio.Task | None = None
    # Tokens made or revoked on any machine (the tokens topic), restarted if it fails.
    token_follower: Supervisor | None = None


# ----------------------------------------------------------------------------- request and answer types
# For the OpenAPI document only: the bodies are parsed and validated by the parsers below (every
# item answered and dead-lettered on its own), never rejected whole by a pydantic model.


class ReadingsEnvelope(BaseModel):
    readings: list[Reading]


class DeviceAssignment(BaseModel):
    device: str


class ErrorAnswer(BaseModel):
    error: str


class HealthAnswer(BaseModel):
    ok: bool
    kafka: bool
    in_flight: int
    patients: int


INGEST_ANSWERS: dict[int, tuple[str, Any]] = {
    200: ("all accepted", IngestResult), 207: ("some rejected: see items", IngestResult),
    422: ("all rejected: see items", IngestResult),
    429: ("backlog full: retry after Retry-After seconds", ErrorAnswer),
    503: ("Kafka unavailable: nothing accepted, resend after Retry-After", ErrorAnswer)}
ADMIN_ANSWERS: dict[int, tuple[str, Any]] = {200: ("the patient's record", PatientRecord),
                                             404: ("unknown patient or device", ErrorAnswer),
                                             422: ("invalid request", ErrorAnswer)}


# ----------------------------------------------------------------------------- parsing


def parse_json(raw: bytes, bounds: Bounds) -> list:
    doc = loads(raw)
    items = doc.get("readings") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise Invalid("schema", 'expected {"readings": [...]} or a JSON list of readings')
    # A gateway withdraws a reading it sent before as {"kind": "retraction", "device", "metric", "ts"
    # [, "patient", "reason"]} (docs/ingest.md "Withdrawn readings").
    return [Retracted(it) if isinstance(it, dict) and it.get("kind") == "retraction" else it for it in items]


def parse_fhir(raw: bytes, bounds: Bounds) -> list:
    """A FHIR body's items (``fhir.parse_document``), without a gateway to fall back on for the device."""
    return replies.FhirReply(False).parser(None)(raw, bounds)


def parse_hl7(raw: bytes, bounds: Bounds) -> list:
    """An HL7 v2 body's items, one reading mapping (or Invalid) per OBX (``replies.Hl7Reply.parse``)."""
    return replies.Hl7Reply(False).parse(raw, bounds)


def validate(st: IngestState, batch: Batch, raw: bytes, parse: Callable[[bytes, Bounds], list]) -> int:
    """Parse and validate one body into ``batch``; returns how many inputs it held (synchronous:
    a large body runs in a worker thread so that the event loop keeps serving other requests)."""
    bounds = st.bounds
    try:
        items = parse(raw, bounds)
    except Invalid as exc:  # the whole body is unusable: kept whole, with its reason
        batch.reject(0, exc.reason, exc.detail, exc.payload)
        return 1
    except Exception as exc:  # a parser bug must still be answered and kept, not become a 500
        log.error("parser failed: %s", type(exc).__name__)  # no traceback: it may quote patient data
        batch.reject(0, "schema", "the body could not be parsed", None)
        return 1
    if len(items) > bounds.max_items:
        batch.reject(0, "too_large", f"{len(items)} items is over {bounds.max_items} per request", None)
        return 1
    now = now_ms()
    registry = st.view if st.settings.enforce_registry else None
    for i, item in enumerate(items):
        batch.add(i, item, now, st.limits, registry)
    return len(items)


# ----------------------------------------------------------------------------- handlers


def _state(request: Request) -> IngestState:
    return request.app.state.ingest


def _auth(request: Request, action: str):
    return access.check(_state(request).tokens, bearer(request.headers.get("authorization")), action)


async def ingest(request: Request, fmt: str, parse: Callable[[bytes, Bounds], list], reply=None,
                 action: str | None = None) -> Response:
    """Authorize, read, validate and commit one body; answer with the JSON ``IngestResult``, or as
    ``reply`` (a FHIR or HL7 reply of ingest/replies.py) when the request asked for its own format."""
    st = _state(request)
    metrics = st.metrics
    t0 = time.perf_counter()
    own = reply is not None and reply.as_own
    try:
        principal = _auth(request, action or f"ingest.{fmt}")
    except AuthError as exc:
        if own and isinstance(reply, replies.FhirReply):
            return reply.failure(exc.status, "login" if exc.status == 401 else "forbidden", exc.message)
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    if isinstance(reply, replies.FhirReply):
        parse = reply.parser(principal)
    elif reply is not None:
        parse = reply.parse
    batch = Batch(source=f"http:{fmt}")
    received = 1  # a body that cannot be read is one rejected input
    try:
        batch.raw = await read_body(request, st.bounds)
    except Invalid as exc:
        batch.reject(0, exc.reason, exc.detail, exc.payload)
    else:
        metrics.bytes.labels(fmt).inc(len(batch.raw))
        if len(batch.raw) > st.bounds.offload_bytes:
            received = await asyncio.to_thread(validate, st, batch, batch.raw, parse)
        else:
            received = validate(st, batch, batch.raw, parse)
    try:
        result = await st.ingestor.commit(batch, received)
    except Backpressure as exc:
        metrics.backpressure.labels(str(exc.status)).inc()
        headers = {"Retry-After": str(exc.retry_after)}
        if own and isinstance(reply, replies.FhirReply):
            return reply.failure(exc.status, "throttled" if exc.status == 429 else "transient", exc.message,
                                 headers=headers)
        if own:
            return reply.answer(batch, None, st.bounds, exc.status, hl7v2.Problem("unavailable", exc.message), headers)
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)
    metrics.accepted.labels(fmt).inc(result.accepted)
    for r in batch.rejected:
        metrics.rejected.labels(fmt, r.reason).inc()
    metrics.latency.labels(fmt).observe(time.perf_counter() - t0)
    if own:
        return reply.answer(batch, result, st.bounds)
    status = 200 if result.rejected == 0 else (207 if result.accepted else 422)  # 207: see items
    return Response(orjson.dumps(result.model_dump()), status_code=status, media_type="application/json")


@web.documented("ingest.json", "a batch of readings as JSON", body=list[Reading] | ReadingsEnvelope,
                responses=INGEST_ANSWERS)
async def readings(request: Request) -> Response:
    return await ingest(request, "json", parse_json)


@web.documented("ingest.fhir", "FHIR R4 Observation or Bundle of vital-signs Observations", body=dict[str, Any],
                content_type="application/fhir+json", responses=INGEST_ANSWERS)
async def fhir_readings(request: Request) -> Response:
    return await ingest(request, "fhir", parse_fhir,
                        replies.FhirReply(replies.wants(request, replies.FHIR_JSON, ("application/json+fhir",))))


FHIR_ANSWERS: dict[int, tuple[str, Any]] = {
    201: ("accepted (all or some readings: see the OperationOutcome's issues)", dict[str, Any]),
    400: ("rejected: an OperationOutcome says why", dict[str, Any]),
    413: ("body too large: OperationOutcome", dict[str, Any]), 429: ("backlog full: retry after Retry-After", dict[str, Any]),
    503: ("Kafka unavailable: nothing accepted, resend after Retry-After", dict[str, Any])}


@web.documented("ingest.fhir.observation", "FHIR create: one Observation; answers an OperationOutcome",
                body=dict[str, Any], content_type="application/fhir+json", responses=FHIR_ANSWERS)
async def fhir_observation(request: Request) -> Response:
    return await ingest(request, "fhir", parse_fhir, replies.FhirReply(True, "Observation"), "ingest.fhir.observation")


@web.documented("ingest.fhir.message", "FHIR messaging: a message Bundle; answers a response message",
                body=dict[str, Any], content_type="application/fhir+json",
                responses={200: ("a response message Bundle (MessageHeader.response, OperationOutcome)", dict[str, Any])}
                | {k: v for k, v in FHIR_ANSWERS.items() if k != 201})
async def fhir_message(request: Request) -> Response:
    return await ingest(request, "fhir", parse_fhir, replies.FhirReply(True, "message"), "ingest.fhir.message")


@web.documented("ingest.fhir.metadata", "FHIR capabilities (CapabilityStatement)",
                responses={200: ("CapabilityStatement", dict[str, Any])})
async def fhir_metadata(request: Request) -> Response:
    return replies.fhir_response(replies.capability_statement(str(request.url).rsplit("/metadata", 1)[0]), 200)


@web.documented("ingest.hl7v2", "HL7 v2 messages: ORU^R01 readings (IHE PCD-01) and ORU^R40 monitor alarms (IHE PCD-04)", body=str, content_type="application/hl7-v2",
                responses=INGEST_ANSWERS)
async def hl7_readings(request: Request) -> Response:
    if replies.wants(request, replies.HL7_ER7):
        return await ingest(request, "hl7v2", parse_hl7, replies.Hl7Reply(True))
    return await ingest(request, "hl7v2", parse_hl7)


async def admin(request: Request, name: str, action) -> Response:
    st = _state(request)
    try:
        _auth(request, name)
        doc = orjson.loads(await request.body() or b"{}")
        rec = await action(st.registry, doc)
    except AuthError as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    except KeyError as exc:
        return JSONResponse({"error": str(exc).strip("'")}, status_code=404)
    except Exception as exc:
        return JSONResponse({"error": f"invalid request: {str(exc)[:200]}"}, status_code=422)
    st.view.apply(rec.patient, rec if rec.discharged is None else None)
    return Response(rec.model_dump_json(), media_type="application/json")


@web.documented("ingest.admit", "admit a patient", body=PatientRecord, responses=ADMIN_ANSWERS)
async def admit(request: Request) -> Response:
    async def act(registry: Registry, doc):
        rec = PatientRecord.model_validate(doc)
        await registry.admit_many([rec])
        return rec
    return await admin(request, "ingest.admit", act)


@web.documented("ingest.assign", "assign a device to an admitted patient", body=DeviceAssignment,
                responses=ADMIN_ANSWERS)
async def assign(request: Request) -> Response:
    patient = request.path_params["patient"]
    return await admin(request, "ingest.assign", lambda registry, doc: registry.assign(str(doc["device"]), patient))


@web.documented("ingest.discharge", "discharge a patient", responses=ADMIN_ANSWERS)
async def discharge(request: Request) -> Response:
    patient = request.path_params["patient"]
    return await admin(request, "ingest.discharge", lambda registry, doc: registry.discharge(patient))


async def kafka_ok(producer: BusProducer) -> bool:
    raw = getattr(producer, "raw", None)
    if raw is None:
        return True  # the in-process bus of the embedded demo
    try:
        await asyncio.wait_for(raw.client.fetch_all_metadata(), 3)
        return True
    except Exception:
        return False


@web.documented("ingest.healthz", "health probe: 503 when Kafka is unreachable",
                responses={200: ("ok", HealthAnswer), 503: ("Kafka unreachable", HealthAnswer)})
async def healthz(request: Request) -> Response:
    st = _state(request)
    ok = await kafka_ok(st.producer)
    return JSONResponse({"ok": ok, "kafka": ok, "in_flight": st.ingestor.in_flight, "patients": len(st.view.patients)},
                        status_code=200 if ok else 503)


@web.documented("ingest.metrics", "Prometheus metrics", responses={200: ("text/plain; version=0.0.4", None)})
async def metrics(request: Request) -> Response:
    try:
        _auth(request, "ingest.metrics")
    except AuthError as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    return Response(generate_latest(_state(request).metrics.registry), media_type="text/plain; version=0.0.4")


@web.documented("ingest.openapi", "this document", responses={200: ("OpenAPI 3.1", None)})
async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_doc())


ROUTES = [
    Route("/v1/readings", readings, methods=["POST"]),
    Route("/v1/fhir", fhir_readings, methods=["POST"]),
    Route("/v1/fhir/Observation", fhir_observation, methods=["POST"]),
    Route("/v1/fhir/$process-message", fhir_message, methods=["POST"]),
    Route("/v1/fhir/metadata", fhir_metadata),
    Route("/v1/hl7v2", hl7_readings, methods=["POST"]),
    Route("/v1/patients", admit, methods=["POST"]),
    Route("/v1/patients/{patient}/devices", assign, methods=["POST"]),
    Route("/v1/patients/{patient}/discharge", discharge, methods=["POST"]),
    Route("/healthz", healthz),
    Route("/metrics", metrics),
    Route("/openapi.json", openapi),
]


def openapi_doc() -> dict:
    """OpenAPI 3.1 for the ingest API, generated from the routes' pydantic types and the access table."""
    return web.openapi(ROUTES, "WardWatch ingest",
                       description="Reject reasons: " + "; ".join(f"{k}: {v}" for k, v in REASONS.items()))


# ----------------------------------------------------------------------------- the app


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    st: IngestState = app.state.ingest
    await st.bus.ensure_topics()
    await st.producer.start()
    for rec in st.registry.all():  # this process administers the registry: start from its own file
        st.view.apply(rec.patient, rec)
    ready = asyncio.Event()
    st.follow = asyncio.create_task(st.view.follow(st.bus, st.stop, ready))
    st.token_follower = Supervisor(stop=st.stop)
    st.token_follower.spawn("tokens", lambda: follow_tokens(st.bus, st.tokens, st.stop))
    try:
        await asyncio.wait_for(ready.wait(), 30)
    except asyncio.TimeoutError:
        log.warning("registry topic not read within 30s")
    try:
        yield
    finally:
        st.stop.set()
        if st.follow is not None:
            await asyncio.gather(st.follow, return_exceptions=True)
        await st.token_follower.stop()
        await st.producer.stop()


def create_app(settings: Settings, bus: Bus | None = None) -> Starlette:
    bus = bus or open_bus(settings)
    producer = bus.producer()
    st = IngestState(settings=settings, bus=bus, producer=producer,
                     tokens=TokenStore(settings.tokens_path, cache_size=settings.token_cache_size),
                     registry=Registry(settings.registry_path, bus), view=RegistryView(),
                     limits=Limits.from_settings(settings), bounds=Bounds.from_settings(settings),
                     metrics=IngestMetrics(), ingestor=Ingestor(bus, producer, settings.ingest_max_backlog))
    app = Starlette(routes=ROUTES, lifespan=lifespan)
    app.state.ingest = st
    # Shortcuts the tests and the benchmarks use.
    app.state.ingestor, app.state.metrics, app.state.view, app.state.registry = st.ingestor, st.metrics, st.view, st.registry
    app.state.tokens = st.tokens
    return app
