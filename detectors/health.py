"""The detector worker's /healthz and /metrics: a small Starlette app, served by uvicorn in the
worker's event loop (:meth:`detectors.worker.DetectorWorker.serve_health`).

    GET /healthz   200, or 503 when the worker is stalled, behind, or its store or Kafka is down
    GET /metrics   Prometheus text (admin token, as ``detect.metrics`` in wardwatch.access)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from wardwatch import access, web
from wardwatch.auth import AuthError, TokenStore, bearer

if TYPE_CHECKING:
    from .worker import DetectorWorker


async def healthz(request: Request) -> Response:
    ok, doc = request.app.state.worker.health()
    return web.raw(orjson.dumps(doc), 200 if ok else 503, "application/json")


async def metrics(request: Request) -> Response:
    try:
        access.check(request.app.state.tokens, bearer(request.headers.get("authorization")), "detect.metrics")
    except AuthError as exc:
        return web.raw(orjson.dumps({"error": exc.message}), exc.status, "application/json")
    return web.raw(generate_latest(request.app.state.worker.metrics.registry), 200, "text/plain; version=0.0.4")


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return web.raw(b"not found\n" if exc.status_code == 404 else f"{exc.detail}\n".encode(), exc.status_code, "text/plain")


ROUTES = [Route("/healthz", healthz), Route("/metrics", metrics)]


def create_app(worker: "DetectorWorker", tokens: TokenStore) -> Starlette:
    app = Starlette(routes=ROUTES, middleware=[Middleware(web.GetOnly)], exception_handlers={HTTPException: _http_error})
    app.state.worker, app.state.tokens = worker, tokens
    return app
