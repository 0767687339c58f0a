"""The one HTTP stack: Starlette apps of module-level handlers, served by uvicorn (or, on the alert
service's port, called in-process from the websockets listener), with what they all share.

* :func:`documented` and :func:`openapi`: an endpoint names its action in ``wardwatch.access`` and
  its body and answers as pydantic types; the OpenAPI document is generated from those (pydantic's
  JSON schemas, roles from the access table), never written by hand.
* :class:`GetOnly` and :class:`SecurityHeaders`: ASGI middleware for services that answer GET only.
* :func:`call`: one HTTP request through an ASGI app in-process (as httpx's ASGITransport does),
  for a listener that is not an ASGI server.
* :func:`serve`: uvicorn in the caller's event loop, leaving its signal handlers alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

import uvicorn
from pydantic import TypeAdapter
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from . import access

# ----------------------------------------------------------------------------- OpenAPI


@dataclass(frozen=True)
class Doc:
    action: str  # the wardwatch.access action that governs the route
    summary: str
    body: Any = None  # a type pydantic can describe (a model, list[Model], a union...), or None
    content_type: str = "application/json"
    responses: dict[int, tuple[str, Any]] = field(default_factory=dict)  # status -> (description, type or None)


def documented(action: str, summary: str, body: Any = None, content_type: str = "application/json",
               responses: dict[int, tuple[str, Any]] | None = None) -> Callable:
    """Attach the route's OpenAPI description to its endpoint function."""
    if action not in access.ACTIONS:
        raise KeyError(f"{action!r} is not in the access table")

    def mark(endpoint: Callable) -> Callable:
        endpoint.__openapi__ = Doc(action, summary, body, content_type, dict(responses or {}))
        return endpoint

    return mark


def openapi(routes: list[BaseRoute], title: str, version: str = "1", description: str = "") -> dict:
    """OpenAPI 3.1 for every documented route; schemas from pydantic, security from the access table."""
    schemas: dict[str, dict] = {}

    def schema(tp: Any, mode: str) -> dict:
        doc = TypeAdapter(tp).json_schema(mode=mode, ref_template="#/components/schemas/{model}")
        schemas.update(doc.pop("$defs", {}))
        title_ = doc.get("title")
        if doc.get("type") == "object" and title_ and "properties" in doc:  # a model: by reference
            name = title_ if schemas.get(title_, doc) == doc else f"{title_}-{mode}"  # a model's answer may differ
            schemas[name] = doc
            return {"$ref": f"#/components/schemas/{name}"}
        return doc

    paths: dict[str, dict] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        doc: Doc | None = getattr(route.endpoint, "__openapi__", None)
        if doc is None:
            continue
        rule = access.ACTIONS[doc.action]
        op: dict[str, Any] = {"summary": doc.summary, "operationId": doc.action}
        responses: dict[str, dict] = {}
        for status, (text, tp) in sorted(doc.responses.items()):
            responses[str(status)] = {"description": text}
            if tp is not None:
                responses[str(status)]["content"] = {"application/json": {"schema": schema(tp, "serialization")}}
        if not rule.is_open:
            roles = ", ".join(r.value for r in rule.roles)
            op["description"] = f"roles: {roles}" + (" (ward-scoped)" if rule.ward_scoped else "")
            op["security"] = [{"bearer": []}]
            responses.setdefault("401", {"description": "no, invalid, revoked or expired token"})
            responses.setdefault("403", {"description": f"a token without the role ({roles})"})
        op["responses"] = responses or {"200": {"description": "ok"}}
        if doc.body is not None:
            op["requestBody"] = {"required": True, "content": {doc.content_type: {"schema": schema(doc.body, "validation")}}}
        for method in sorted(route.methods - {"HEAD"}):
            paths.setdefault(route.path, {})[method.lower()] = op
    return {"openapi": "3.1.0", "info": {"title": title, "version": version, "description": description},
            "components": {"schemas": dict(sorted(schemas.items())),
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "paths": paths}


# ----------------------------------------------------------------------------- middleware


class GetOnly:
    """405 ``GET only`` (``Allow: GET``) for any other method, on every path."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] != "GET":
            response = Response(b"GET only\n", 405, headers={"Allow": "GET", "Content-Type": "text/plain"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """Added to every answer, pages included: no caching, scripts and styles from this origin only,
    never inside a frame."""

    HEADERS = [(b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"),
               (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"), (b"x-frame-options", b"DENY")]

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message = message | {"headers": [*message.get("headers", ()), *self.HEADERS]}
            await send(message)

        await self.app(scope, receive, with_headers)


def raw(body: bytes, status: int = 200, content_type: str = "application/json", headers: dict | None = None) -> Response:
    """A response whose Content-Type is exactly ``content_type`` (Starlette would add a charset to text/*)."""
    return Response(body, status, headers={"Content-Type": content_type, **(headers or {})})


# ----------------------------------------------------------------------------- in-process call


async def call(app, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"",
               client: tuple[str, int] | None = None, server: tuple[str, int] | None = None
               ) -> tuple[int, list[tuple[str, str]], bytes]:
    """``app``'s answer to one request: (status, headers, body). The whole body is collected, so it
    suits the small answers of pages and APIs, not streams."""
    url = urlsplit(target)
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": unquote(url.path), "raw_path": url.path.encode("latin-1"),
             "query_string": url.query.encode("latin-1"), "root_path": "",
             "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
             "client": client, "server": server}
    sent_body = False
    done = asyncio.Event()

    async def receive() -> dict:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()  # nothing more comes; the client is gone once the answer is complete
        return {"type": "http.disconnect"}

    status, out_headers, chunks = 500, [], []

    async def send(message: dict) -> None:
        nonlocal status, out_headers
        if message["type"] == "http.response.start":
            status = message["status"]
            out_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", ())]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    try:
        await app(scope, receive, send)
    finally:
        done.set()
    return status, out_headers, b"".join(chunks)


# ----------------------------------------------------------------------------- uvicorn in this loop


class _InLoopServer(uvicorn.Server):
    """uvicorn without its signal handling: the process that embeds it owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


class Served:
    """A uvicorn server running as a task of this event loop."""

    def __init__(self, server: uvicorn.Server, task: asyncio.Task, sock: socket.socket) -> None:
        self.server, self.task, self.socket = server, task, sock

    @property
    def port(self) -> int:
        return self.socket.getsockname()[1]

    def close(self) -> None:
        self.server.should_exit = True

    async def wait_closed(self, timeout: float = 10.0) -> None:
        self.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self.task), timeout)


async def serve(app, host: str, port: int, **config: Any) -> Served:
    """Serve ``app`` on ``host:port`` from this event loop; returns once it accepts connections.
    The socket is bound here, so that an address in use raises OSError to the caller (uvicorn would
    exit the process)."""
    sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET,
                                reuse_port=False)
    sock.setblocking(False)
    cfg = uvicorn.Config(app, log_level="warning", log_config=None, access_log=False, lifespan="off", **config)
    server = _InLoopServer(cfg)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            sock.close()
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    return Served(server, task, sock)
