"""Readings a Kafka client that is not ours puts on another partition than their patient's.

Every producer of ours keys a reading by its patient, so a patient's readings, and its state, belong
to one worker of the group. A gateway of another make may key by its device, send no key (round
robin) or pick partitions itself: the worker holding the patient must still see all of them, once."""

import asyncio
import time
from types import SimpleNamespace

import orjson
import pytest

from detectors.routing import patient_of, split_misrouted
from detectors.worker import DetectorWorker
from wardwatch.bus import open_bus
from wardwatch.kafka import make_producer, partition_for
from wardwatch.models import Reading
from wardwatch.store import InfluxStore

from .helpers import first_alert_events


def record(value: bytes, key: bytes | None):
    return SimpleNamespace(value=value, key=key)


def reading(patient: str, **kw) -> bytes:
    doc = dict(patient=patient, device="mon-7", metric="spo2", value=97, unit="%", ts=1_700_000_000_000)
    return Reading(**{**doc, **kw}).model_dump_json().encode()


PARTS = [0, 1, 2, 3, 4, 5]


def home_of(patient: bytes) -> int:
    return partition_for(patient, len(PARTS))


# ---------------------------------------------------------------- which records move


def test_our_own_records_stay_where_they_are():
    value = reading("p1")
    home, away = split_misrouted([record(value, b"p1")], home_of(b"p1"), PARTS, {})
    assert len(home) == 1 and away == []


def test_a_reading_keyed_by_its_device_goes_to_its_patients_partition():
    value = reading("p1")
    landed = home_of(b"mon-7")
    home, away = split_misrouted([record(value, b"mon-7")], landed, PARTS, {})
    assert home == [] and away == [(b"p1", value)]


def test_a_reading_without_a_key_or_on_a_partition_chosen_by_hand_is_sent_on_keyed_by_its_patient():
    value = reading("p1")
    elsewhere = (home_of(b"p1") + 1) % len(PARTS)
    for key, landed in ((None, home_of(b"p1")), (b"p1", elsewhere)):
        home, away = split_misrouted([record(value, key)], landed, PARTS, {})
        assert home == [] and away == [(b"p1", value)]


def test_the_body_names_the_patient_not_the_key_even_with_spaces_or_a_second_patient_field():
    spaced = orjson.dumps({"patient": "p2"}).replace(b":", b": ")
    assert patient_of(spaced, b"p2") == b"p2"  # another client's spacing: read with a parser
    twice = b'{"patient":"p1","patient":"p2","metric":"spo2"}'
    assert patient_of(twice, b"p1") == b"p2"  # a parser keeps the last: so does the worker's decoder


def test_a_record_whose_patient_cannot_be_read_stays_for_the_decoder_to_reject_with_its_reason():
    for value in (b"{not json", b"[1, 2]", b'{"patient": 7}', b"", None):
        home, away = split_misrouted([record(value, b"x")], 0, PARTS, {})
        assert len(home) == 1 and away == []


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
        # Every one moved, even those that landed on the right partition: without the patient as key,
        # a restored worker could not tell which of them its saved state already holds.
        assert sum(w.metrics.rerouted._value.get() for w in workers) == 30
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    store = InfluxStore(settings)
    rows = await store.query_series("vitals", "p-foreign", start - 1, start + 60_000, fields=["spo2"])
    store.close()
    assert len(rows) == 30
