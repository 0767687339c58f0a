"""Run the HTTP ingest endpoint (JSON, FHIR, HL7 v2) under uvicorn, and the HL7 v2 MLLP listener
beside it in the same event loop when ``--mllp-port`` or ``WARDWATCH_MLLP_PORT`` is set."""

from __future__ import annotations

import argparse
import asyncio
import logging

from wardwatch import eventloop
from wardwatch.settings import get_settings

log = logging.getLogger("wardwatch.ingest")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None, help="default: WARDWATCH_INGEST_HOST")
    p.add_argument("--port", type=int, default=None, help="default: WARDWATCH_INGEST_PORT")
    p.add_argument("--mllp-port", type=int, default=None,
                   help="HL7 v2 over MLLP on this port (0: off); default: WARDWATCH_MLLP_PORT, off when unset")
    p.add_argument("--mllp-host", default=None, help="default: WARDWATCH_MLLP_HOST (127.0.0.1)")


async def run_mllp_beside(server, app, settings, host: str | None, port: int) -> None:
    """Start the MLLP listener once uvicorn has started the app (its producer and registry view),
    and stop it as soon as uvicorn is asked to exit, before the app's producer stops."""
    from ingest.mllp import MLLPServer

    while not server.started:
        if server.should_exit:
            return
        await asyncio.sleep(0.05)
    mllp = await MLLPServer(settings, app.state.ingestor, app.state.view, app.state.metrics).start(host, port)
    try:
        while not server.should_exit:
            await asyncio.sleep(0.1)
    finally:
        await mllp.stop()


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from ingest import httpserver
    from ingest.server import create_app

    settings = get_settings()
    mllp_port = args.mllp_port if args.mllp_port is not None else settings.mllp_port

    async def main() -> None:  # the app's Kafka clients belong to this event loop
        app = create_app(settings)
        config = httpserver.config(app, settings, args.host or settings.ingest_host, args.port or settings.ingest_port)
        server = uvicorn.Server(config)
        if not mllp_port:
            await server.serve()
            return
        side = asyncio.create_task(run_mllp_beside(server, app, settings, args.mllp_host, mllp_port))
        try:
            await server.serve()
        finally:
            server.should_exit = True
            await asyncio.gather(side, return_exceptions=True)

    eventloop.run(main())
    return 0
