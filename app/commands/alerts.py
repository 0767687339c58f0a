"""Run the alert service: the nurse feed (websocket), the nurse page and the history API."""

from __future__ import annotations

import argparse
import asyncio
import signal

from wardwatch import eventloop
from wardwatch.settings import get_settings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None, help="default: WARDWATCH_ALERTS_HOST")
    p.add_argument("--port", type=int, default=None, help="default: WARDWATCH_ALERTS_PORT")


def run(args: argparse.Namespace) -> int:
    from alerts.service import AlertService

    settings = get_settings()

    async def main() -> None:
        service = AlertService(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.stop.set)
        ready = asyncio.Event()
        settled = asyncio.create_task(settle_when(ready))
        await service.run(args.host or settings.alerts_host, args.port or settings.alerts_port, ready)
        settled.cancel()

    async def settle_when(ready: asyncio.Event) -> None:
        # Start-up is done once the service listens (its view has caught up with the alert log): freeze
        # that heap so collections stop walking it (wardwatch/heap.py), as the detector worker does. Here,
        # not in the service, because it changes the whole process's collector (tests run the service
        # in-process).
        from wardwatch import heap

        await ready.wait()
        heap.settle()

    eventloop.run(main())
    return 0
