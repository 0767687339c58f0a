"""`wardwatch score` and the live worker give the same alarms for the same readings.

Real CinC 2019 patients are replayed offline (hour by hour, as `score` does) and, separately, sent
as readings through the real Kafka to a `wardwatch detect` process: the alarm events must match.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pandas as pd
import pytest

from detectors.early_warning.replay import CINC, replay
from detectors.engine import DetectorEngine
from wardwatch.bus import open_bus
from wardwatch.metrics_catalog import CATALOG, Metric
from wardwatch.models import Reading
from wardwatch.store import InfluxStore

from ..detectors.helpers import spawn_worker
from ..detectors.test_worker_group_kill import read_alert_topic, total_points

pytestmark = pytest.mark.integration


async def test_offline_score_and_live_worker_raise_the_same_alarms(settings, shared_data, tmp_path):
    df = pd.read_csv(shared_data / "cinc2019" / "cinc2019_setB_dev.csv.gz").drop(columns=["SepsisLabel"])
    sizes = df.groupby("patient").size()
    chosen = sizes[(sizes >= 30) & (sizes <= 60)].index[:12]
    df = df[df["patient"].isin(chosen)].reset_index(drop=True)
    for col, metric in CINC.items():  # keep values the live path accepts, so both see the same readings
        info = CATALOG[Metric(metric)]
        df.loc[(df[col] < info.low) | (df[col] > info.high), col] = np.nan
    base = (int(time.time() * 1000) // 3_600_000 - 70) * 3_600_000
    offline: list = []
    replay(df, DetectorEngine(stale_after_ms=10**15), base, offline)
    expected = {e.event_id for e in offline}
    assert expected, "these patients raise alarms"

    readings = [Reading(patient=str(r.patient), device=str(r.patient), metric=CINC[col], value=float(getattr(r, col)),
                        unit=CATALOG[Metric(CINC[col])].unit, ts=base + (int(r.ICULOS) - 1) * 3_600_000)
                for r in df.itertuples() for col in CINC if not np.isnan(getattr(r, col))]
    bus = open_bus(settings)
    await bus.ensure_topics()
    producer = bus.producer()
    await producer.start()
    await producer.send_many(bus.topics.readings, [(r.patient.encode(), r.model_dump_json().encode()) for r in readings])
    await producer.stop()
    worker, _ = spawn_worker(settings, tmp_path, "w")
    store = InfluxStore(settings)
    try:
        deadline = time.monotonic() + 90
        while await total_points(store, settings.influx_bucket) < len(readings) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        live: dict = {}
        deadline = time.monotonic() + 30
        while set(live) != expected and time.monotonic() < deadline:
            live = await read_alert_topic(bus)
        assert set(live) == expected
    finally:
        store.close()
        worker.terminate()
        worker.wait(20)
