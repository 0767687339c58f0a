"""The ingest behind real uvicorn (the connection limits live there) against the real Kafka, with
short timeouts and a small token cache so that the limits show within a test's time."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import uvicorn

from ingest import httpserver
from ingest.server import create_app
from tests.alerts.conftest import ward  # noqa: F401  (the alert service, for history queries)
from tests.ingest.conftest import drain  # noqa: F401
from wardwatch.auth import TokenStore
from wardwatch.bus import open_bus
from wardwatch.devservices import free_port

HEADER_TIMEOUT_S, BODY_TIMEOUT_S, TOKEN_CACHE = 2.0, 3.0, 256


@pytest.fixture
async def ingest(settings):
    settings = settings.model_copy(update={"ingest_header_timeout_s": HEADER_TIMEOUT_S, "ingest_body_timeout_s": BODY_TIMEOUT_S,
                                           "token_cache_size": TOKEN_CACHE, "enforce_registry": False,
                                           "ingest_max_backlog": 1_000_000})
    bus = open_bus(settings)
    await bus.ensure_topics()
    token = TokenStore(settings.tokens_path).create("gateway")[0]
    app = create_app(settings, bus)
    port = free_port()
    server = uvicorn.Server(httpserver.config(app, settings, "127.0.0.1", port))
    task = asyncio.create_task(server.serve())
    for _ in range(300):
        if server.started:
            break
        await asyncio.sleep(0.1)
    assert server.started, "uvicorn did not start"

    class Ingest:
        pass

    g = Ingest()
    g.settings, g.bus, g.app, g.token, g.port = settings, bus, app, token, port
    g.url = f"http://127.0.0.1:{port}"
    g.auth = {"Authorization": f"Bearer {token}"}
    yield g
    server.should_exit = True
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 20)
