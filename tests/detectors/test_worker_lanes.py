"""The worker's loop over the in-process bus: alarms leave as soon as their batch is computed, while
InfluxDB is still being written; the periodic checkpoint waits in the background, and offsets move
only once the store has the batch."""

from __future__ import annotations

import asyncio
import time

from detectors.engine import DetectorEngine
from detectors.scores.news2 import News2Stage
from detectors.worker import DetectorWorker
from wardwatch.bus import MemoryBus
from wardwatch.models import Reading
from wardwatch.settings import Settings
from wardwatch.store import StoreHealth


class GatedStore:
    """InfluxDB that takes writes only once the gate is open (a slow or stalled store)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.lines: list[str] = []
        self.health = StoreHealth()

    async def write_lines(self, lines, **_) -> None:
        await self.gate.wait()
        self.lines += lines


async def alert_events(bus: MemoryBus) -> int:
    reader = bus.consumer(bus.topics.alerts, group_id=None)
    await reader.start()
    n = sum(len(v) for v in (await reader.getmany(timeout_ms=0, max_records=10_000)).values())
    await reader.stop()
    return n


async def committed(bus: MemoryBus, settings: Settings) -> int:
    progress = await bus.group_progress(settings.consumer_group, bus.topics.readings)
    return sum(c or 0 for c, _ in progress.values())


async def test_alarms_leave_before_the_store_and_the_next_fetch_and_offsets_wait_for_the_store(tmp_path):
    settings = Settings(backend="embedded", readings_partitions=2, stale_after_s=10**9, data_dir=tmp_path,
                        detect_checkpoint_s=0.01)
    bus = MemoryBus(settings)
    await bus.ensure_topics()
    t0 = int(time.time() * 1000) - 600_000
    readings = [Reading(patient="p1", device="d1", metric="spo2", value=97 if i < 5 else 80, unit="%", ts=t0 + 1000 * i)
                for i in range(30)]
    producer = bus.producer()
    await producer.send_many(bus.topics.readings, [(b"p1", r.model_dump_json().encode()) for r in readings])
    store = GatedStore()
    worker = DetectorWorker(settings, bus=bus, store=store,
                            engine_factory=lambda: DetectorEngine(stages=[News2Stage()], stale_after_ms=10**12))
    await worker.start()
    out_at_fetch: list[int] = []
    fetch = worker.consumer.getmany

    async def getmany(*args, **kw):
        out_at_fetch.append(sum(p.end for p in bus.log(bus.topics.alerts)))  # what is out by now, no await
        return await fetch(*args, **kw)

    worker.consumer.getmany = getmany
    try:
        # Both steps in this task, as the worker's loop runs them (a checkpoint is due: it must not block).
        await worker.step(timeout_ms=0)
        await worker.step(timeout_ms=0)
        assert out_at_fetch[1] >= 2, "the SpO2 alarms were out before the next fetch"
        assert not store.lines and await committed(bus, settings) == 0  # not stored, so not committed
        assert worker.checkpoint.committing
        store.gate.set()
        for _ in range(100):
            if await committed(bus, settings) == len(readings):
                break
            await asyncio.sleep(0.01)
        assert await committed(bus, settings) == len(readings) and len(store.lines) >= len(readings)
    finally:
        store.gate.set()  # else the final commit would wait for the store for ever
        await worker.close()
