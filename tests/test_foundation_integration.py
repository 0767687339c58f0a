"""The foundation end to end against the real servers: readings to Kafka, back out, into InfluxDB, read back."""

from __future__ import annotations

import orjson
import pytest

from wardwatch.kafka import ensure_topics, make_consumer, make_producer, send_batch, topics_for
from wardwatch.lineprotocol import vitals_line
from wardwatch.models import Reading
from wardwatch.store import InfluxStore, flux_string

pytestmark = pytest.mark.integration


async def test_readings_round_trip_through_kafka_into_influxdb(settings):
    topics = topics_for(settings)
    await ensure_topics(settings)
    base = 1_700_000_000_000
    readings = [Reading(patient=f"p{i % 7}", device=f"d{i % 7}", metric="heart_rate", value=60 + i % 40,
                        unit="/min", ts=base + 1000 * i) for i in range(2000)]
    producer = make_producer(settings)
    await producer.start()
    try:
        sent = await send_batch(producer, topics.readings,
                                [(r.patient.encode(), r.model_dump_json().encode()) for r in readings])
    finally:
        await producer.stop()
    assert sent == 2000

    consumer = make_consumer(settings, topics.readings, group_id=settings.consumer_group)
    await consumer.start()
    got: list[Reading] = []
    try:
        while len(got) < 2000:
            batches = await consumer.getmany(timeout_ms=5000, max_records=5000)
            assert batches, "no records arrived from Kafka"
            for tp, msgs in batches.items():
                for m in msgs:
                    r = Reading.model_validate(orjson.loads(m.value))
                    assert m.key == r.patient.encode()
                    got.append(r)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert sorted(r.id for r in got) == sorted(r.id for r in readings)
    # One patient's readings stay in order because a patient is one partition.
    p3 = [r.ts for r in got if r.patient == "p3"]
    assert p3 == sorted(p3)

    store = InfluxStore(settings)
    lines = [vitals_line(r.patient, r.metric.value, r.value, r.device, None, None, r.ts) for r in got]
    await store.write_lines(lines)
    await store.write_lines(lines[:500])  # a resend overwrites: idempotent
    rows = await store.query(
        f'from(bucket: {flux_string(settings.influx_bucket)}) |> range(start: 0)'
        f' |> filter(fn: (r) => r._measurement == "vitals" and r.patient == {flux_string("p3")})'
        ' |> filter(fn: (r) => r._field == "spo2" or r._field == "heart_rate" or r._field == "resp_rate")'
    )
    store.close()
    expected = {(r.ts, r.value) for r in readings if r.patient == "p3"}
    assert {(int(row["_time"].timestamp() * 1000), row["_value"]) for row in rows} == expected


async def test_store_retries_then_fails_loud_when_influxdb_is_unreachable(settings):
    bad = settings.model_copy(update={"influx_url": "http://127.0.0.1:9"})
    store = InfluxStore(bad, timeout_ms=500)
    with pytest.raises(Exception):
        await store.write_lines(["vitals,patient=p1 value=1 1"], max_attempts=2, base_delay=0.01)
    assert store.health.ok is False and store.health.write_errors == 2
    store.close()


async def test_history_series_is_downsampled_by_influxdb(settings):
    store = InfluxStore(settings)
    base = 1_700_000_040_000  # minute-aligned, as InfluxDB aligns windows to the epoch
    # One hour of 1 Hz heart rate, 60..119 repeating each minute: every 1-minute mean is 89.5.
    lines = [vitals_line("p9", "heart_rate", float(60 + i % 60), "mon", None, None, base + 1000 * i)
             for i in range(3600)]
    await store.write_lines(lines)
    raw = await store.query_series("vitals", "p9", base, base + 3_600_000, fields=["heart_rate"])
    per_minute = await store.query_series("vitals", "p9", base, base + 3_600_000, every_ms=60_000, fields=["heart_rate"])
    store.close()
    assert len(raw) == 3600
    assert len(per_minute) == 60
    assert all(row["value"] == pytest.approx(89.5) for row in per_minute)
    assert per_minute[0]["field"] == "heart_rate"


async def test_memory_bus_keeps_offsets_per_group_like_kafka(settings):
    from wardwatch.bus import MemoryBus

    bus = MemoryBus(settings.model_copy(update={"backend": "embedded"}), partitions=3)
    await bus.ensure_topics()
    producer = bus.producer()
    await producer.send_many(bus.topics.readings, [(f"p{i % 5}".encode(), str(i).encode()) for i in range(100)])
    consumer = bus.consumer(bus.topics.readings, group_id="g")
    await consumer.start()
    first = await consumer.getmany(timeout_ms=100, max_records=60)
    assert sum(len(v) for v in first.values()) == 60
    await consumer.commit()
    again = bus.consumer(bus.topics.readings, group_id="g")
    await again.start()
    rest = await again.getmany(timeout_ms=100, max_records=1000)
    seen = [int(m.value) for v in list(first.values()) + list(rest.values()) for m in v]
    assert sorted(seen) == list(range(100))
