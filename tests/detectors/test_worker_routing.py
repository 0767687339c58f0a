"""Readings a Kafka client that is not ours puts on another partition than their patient's.

Every producer of ours keys a reading by its patient, so a patient's readings, and its state, belong
to one worker of the group. A gateway of another make may key by its device, send no key (round
robin) or pick partitions itself: the worker holding the patient must still see all of them, once."""

import asyncio
import time

import numpy as np
import pytest

from detectors.routing import Routes
from detectors.worker import DetectorWorker
from wardwatch.bus import open_bus
from wardwatch.kafka import make_producer, partition_for
from wardwatch.models import Reading
from wardwatch.store import InfluxStore

from .helpers import first_alert_events


def reading(patient: str, **kw) -> bytes:
    doc = dict(patient=patient, device="mon-7", metric="spo2", value=97, unit="%", ts=1_700_000_000_000)
    return Reading(**{**doc, **kw}).model_dump_json().encode()


PARTS = [0, 1, 2, 3, 4, 5]


def home_of(patient: str) -> int:
    return partition_for(patient.encode(), len(PARTS))


# ---------------------------------------------------------------- which readings move


def test_a_reading_on_its_patients_partition_stays_and_one_elsewhere_moves_whatever_its_key():
    patients = np.array(["p1", "p2", "p1"], object)
    routes = Routes()
    landed = home_of("p1")
    assert routes.away(patients, landed, PARTS).tolist() == [False, home_of("p2") != landed, False]
    assert routes.away(patients, (landed + 1) % 6, PARTS)[[0, 2]].tolist() == [True, True]


def test_a_new_partition_count_is_a_new_layout_not_the_old_cache():
    routes = Routes()
    routes.away(np.array(["p1"], object), 0, PARTS)
    three = [0, 1, 2]
    assert routes.away(np.array(["p1"], object), partition_for(b"p1", 3), three).tolist() == [False]


# ---------------------------------------------------------------- two workers, a foreign gateway


@pytest.mark.integration
async def test_a_patient_whose_readings_come_on_every_partition_is_watched_by_one_worker_and_alarmed_once(settings):
    """SpO2 84 % for 30 s, from a gateway that sends no key and spreads the readings over every
    partition: the group's two workers would each keep half the patient (and each raise the alarm, or
    neither); sent on to the patient's partition, one worker holds it all and raises it once."""
    bus = open_bus(settings)
    await bus.ensure_topics()
    workers = [DetectorWorker(settings), DetectorWorker(settings)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in workers]
    try:
        deadline = time.monotonic() + 60
        while not all(getattr(w, "consumer", None) and w.consumer.assignment() for w in workers):
            assert time.monotonic() < deadline, "the two workers did not both get partitions"
            await asyncio.sleep(0.2)
        n = settings.readings_partitions
        start = int(time.time() * 1000) - 60_000
        producer = make_producer(settings)  # plain aiokafka, as another vendor's gateway would use
        await producer.start()
        try:
            for i in range(30):
                await producer.send_and_wait(bus.topics.readings, reading("p-foreign", value=84, ts=start + 1000 * i),
                                             partition=i % n)
        finally:
            await producer.stop()

        events = await first_alert_events(bus, 3, timeout=10)
        raised = [e for e in events if e.alert.patient == "p-foreign" and e.type.value == "raised"]
        assert sorted(e.alert.condition for e in raised) == ["spo2_critical", "spo2_low"]
        holders = [w for w in workers if "p-foreign" in w.engine.table.index]
        assert len(holders) == 1
        owner = holders[0]
        assert {tp.partition for tp in owner.consumer.assignment()} >= {partition_for(b"p-foreign", n)}
        home = partition_for(b"p-foreign", n)
        assert sum(w.metrics.rerouted._value.get() for w in workers) == sum(1 for i in range(30) if i % n != home)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    store = InfluxStore(settings)
    rows = await store.query_series("vitals", "p-foreign", start - 1, start + 60_000, fields=["spo2"])
    store.close()
    assert len(rows) == 30
