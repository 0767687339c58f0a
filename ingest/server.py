"""Run the HTTP ingest endpoint (``wardwatch ingest``) for gateways that cannot speak Kafka.

    POST /v1/readings   JSON: {"readings": [...]} or a list of readings        (role gateway)
    POST /v1/fhir       a FHIR R4 Observation or Bundle of Observations        (role gateway)
    POST /v1/hl7v2      HL7 v2 ORU^R01 (IHE PCD-01), one or more messages      (role gateway)
    POST /v1/patients   admit {"patient","ward","bed","devices"}               (role admin)
    POST /v1/patients/{patient}/devices {"device"}  and  .../discharge          (role admin)
    GET  /healthz  (503 when Kafka is unreachable)   GET /metrics (admin)   GET /openapi.json
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wardwatch import access
from wardwatch.auth import AuthError, TokenStore, bearer
from wardwatch.bus import Bus, open_bus
from wardwatch.models import PatientRecord, Reading, RejectedInput
from wardwatch.registry import Registry, RegistryView
from wardwatch.settings import Settings

from . import httpserver
from .bounds import Bounds, read_body
from .formats import fhir, hl7v2
from .pipeline import Backpressure, Batch, Ingestor, IngestResult, now_ms
from wardwatch.codec import REASONS, Invalid, Limits

log = logging.getLogger("wardwatch.ingest")


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.accepted = Counter("wardwatch_ingest_accepted_total", "readings accepted", ["format"], registry=r)
        self.rejected = Counter("wardwatch_ingest_rejected_total", "inputs rejected", ["format", "reason"], registry=r)
        self.bytes = Counter("wardwatch_ingest_bytes_total", "request bytes", ["format"], registry=r)
        self.latency = Histogram("wardwatch_ingest_request_seconds", "request latency", ["format"], registry=r)
        self.backpressure = Counter("wardwatch_ingest_backpressure_total", "429/503 answers", ["status"], registry=r)


def create_app(settings: Settings, bus: Bus | None = None) -> Starlette:
    bus = bus or open_bus(settings)
    tokens = TokenStore(settings.tokens_path, cache_size=settings.token_cache_size)
    producer = bus.producer()
    registry = Registry(settings.registry_path, bus)
    view = RegistryView()
    limits = Limits.from_settings(settings)
    bounds = Bounds.from_settings(settings)
    metrics = IngestMetrics()
    ingestor = Ingestor(bus, producer, settings.ingest_max_backlog)
    stop = asyncio.Event()
    state: dict = {}

    def auth(request: Request, action: str):
        return access.check(tokens, bearer(request.headers.get("authorization")), action)

    def validate(batch: Batch, raw: bytes, parse) -> int:
        """Parse and validate one body into ``batch``; returns how many inputs it held (synchronous:
        a large body runs in a worker thread so that the event loop keeps serving other requests)."""
        try:
            items = parse(raw)
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
        registry = view if settings.enforce_registry else None
        for i, item in enumerate(items):
            batch.add(i, item, now, limits, registry)
        return len(items)

    async def handle(request: Request, fmt: str, parse) -> Response:
        t0 = time.perf_counter()
        try:
            auth(request, f"ingest.{fmt}")
        except AuthError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        batch = Batch(source=f"http:{fmt}")
        received = 1  # a body that cannot be read is one rejected input
        try:
            batch.raw = await read_body(request, bounds)
        except Invalid as exc:
            batch.reject(0, exc.reason, exc.detail, exc.payload)
        else:
            metrics.bytes.labels(fmt).inc(len(batch.raw))
            if len(batch.raw) > bounds.offload_bytes:
                received = await asyncio.to_thread(validate, batch, batch.raw, parse)
            else:
                received = validate(batch, batch.raw, parse)
        try:
            result = await ingestor.commit(batch, received)
        except Backpressure as exc:
            metrics.backpressure.labels(str(exc.status)).inc()
            return JSONResponse({"error": exc.message}, status_code=exc.status, headers={"Retry-After": str(exc.retry_after)})
        metrics.accepted.labels(fmt).inc(result.accepted)
        for r in batch.rejected:
            metrics.rejected.labels(fmt, r.reason).inc()
        metrics.latency.labels(fmt).observe(time.perf_counter() - t0)
        status = 200 if result.rejected == 0 else (207 if result.accepted else 422)  # 207: see items
        return Response(orjson.dumps(result.model_dump()), status_code=status, media_type="application/json")

    def parse_json(raw: bytes) -> list:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:  # also JSON nested deeper than orjson's limit
            raise Invalid("malformed_json", "the body is not valid JSON") from None
        items = doc.get("readings") if isinstance(doc, dict) else doc
        if not isinstance(items, list):
            raise Invalid("schema", 'expected {"readings": [...]} or a JSON list of readings')
        return items

    def parse_fhir(raw: bytes) -> list:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise Invalid("malformed_json", "the body is not valid JSON") from None
        out: list = []
        for res in fhir.resources(doc, bounds.fhir_max_entries):
            try:
                out.extend(fhir.observation_readings(res))
            except Invalid as exc:
                out.append(Invalid(exc.reason, exc.detail, res))
        return out

    def parse_hl7(raw: bytes) -> list:
        text = raw.decode("utf-8", "replace")
        bounds.check_hl7(text)
        messages = hl7v2.split_messages(text)
        if not messages:
            raise Invalid("schema", "no HL7 v2 message in the body")
        out: list = []
        for m in messages:
            try:
                out.extend(hl7v2.message_readings(m))
            except Invalid as exc:
                out.append(Invalid(exc.reason, exc.detail, m))
        return out

    async def readings(request: Request) -> Response:
        return await handle(request, "json", parse_json)

    async def fhir_ep(request: Request) -> Response:
        return await handle(request, "fhir", parse_fhir)

    async def hl7_ep(request: Request) -> Response:
        return await handle(request, "hl7v2", parse_hl7)

    async def admin(request: Request, name: str, action) -> Response:
        try:
            auth(request, name)
            doc = orjson.loads(await request.body() or b"{}")
            rec = await action(doc)
        except AuthError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        except KeyError as exc:
            return JSONResponse({"error": str(exc).strip("'")}, status_code=404)
        except Exception as exc:
            return JSONResponse({"error": f"invalid request: {str(exc)[:200]}"}, status_code=422)
        view.apply(rec.patient, rec if rec.discharged is None else None)
        return Response(rec.model_dump_json(), media_type="application/json")

    async def admit(request: Request) -> Response:
        async def act(doc):
            rec = PatientRecord.model_validate(doc)
            await registry.admit_many([rec])
            return rec
        return await admin(request, "ingest.admit", act)

    async def assign(request: Request) -> Response:
        return await admin(request, "ingest.assign", lambda doc: registry.assign(str(doc["device"]), request.path_params["patient"]))

    async def discharge(request: Request) -> Response:
        return await admin(request, "ingest.discharge", lambda doc: registry.discharge(request.path_params["patient"]))

    async def healthz(request: Request) -> Response:
        ok = await kafka_ok()
        return JSONResponse({"ok": ok, "kafka": ok, "in_flight": ingestor.in_flight, "patients": len(view.patients)},
                            status_code=200 if ok else 503)

    async def kafka_ok() -> bool:
        raw = getattr(producer, "raw", None)
        if raw is None:
            return True  # the in-process bus of the embedded demo
        try:
            await asyncio.wait_for(raw.client.fetch_all_metadata(), 3)
            return True
        except Exception:
            return False

    async def metrics_ep(request: Request) -> Response:
        try:
            auth(request, "ingest.metrics")
        except AuthError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        return Response(generate_latest(metrics.registry), media_type="text/plain; version=0.0.4")

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_doc())

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await startup()
        try:
            yield
        finally:
            await shutdown()

    async def startup() -> None:
        await bus.ensure_topics()
        await producer.start()
        for rec in registry.all():  # this process administers the registry: start from its own file
            view.apply(rec.patient, rec)
        ready = asyncio.Event()
        state["follow"] = asyncio.create_task(view.follow(bus, stop, ready))
        try:
            await asyncio.wait_for(ready.wait(), 30)
        except asyncio.TimeoutError:
            log.warning("registry topic not read within 30s")

    async def shutdown() -> None:
        stop.set()
        if "follow" in state:
            await asyncio.gather(state["follow"], return_exceptions=True)
        await producer.stop()

    app = Starlette(routes=[
        Route("/v1/readings", readings, methods=["POST"]),
        Route("/v1/fhir", fhir_ep, methods=["POST"]),
        Route("/v1/hl7v2", hl7_ep, methods=["POST"]),
        Route("/v1/patients", admit, methods=["POST"]),
        Route("/v1/patients/{patient}/devices", assign, methods=["POST"]),
        Route("/v1/patients/{patient}/discharge", discharge, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/metrics", metrics_ep),
        Route("/openapi.json", openapi),
    ], lifespan=lifespan)
    app.state.ingestor, app.state.metrics, app.state.view, app.state.registry = ingestor, metrics, view, registry
    app.state.tokens = tokens
    return app


def openapi_doc() -> dict:
    """OpenAPI 3.1 for the ingest API; schemas come from the pydantic models."""
    schemas = {"Reading": Reading.model_json_schema(), "IngestResult": IngestResult.model_json_schema(mode="serialization"),
               "RejectedInput": RejectedInput.model_json_schema(), "PatientRecord": PatientRecord.model_json_schema()}
    ok = {"200": {"description": "all accepted", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IngestResult"}}}},
          "207": {"description": "some rejected: see items"}, "422": {"description": "all rejected: see items"},
          "401": {"description": "no or invalid token"}, "403": {"description": "token without the gateway role"},
          "429": {"description": "backlog full: retry after Retry-After seconds"},
          "503": {"description": "Kafka unavailable: nothing accepted, resend after Retry-After"}}
    sec = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "WardWatch ingest", "version": "1", "description": "Reject reasons: " +
                 "; ".join(f"{k}: {v}" for k, v in REASONS.items())},
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/v1/readings": {"post": {"summary": "a batch of readings as JSON", "security": sec, "responses": ok,
                                      "requestBody": {"content": {"application/json": {"schema": {"oneOf": [
                                          {"type": "array", "items": {"$ref": "#/components/schemas/Reading"}},
                                          {"type": "object", "properties": {"readings": {"type": "array", "items": {"$ref": "#/components/schemas/Reading"}}}}]}}}}}},
            "/v1/fhir": {"post": {"summary": "FHIR R4 Observation or Bundle of vital-signs Observations", "security": sec,
                                  "responses": ok, "requestBody": {"content": {"application/fhir+json": {"schema": {"type": "object"}}}}}},
            "/v1/hl7v2": {"post": {"summary": "HL7 v2 ORU^R01 (IHE PCD-01) messages", "security": sec, "responses": ok,
                                   "requestBody": {"content": {"application/hl7-v2": {"schema": {"type": "string"}}}}}},
            "/v1/patients": {"post": {"summary": "admit a patient (admin)", "security": sec,
                                      "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/PatientRecord"}}}},
                                      "responses": {"200": {"description": "admitted"}}}},
            "/healthz": {"get": {"summary": "503 when Kafka is unreachable", "responses": {"200": {"description": "ok"}}}},
        },
    }
