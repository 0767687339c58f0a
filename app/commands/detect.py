"""Run detector workers in the consumer group, each with its health and metrics endpoint.

``--processes 1`` runs the worker in this process; ``--processes N`` (default: the smaller of the CPU
count and the readings partitions) starts N worker processes watched by this one
(:mod:`app.worker_pool`), worker i serving ``/healthz`` and ``/metrics`` on ``--metrics-port`` + i.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from wardwatch import eventloop
from wardwatch.settings import Settings, get_settings

log = logging.getLogger("wardwatch.detect")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics-host", default="127.0.0.1")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="default: WARDWATCH_DETECT_METRICS_PORT; worker i of --processes N uses this + i")
    p.add_argument("--processes", type=int, default=None,
                   help="worker processes in the group (default: the smaller of the CPU count and "
                        "WARDWATCH_READINGS_PARTITIONS)")


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    port = args.metrics_port or settings.detect_metrics_port
    n = args.processes or settings.detect_processes
    if n > 1:
        from app.worker_pool import WorkerPool

        log.info("starting %d detector worker processes (health ports %d-%d)", n, port, port + n - 1)
        return WorkerPool(n, args.metrics_host, port, logging.getLevelName(logging.getLogger().level)).run()
    return run_one(settings, args.metrics_host, port)


def run_one(settings: Settings, host: str, port: int) -> int:
    from detectors.worker import DetectorWorker

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        worker = DetectorWorker(settings)
        server = await worker.serve_health(host, port)
        log.info("detector worker started (group %s)", settings.consumer_group)
        try:
            await worker.run(stop)
        finally:
            await server.wait_closed()  # the uvicorn server of /healthz and /metrics, in this loop

    eventloop.run(main())
    return 0
