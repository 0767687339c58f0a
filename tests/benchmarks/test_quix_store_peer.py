"""The ``quixstreams_store`` peer end to end on the real Kafka (SASL) and InfluxDB: every reading it
consumed is stored, NEWS2 scores are stored, and a desaturation reaches the alerts topic as the
detectors' ``AlertEvent``s, before the offsets are committed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import numpy as np

from benchmarks.pipeline import _settings_env
from benchmarks.pipeline.measure import GroupWatch
from wardwatch.lineprotocol import RAW_FIELDS
from wardwatch.columns import ReadingColumns
from wardwatch.codec import encode_readings
from wardwatch.kafka import ensure_topics, make_consumer, make_producer, send_batch, topics_for
from wardwatch.metrics_catalog import METRIC_INDEX, Metric
from wardwatch.models import AlertEvent, reading_id
from wardwatch.store import InfluxStore

SECONDS = 25


def _readings(t0: int) -> list[tuple[bytes, bytes]]:
    """p1 desaturates (SpO2 84 %) from the start, p2 stays well; HR, SpO2 and RR once a second."""
    rows = []
    for s in range(SECONDS):
        for pid, spo2 in (("p1", 84.0), ("p2", 97.0)):
            for metric, v in (("heart_rate", 80.0), ("spo2", spo2), ("resp_rate", 16.0)):
                rows.append((pid, metric, v, t0 + 1000 * s))
    n = len(rows)
    cols = ReadingColumns(np.array([reading_id(f"{p}-w", m, t) for p, m, _, t in rows], dtype=object),
                          np.array([p for p, *_ in rows], dtype=object), np.array([f"{p}-w" for p, *_ in rows], dtype=object),
                          np.array([METRIC_INDEX[Metric(m)] for _, m, _, _ in rows], dtype=np.int8),
                          np.array([v for *_, v, _ in rows]), np.array([t for *_, t in rows], dtype=np.int64),
                          np.array([t for *_, t in rows], dtype=np.int64), np.full(n, np.nan, dtype=np.float32))
    return encode_readings(cols, received=t0)


async def _produce(settings, records) -> None:
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    try:
        await send_batch(producer, topics_for(settings).readings, records)
    finally:
        await producer.stop()


async def _wait_committed(settings, total: int, proc: subprocess.Popen, timeout: float) -> int:
    watch = await GroupWatch(settings, settings.consumer_group, topics_for(settings).readings,
                             settings.readings_partitions).start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            committed, _ = await watch.consumed()
            if committed >= total:
                return committed
            await asyncio.sleep(0.5)
        return (await watch.consumed())[0]
    finally:
        await watch.stop()


async def _alert_events(settings) -> list[AlertEvent]:
    consumer = make_consumer(settings, topics_for(settings).alerts)
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=5000)
        return [AlertEvent.from_json(m.value) for msgs in batches.values() for m in msgs]
    finally:
        await consumer.stop()


def test_the_quix_streams_peer_stores_every_reading_and_publishes_the_engines_alarms(settings, tmp_path):
    t0 = int(time.time() * 1000) - 120_000
    records = _readings(t0)
    asyncio.run(_produce(settings, records))
    env = dict(os.environ, **_settings_env(settings))
    with open(tmp_path / "peer.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.pipeline.peers", "quixstreams_store",
                                 "--in", topics_for(settings).readings, "--group", settings.consumer_group,
                                 "--seconds", "180"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            committed = asyncio.run(_wait_committed(settings, len(records), proc, timeout=150))
        finally:
            proc.terminate()
            proc.wait(30)
    assert committed == len(records), (tmp_path / "peer.log").read_text()[-3000:]

    store = InfluxStore(settings)
    try:
        def count(measurement: str) -> dict[str, int]:
            # vitals: one point per patient-time, a raw field per metric (wardwatch.lineprotocol)
            fields = " or ".join(f'r._field == "{f}"' for f in (RAW_FIELDS if measurement == "vitals" else ("value",)))
            rows = store.query_sync(f'from(bucket: "{settings.influx_bucket}") |> range(start: -1h)'
                                    f' |> filter(fn: (r) => r._measurement == "{measurement}" and ({fields}))'
                                    ' |> group(columns: ["patient"]) |> count()')
            return {r["patient"]: r["_value"] for r in rows}
        vitals, scores = count("vitals"), count("scores")
    finally:
        store.close()
    assert vitals == {"p1": 3 * SECONDS, "p2": 3 * SECONDS}  # committed means stored
    assert scores == {"p1": 3, "p2": 3}  # at 0, 10 and 20 s: every 10 s, as the engine writes them

    events = [e for e in asyncio.run(_alert_events(settings)) if e.type.value == "raised"]
    assert sorted((e.alert.patient, e.alert.condition, e.at - t0) for e in events) == [
        ("p1", "spo2_critical", 5000), ("p1", "spo2_low", 15_000)]
