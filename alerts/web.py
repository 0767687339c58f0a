"""The alert service's HTTP routes: the pages, the history and audit API, /healthz and /metrics.

A Starlette app of module-level handlers, taking the service from ``request.app.state.service``.
It has no listener of its own: the service's websockets server answers /ws itself and hands every
other request to this app in-process (:func:`answer`), so the feed keeps websockets' broadcast
(see docs/alerts.md for the measurement) and the HTTP routes are Starlette, on one port.
Every route is GET (actions come over the socket); every answer carries the security headers.
"""

from __future__ import annotations

import logging
import mimetypes
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import orjson
from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from websockets.datastructures import Headers
from websockets.http11 import Request as WsRequest, Response as WsResponse

from wardwatch import access, web
from wardwatch.auth import AuthError, bearer
from wardwatch.identifiers import is_identifier
from wardwatch.models import now_ms

from wardwatch.alarm_texts import page_catalogue

from .history import limits_view, patient_history, to_csv, to_fhir_bundle

if TYPE_CHECKING:
    from .service import AlertService

log = logging.getLogger("wardwatch.alerts")
STATIC = Path(__file__).parent / "static"
API = {"/api/history": "history", "/api/history.csv": "history.csv", "/api/history.fhir": "history.fhir",
       "/api/audit": "audit"}
LATEST_MS = 4_102_444_800_000  # 2100-01-01: history bounds past this are typos, not queries
MAX_SPAN_MS = 366 * 86_400_000


def _service(request: Request) -> "AlertService":
    return request.app.state.service


def _json(status: int, doc) -> Response:
    return web.raw(orjson.dumps(doc), status, "application/json")


def _not_found() -> Response:
    return web.raw(b"not found\n", 404, "text/plain")


# ----------------------------------------------------------------------------- probes


async def healthz(request: Request) -> Response:
    ok, doc = _service(request).health()
    return _json(200 if ok else 503, doc)


async def metrics(request: Request) -> Response:
    svc = _service(request)
    try:
        access.check(svc.tokens, bearer(request.headers.get("authorization")), "metrics")
    except AuthError as exc:
        return _json(exc.status, {"error": exc.message})
    return web.raw(generate_latest(svc.metrics), 200, "text/plain; version=0.0.4")


# ----------------------------------------------------------------------------- pages


def static_file(name: str) -> Response:
    path = (STATIC / name).resolve()
    if STATIC.resolve() not in path.parents or not path.is_file():
        return _not_found()
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return web.raw(path.read_bytes(), 200, ctype + ("; charset=utf-8" if ctype.startswith("text") else ""))


async def nurse_page(request: Request) -> Response:
    return static_file("nurse.html")


async def history_page(request: Request) -> Response:
    return static_file("history.html")


async def static(request: Request) -> Response:
    return static_file(request.path_params["name"])


async def alarm_texts(request: Request) -> Response:
    """The alarm-text catalogue's titles and the pages' own texts (no patient data)."""
    return _json(200, page_catalogue())


# ----------------------------------------------------------------------------- API


async def api(request: Request) -> Response:
    action = API.get(request.url.path)
    if action is None:
        return _json(404, {"error": "not found"})
    svc = _service(request)
    q = parse_qs(request.url.query)
    try:
        principal = svc.tokens.lookup(bearer(request.headers.get("authorization")))  # Expired: a 401 too
        access.require_role(principal, action)
        if action == "audit":
            return audit(svc, principal, q)
        try:
            patient, start, stop, every = history_query(q)
        except (KeyError, ValueError, IndexError):
            return _json(400, {"error": "need patient, 0 <= start < stop (epoch ms, before 2100),"
                                        " at most 366 days, every >= 1000 ms"})
        access.authorize(principal, action, svc.ward_of(patient))
    except AuthError as exc:
        return _json(exc.status, {"error": exc.message})
    try:
        hist = await patient_history(svc.store, patient, start, stop, every,
                                     monitor_events=svc.log.monitor_reports(patient, start, stop))
    except Exception as exc:  # the store down or refusing: say so, and log no query (it names the patient)
        log.error("a history read failed (%s)", type(exc).__name__)
        return _json(503, {"error": "the history store is unreachable; try again"})
    hist["limits"] = limits_view(svc.overrides.get(patient))
    if action == "history":
        return web.raw(orjson.dumps(hist), 200, "application/json")
    if action == "history.csv":
        return web.raw(to_csv(hist).encode(), 200, "text/csv")
    return web.raw(orjson.dumps(to_fhir_bundle(hist)), 200, "application/fhir+json")


def audit(svc: "AlertService", principal, q: dict) -> Response:
    """The audit log; a ward-scoped token reads one patient's rows (``?patient=``) of its wards."""
    patient = (q.get("patient") or [None])[0]
    access.authorize(principal, "audit", None if patient is None else svc.ward_of(patient))
    rows = svc.log.audit_rows(patient=patient)  # filtered before the limit: a patient's trail is never cut short
    return web.raw(orjson.dumps(rows), 200, "application/json")


def history_query(q: dict) -> tuple[str, int, int, int | None]:
    """Patient, start, stop and every of a history request; ValueError when out of range."""
    patient = q["patient"][0]
    stop = int(q.get("stop", [now_ms()])[0])
    start = int(q.get("start", [stop - 6 * 3600_000])[0])
    every = int(q["every"][0]) if "every" in q else None
    if not is_identifier(patient) or not 0 <= start < stop <= LATEST_MS or stop - start > MAX_SPAN_MS:
        raise ValueError
    if every is not None and not 1000 <= every <= stop - start:
        raise ValueError
    return patient, start, stop, every


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return _not_found() if exc.status_code == 404 else web.raw(f"{exc.detail}\n".encode(), exc.status_code, "text/plain")


ROUTES = [
    Route("/", nurse_page),
    Route("/nurse", nurse_page),
    Route("/history", history_page),
    Route("/static/{name:path}", static),
    Route("/alarm-texts.json", alarm_texts),
    Route("/healthz", healthz),
    Route("/metrics", metrics),
    Route("/api/{rest:path}", api),
]


def create_app(service: "AlertService") -> Starlette:
    app = Starlette(routes=ROUTES, middleware=[Middleware(web.SecurityHeaders), Middleware(web.GetOnly)],
                    exception_handlers={HTTPException: _http_error})
    app.state.service = service
    return app


async def answer(app: Starlette, request: WsRequest, client=None) -> WsResponse:
    """The app's answer to a request the websockets server received, as a websockets Response."""
    method = getattr(request, "method", "GET")
    client = (str(client[0]), int(client[1])) if isinstance(client, tuple) and len(client) >= 2 else None
    status, headers, body = await web.call(app, method, request.path, list(request.headers.raw_items()), client=client)
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Status"
    return WsResponse(status, reason, Headers(headers), body)
