"""A gateway flushing hours of one patient's readings does not hold the worker: the backlog is
computed in parts with the loop's turns between them, another patient's alarm in the same fetch
leaves before the backlog is done, and nothing differs from computing the batch in one call."""

from __future__ import annotations

import asyncio
import time
from unittest.mock import patch

from detectors.engine import DetectorEngine
from detectors.scores.news2 import News2Stage
from detectors.worker import MAX_ROUNDS, DetectorWorker
from wardwatch.bus import MemoryBus
from wardwatch.codec import decode_readings
from wardwatch.models import Reading
from wardwatch.settings import Settings
from wardwatch.store import StoreHealth


class ListStore:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.health = StoreHealth()

    async def write_lines(self, lines, **_) -> None:
        self.lines += lines


def engine() -> DetectorEngine:
    return DetectorEngine(stages=[News2Stage()], stale_after_ms=10**12)


async def test_a_flushed_backlog_is_computed_in_parts_and_another_patients_alarm_leaves_first(tmp_path):
    settings = Settings(backend="embedded", readings_partitions=1, stale_after_s=10**9, data_dir=tmp_path)
    bus = MemoryBus(settings)
    await bus.ensure_topics()
    now = int(time.time() * 1000)
    backlog_n = 3 * MAX_ROUNDS + 40  # four parts
    backlog = [Reading(patient="b1", device="gw-buffer", metric="heart_rate", value=80 + i % 7, unit="/min",
                       ts=now - 7_200_000 + 1000 * i) for i in range(backlog_n)]
    # In the same fetch, after the backlog: another patient whose SpO2 falls (an alarm after its delay).
    falling = [Reading(patient="p1", device="d1", metric="spo2", value=97 if i < 5 else 80, unit="%",
                       ts=now - 60_000 + 1000 * i) for i in range(30)]
    values = [r.model_dump_json().encode() for r in backlog + falling]
    producer = bus.producer()
    await producer.send_many(bus.topics.readings, [(r.patient.encode(), v) for r, v in zip(backlog + falling, values)])

    store = ListStore()
    worker = DetectorWorker(settings, bus=bus, store=store, engine_factory=engine)
    await worker.start()
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count_turns())
    calls: list[tuple[int, int]] = []  # (loop turns so far, alarm events out so far) at each engine call
    process = worker.engine.process

    def spy(*args, **kw):
        calls.append((turns, sum(p.end for p in bus.log(bus.topics.alerts))))
        return process(*args, **kw)

    worker.engine.process = spy
    try:
        await worker.step(timeout_ms=0)
        await worker.flush()
    finally:
        counter.cancel()
        await worker.close()

    assert len(calls) == 4, "the backlog in parts of MAX_ROUNDS reading times"
    assert all(b[0] > a[0] for a, b in zip(calls, calls[1:])), "the loop had its turns between the parts"
    assert calls[-1][1] >= 1, "p1's alarm was out before the backlog's last part was computed"

    # The same as one call on the whole batch: the same events and the same stored lines.
    whole = engine().process(decode_readings(values, now)[0], now)
    out = bus.log(bus.topics.alerts)
    sent = sorted(m.value for p in out for m in p.records)
    assert sent == sorted(e.to_json() for e in whole.events)
    assert any(e.alert.patient == "p1" for e in whole.events)
    assert sorted(set(store.lines)) == sorted(set(whole.lines))
    assert await bus.group_progress(settings.consumer_group, bus.topics.readings) == {0: (len(values), len(values))}


async def test_a_backlog_held_across_fetches_lets_the_next_fetchs_alarm_out_first(tmp_path):
    """After a part's worth of time the rest of a backlog is held (detectors/backlog.py) and the
    worker fetches again: a patient whose SpO2 falls in a later fetch gets its alarm out while the
    backlog is still being computed; the backlog patient's own new readings wait behind its backlog;
    the result is still that of one engine call on everything, and the offsets reach the end."""
    settings = Settings(backend="embedded", readings_partitions=1, stale_after_s=10**9, data_dir=tmp_path)
    bus = MemoryBus(settings)
    await bus.ensure_topics()
    now = int(time.time() * 1000)
    backlog = [Reading(patient="b1", device="gw-buffer", metric="heart_rate", value=80 + i % 7, unit="/min",
                       ts=now - 7_200_000 + 1000 * i) for i in range(6 * MAX_ROUNDS)]
    falling = [Reading(patient="p1", device="d1", metric="spo2", value=97 if i < 5 else 80, unit="%",
                       ts=now - 60_000 + 1000 * i) for i in range(30)]
    b1_now = [Reading(patient="b1", device="gw-buffer", metric="heart_rate", value=88, unit="/min", ts=now - 1000)]
    producer = bus.producer()
    encode = lambda rs: [(r.patient.encode(), r.model_dump_json().encode()) for r in rs]  # noqa: E731
    await producer.send_many(bus.topics.readings, encode(backlog))

    store = ListStore()
    worker = DetectorWorker(settings, bus=bus, store=store, engine_factory=engine)
    await worker.start()
    b1_rounds = []  # b1's rounds computed so far, at each engine call
    process = worker.engine.process

    def spy(cols, *args, **kw):
        b1_rounds.append(int((cols.patient == "b1").sum()))
        return process(cols, *args, **kw)

    worker.engine.process = spy
    alarms_out = lambda: [m for p in bus.log(bus.topics.alerts) for m in p.records]  # noqa: E731
    try:
        with patch("detectors.worker.PART_BUDGET_S", 0.0):
            await worker.step(timeout_ms=0)  # the backlog's first part, and the next one
            assert worker.backlog is not None and len(worker.backlog.cols) == 4 * MAX_ROUNDS
            await producer.send_many(bus.topics.readings, encode(falling + b1_now))
            await worker.step(timeout_ms=0)  # p1's 30 s at once; b1's new reading joins its backlog
            assert any(b"p1" in m.key for m in alarms_out()), "p1's alarm is out"
            assert worker.backlog is not None, "while b1's backlog is still held"
            assert len(worker.backlog.cols) == 3 * MAX_ROUNDS + 1
            while worker.backlog is not None:
                await worker.step(timeout_ms=0)
        await worker.flush()
    finally:
        await worker.close()

    assert sum(b1_rounds) == len(backlog) + 1
    everything = [r.model_dump_json().encode() for r in backlog + falling + b1_now]
    whole = engine().process(decode_readings(everything, now)[0], now)
    assert sorted(m.value for m in alarms_out()) == sorted(e.to_json() for e in whole.events)
    assert sorted(set(store.lines)) == sorted(set(whole.lines))
    n = len(everything)
    assert await bus.group_progress(settings.consumer_group, bus.topics.readings) == {0: (n, n)}
