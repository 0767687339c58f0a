"""The ingest app in-process (its lifespan run for real) against the real Kafka, with patients admitted."""

from __future__ import annotations

import httpx
import pytest

from ingest.server import create_app
from wardwatch.auth import TokenStore
from wardwatch.bus import open_bus
from wardwatch.models import PatientRecord
from wardwatch.registry import Registry


@pytest.fixture
async def gateway(settings):
    bus = open_bus(settings)
    await bus.ensure_topics()
    await Registry(settings.registry_path, bus).admit_many(
        [PatientRecord(patient=f"p{i}", ward="w7", bed=str(i), devices=[f"mon-{i}"]) for i in range(5)])
    tokens = TokenStore(settings.tokens_path)
    tok = {role: tokens.create(role)[0] for role in ("gateway", "nurse", "admin")}
    app = create_app(settings, bus)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as client:
            client.headers["Authorization"] = f"Bearer {tok['gateway']}"

            class G:
                pass

            g = G()
            g.client, g.app, g.bus, g.tokens, g.settings = client, app, bus, tok, settings
            yield g


@pytest.fixture
async def mllp(gateway):
    """The MLLP listener on the gateway fixture's ingest app, on a free loopback port."""
    from ingest.mllp import MLLPServer

    server = await MLLPServer(gateway.settings, gateway.app.state.ingestor, gateway.app.state.view,
                              gateway.app.state.metrics).start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop()


async def drain(bus, topic: str, want: int, timeout_ms: int = 8000) -> list:
    consumer = bus.consumer(topic, group_id=None)
    await consumer.start()
    got = []
    try:
        while len(got) < want:
            batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=100_000)
            if not batches:
                break
            got += [m for msgs in batches.values() for m in msgs]
    finally:
        await consumer.stop()
    return got
