"""The whole of WardWatch in one process, on replayed real patients (``make demo``).

An in-process bus stands in for Kafka and an embedded store for InfluxDB; the ingest gateway,
detector worker and alert service are the same code the production services run. Set
``WARDWATCH_BACKEND=kafka`` (and start Kafka and InfluxDB, e.g. ``wardwatch services up``) to run
the same demo against the real servers.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal

from .auth import Role, TokenStore
from .bus import open_bus
from .embedded_store import open_store
from .settings import Settings, get_settings


async def run_demo(settings: Settings, duration: float | None, host: str, port: int, ready=None) -> None:
    from alerts.service import AlertService
    from detectors.worker import DetectorWorker
    from ingest.replay import replay

    bus = open_bus(settings)
    store = open_store(settings)
    tokens = TokenStore(settings.tokens_path)
    nurse, _ = tokens.create(Role.nurse, "demo nurse")
    clinician, _ = tokens.create(Role.clinician, "demo clinician")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await bus.ensure_topics()
    alerts = AlertService(settings, bus=bus, store=store)
    alerts.stop = stop
    worker = DetectorWorker(settings, bus=bus, store=store)
    served = asyncio.Event()
    tasks = [asyncio.create_task(alerts.run(host, port, served)), asyncio.create_task(worker.run(stop)),
             asyncio.create_task(replay(settings, bus, "demo", speed=60.0, duration=None, ward="ward-1", stop=stop))]
    await asyncio.wait([asyncio.create_task(served.wait()), *tasks], return_when=asyncio.FIRST_COMPLETED)
    for t in tasks:
        if t.done() and t.exception():
            raise t.exception()
    print(f"\nWardWatch demo ({settings.backend} backend) is running.\n"
          f"  Nurse station:   http://{host}:{port}/\n"
          f"  Patient history: http://{host}:{port}/history\n"
          f"  Log in as a nurse with:     {nurse}\n"
          f"  or as a clinician with:     {clinician}\n"
          f"  Ward: ward-1 (or leave empty for all). Stop with Ctrl-C.\n", flush=True)
    if ready is not None:
        ready.set()
    try:
        await asyncio.wait_for(stop.wait(), duration)
    except asyncio.TimeoutError:
        stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: run until stopped)")
    p.add_argument("--host", default=None, help="default: WARDWATCH_ALERTS_HOST (127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="default: WARDWATCH_ALERTS_PORT (8765)")
    p.add_argument("--keep", action="store_true", help="keep the demo's data from an earlier run")


def run(args: argparse.Namespace) -> int:
    base = get_settings()
    backend = base.backend if "WARDWATCH_BACKEND" in __import__("os").environ else "embedded"
    data_dir = base.data_dir / "demo"
    if not args.keep and backend == "embedded":
        shutil.rmtree(data_dir, ignore_errors=True)  # the in-process bus starts empty: so does the rest
    settings = base.model_copy(update={"backend": backend, "data_dir": data_dir, "stale_after_s": 30.0})
    asyncio.run(run_demo(settings, args.duration, args.host or settings.alerts_host, args.port or settings.alerts_port))
    return 0
