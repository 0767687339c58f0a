"""The worker's /healthz and /metrics take tokens of every machine: a token made with `wardwatch
token` elsewhere, and its revocation, reach a running worker through the tokens topic within 5 s."""

from __future__ import annotations

import asyncio
import time

import httpx

from devservices import free_port
from detectors.worker import DetectorWorker
from wardwatch.auth import TokenStore
from wardwatch.bus import open_bus
from wardwatch.token_sync import publish_tokens


async def _status_within(url: str, token: str, want: int, seconds: float = 5.0) -> tuple[int, float]:
    t0 = time.monotonic()
    async with httpx.AsyncClient() as http:
        while True:
            status = (await http.get(url, headers={"Authorization": f"Bearer {token}"})).status_code
            if status == want or time.monotonic() - t0 > seconds:
                return status, time.monotonic() - t0
            await asyncio.sleep(0.1)


async def test_a_running_worker_takes_then_refuses_a_token_made_and_revoked_elsewhere(settings, tmp_path):
    bus = open_bus(settings)
    await bus.ensure_topics()
    worker = DetectorWorker(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    port = free_port()
    server = await worker.serve_health("127.0.0.1", port)
    try:
        elsewhere = TokenStore(tmp_path / "other-machine" / "tokens.sqlite3")
        token, principal = elsewhere.create("admin", "operator-2")
        url = f"http://127.0.0.1:{port}/metrics"
        await publish_tokens(bus, [elsewhere.row(principal.token_id)])
        status, took = await _status_within(url, token, 200, seconds=15.0)  # includes the worker's start-up
        assert status == 200, "the worker learns of the token from the topic"
        assert elsewhere.revoke(principal.token_id)
        await publish_tokens(bus, [elsewhere.row(principal.token_id)])
        status, took = await _status_within(url, token, 401)
        assert status == 401 and took < 5.0, "the revocation reaches the worker within 5 s"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        server.close()
        await server.wait_closed()
