"""Run the HTTP ingest endpoint (JSON, FHIR, HL7 v2) under uvicorn."""

from __future__ import annotations

import argparse
import asyncio

from wardwatch.settings import get_settings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None, help="default: WARDWATCH_INGEST_HOST")
    p.add_argument("--port", type=int, default=None, help="default: WARDWATCH_INGEST_PORT")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from ingest import httpserver
    from ingest.server import create_app

    settings = get_settings()

    async def main() -> None:  # the app's Kafka clients belong to this event loop
        config = httpserver.config(create_app(settings), settings, args.host or settings.ingest_host,
                                   args.port or settings.ingest_port)
        await uvicorn.Server(config).serve()

    asyncio.run(main())
    return 0
