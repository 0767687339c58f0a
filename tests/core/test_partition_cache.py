"""send_batch partitions as the Java client does, hashing each key once per topic and partition layout."""

from __future__ import annotations

import pytest

from wardwatch import kafka
from wardwatch.kafka import ensure_topics, make_consumer, make_producer, partition_for, send_batch, topics_for

pytestmark = pytest.mark.integration


async def test_each_key_is_hashed_once_and_lands_where_the_java_partitioner_puts_it(settings, monkeypatch):
    hashed: list[bytes] = []

    def counting(key: bytes, n: int) -> int:
        hashed.append(key)
        return partition_for(key, n)

    monkeypatch.setattr(kafka, "partition_for", counting)
    topic = topics_for(settings).readings
    await ensure_topics(settings)
    keys = [f"patient-{i}".encode() for i in range(300)]
    producer = make_producer(settings)
    await producer.start()
    try:
        parts = sorted(await producer.partitions_for(topic))
        for second in range(3):  # the same patients every second
            await send_batch(producer, topic, [(k, b"%d" % second) for k in keys], parts)
    finally:
        await producer.stop()
    assert sorted(hashed) == sorted(keys), "every key hashed exactly once over three sends"

    consumer = make_consumer(settings, topic, group_id=None)
    await consumer.start()
    landed: dict[bytes, set[int]] = {}
    n = 0
    try:
        await consumer.seek_to_beginning()
        while n < 3 * len(keys):
            batches = await consumer.getmany(timeout_ms=5000)
            assert batches, "records missing"
            for tp, msgs in batches.items():
                n += len(msgs)
                for m in msgs:
                    landed.setdefault(m.key, set()).add(tp.partition)
    finally:
        await consumer.stop()
    assert landed == {k: {parts[partition_for(k, len(parts))]} for k in keys}
