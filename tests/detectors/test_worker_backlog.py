"""A gateway that flushes hours of one patient's readings after an outage: the backlog is worked
through a bounded batch at a time, and the other patients are watched in between, not after it."""

import time

import pytest

import detectors.worker as worker_module
from detectors.worker import DetectorWorker
from wardwatch.bus import open_bus
from wardwatch.kafka import partition_for
from wardwatch.metrics_catalog import METRIC_INDEX, Metric
from wardwatch.models import Reading

pytestmark = pytest.mark.integration
HR = METRIC_INDEX[Metric.heart_rate]


def on_partition(prefix: str, partition: int, n: int) -> str:
    return next(f"{prefix}{i}" for i in range(1000) if partition_for(f"{prefix}{i}".encode(), n) == partition)


async def test_a_flushed_backlog_is_taken_a_bounded_batch_at_a_time_losing_and_repeating_nothing(settings, monkeypatch):
    monkeypatch.setattr(worker_module, "MAX_PER_PATIENT", 300)
    bus = open_bus(settings)
    await bus.ensure_topics()
    n = settings.readings_partitions
    backlog, other = on_partition("backlog-", 0, n), on_partition("ward-", 1, n)
    start = int(time.time() * 1000) - 3 * 3600_000
    flushed = [Reading(patient=backlog, device="gw", metric="heart_rate", value=80, unit="/min", ts=start + 1000 * i)
               for i in range(1500)]
    live = [Reading(patient=other, device="mon", metric="spo2", value=84, unit="%", ts=start + 1000 * i) for i in range(30)]
    producer = bus.producer()
    await producer.start()
    await producer.send_many(bus.topics.readings, [(r.patient.encode(), r.model_dump_json().encode()) for r in flushed + live])
    await producer.stop()

    worker = DetectorWorker(settings)
    await worker.start()
    try:
        done, steps = [], 0
        while len(done) < 2 and steps < 200:
            before = max(_last_hr(worker, backlog), start - 1000)
            await worker.step()
            steps += 1
            after = _last_hr(worker, backlog)
            assert after - before <= 300 * 1000  # never more than a bounded batch of the backlog at once
            done = [p for p, last in ((backlog, after), (other, _last(worker, other))) if last == _end(p, flushed, live)]
        assert len(done) == 2, "the backlog or the live patient was not processed"
    finally:
        await worker.close()  # its last commit waits for every batch's stores
    assert worker.metrics.readings._value.get() == 1530  # every reading once
    assert worker.metrics.late._value.get() == 0  # none fetched again and processed twice


def _row(worker, patient):
    return worker.engine.table.index.get(patient)


def _last_hr(worker, patient) -> int:
    r = _row(worker, patient)
    return -1 if r is None else int(worker.engine.filters.last_ts[r, HR])


def _last(worker, patient) -> int:
    r = _row(worker, patient)
    return -1 if r is None else int(worker.engine.filters.last_ts[r].max())


def _end(patient, flushed, live) -> int:
    return max(r.ts for r in flushed + live if r.patient == patient)
