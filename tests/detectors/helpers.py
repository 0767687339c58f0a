"""Builders shared by the detector tests."""

from __future__ import annotations

import numpy as np

from wardwatch.columns import ReadingColumns
from wardwatch.metrics_catalog import METRIC_INDEX, Metric
from wardwatch.models import reading_id


def columns(patients, metrics, values, ts, quality=None, device="dev") -> ReadingColumns:
    n = len(values)
    patients = list(patients) if not isinstance(patients, str) else [patients] * n
    metrics = list(metrics) if not isinstance(metrics, str) else [metrics] * n
    q = np.full(n, np.nan, np.float32) if quality is None else np.asarray(quality, np.float32)
    return ReadingColumns(
        id=np.array([reading_id(f"{device}-{p}", m, int(t)) for p, m, t in zip(patients, metrics, ts)], object),
        patient=np.array(patients, object), device=np.array([f"{device}-{p}" for p in patients], object),
        metric=np.array([METRIC_INDEX[Metric(m)] for m in metrics], np.int8), value=np.asarray(values, float),
        ts=np.asarray(ts, np.int64), received=np.zeros(n, np.int64), quality=q)


def worker_env(settings, data_dir) -> dict:
    """The environment of a `wardwatch detect` process pointed at the test's servers and topics."""
    import os

    return dict(os.environ, **settings.kafka_env(), WARDWATCH_BACKEND="kafka",
                WARDWATCH_TOPIC_PREFIX=settings.topic_prefix, WARDWATCH_CONSUMER_GROUP=settings.consumer_group,
                WARDWATCH_INFLUX_URL=settings.influx_url, WARDWATCH_INFLUX_TOKEN=settings.influx_token,
                WARDWATCH_INFLUX_BUCKET=settings.influx_bucket,
                WARDWATCH_READINGS_PARTITIONS=str(settings.readings_partitions),
                WARDWATCH_STALE_AFTER_S="1000000000", WARDWATCH_DATA_DIR=str(data_dir))


def spawn_worker(settings, data_dir, name: str, port: int | None = None):
    """A `wardwatch detect` process; returns it and its health port."""
    import subprocess
    import sys
    from pathlib import Path

    from devservices import free_port

    port = port or free_port()
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "detect", "--processes", "1", "--metrics-port", str(port)],
                            env=worker_env(settings, data_dir), stdout=open(Path(data_dir) / f"{name}.log", "ab"),
                            stderr=subprocess.STDOUT)
    return proc, port


async def first_alert_events(bus, n: int, timeout: float = 30.0) -> list:
    """The first ``n`` alert events on the alerts topic (fewer if ``timeout`` passes)."""
    import time

    from wardwatch.models import AlertEvent

    consumer = bus.consumer(bus.topics.alerts, group_id=None)
    await consumer.start()
    events: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(events) < n and time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                events += [AlertEvent.from_json(m.value) for m in msgs]
    finally:
        await consumer.stop()
    return events


async def run_worker_until_alerts(settings, bus, items: list[tuple[bytes, bytes]], n: int) -> tuple[list, object]:
    """Produce raw ``items`` to the readings topic, run a worker in this process until ``n`` alert
    events are out (or 30 s pass), stop it; returns the events and the worker (for its metrics)."""
    import asyncio

    from detectors.worker import DetectorWorker

    producer = bus.producer()
    await producer.start()
    await producer.send_many(bus.topics.readings, items)
    await producer.stop()
    worker = DetectorWorker(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    events = await first_alert_events(bus, n)
    stop.set()
    await task
    return events, worker
