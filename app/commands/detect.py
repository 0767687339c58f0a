"""Run a detector worker in the consumer group, with its health and metrics endpoint."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from wardwatch.settings import get_settings

log = logging.getLogger("wardwatch.detect")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics-host", default="127.0.0.1")
    p.add_argument("--metrics-port", type=int, default=None, help="default: WARDWATCH_DETECT_METRICS_PORT")


def run(args: argparse.Namespace) -> int:
    from detectors.worker import DetectorWorker

    settings = get_settings()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        worker = DetectorWorker(settings)
        server = await worker.serve_health(args.metrics_host, args.metrics_port or settings.detect_metrics_port)
        log.info("detector worker started (group %s)", settings.consumer_group)
        try:
            await worker.run(stop)
        finally:
            await server.wait_closed()  # the uvicorn server of /healthz and /metrics, in this loop

    asyncio.run(main())
    return 0
