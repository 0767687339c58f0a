"""The whole of WardWatch in one process, on replayed real patients (``make demo``).

An in-process bus stands in for Kafka and an embedded store for InfluxDB; the ingest gateway,
detector worker and alert service are the same code the production services run. Set
``WARDWATCH_BACKEND=kafka`` (and start Kafka and InfluxDB, e.g. ``wardwatch services up``) to run
the same demo against the real servers.
"""

from __future__ import annotations

import asyncio
import signal

from alerts.service import AlertService
from detectors.worker import DetectorWorker
from ingest.replay import replay
from wardwatch.auth import Role, TokenStore
from wardwatch.bus import open_bus
from wardwatch.embedded_store import open_store
from wardwatch.settings import Settings


async def run_demo(settings: Settings, duration: float | None, host: str, port: int, ready=None) -> None:
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
