"""The peer builds of the pipeline benchmark, each run as its own process.

    python -m benchmarks.pipeline.peers raw|per_message|quixstreams|quixstreams_store --in T [--out T2] --group G --seconds S

Kafka, InfluxDB and security settings come from the ``WARDWATCH_*`` environment, like every
service; alarms go, as ``AlertEvent`` JSON, to the alerts topic of ``WARDWATCH_TOPIC_PREFIX``.

* ``raw``: aiokafka pass-through to ``--out`` (consume, decode, send, commit), the upper limit: the
  batch API, one batch a partition fired without waiting, its acknowledgements awaited once a
  fetch while the next fetch is decoded, the partition of each key cached.
* ``per_message``: the obvious build: one message at a time, pydantic validation, dict state,
  an awaited send per alarm, commit every 1,000 messages.
* ``quixstreams`` and ``quixstreams_store``: Quix Streams 3 (:mod:`.quix_peers`).
"""

from __future__ import annotations

import argparse
import asyncio
import time

import orjson

from wardwatch import eventloop
from wardwatch.kafka import make_consumer, make_producer, partition_for
from wardwatch.settings import get_settings
from wardwatch.topics import Topics

from ..naive import PatientRules
from .alarms import RULES, alert_event


async def run_raw(a: argparse.Namespace) -> None:
    settings = get_settings()
    consumer = make_consumer(settings, a.inp, group_id=a.group)
    producer = make_producer(settings)
    await consumer.start()
    await producer.start()
    parts = sorted(await producer.partitions_for(a.out))
    partition_of: dict[bytes, int] = {}  # key -> partition: murmur2 once per patient, not per record
    in_flight: tuple[list, dict] | None = None  # the last fetch's send futures and its offsets
    deadline = time.monotonic() + a.seconds
    try:
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=50_000)
            futures, offsets = [], {}
            by_part: dict[int, list] = {}
            for tp, msgs in batches.items():
                for m in msgs:
                    orjson.loads(m.value)  # a pass-through still reads what it forwards
                    part = partition_of.get(m.key)
                    if part is None:
                        part = partition_of[m.key] = parts[partition_for(m.key, len(parts))]
                    by_part.setdefault(part, []).append(m)
                offsets[tp] = msgs[-1].offset + 1
            for part, msgs in by_part.items():
                batch = producer.create_batch()
                for m in msgs:
                    if batch.append(key=m.key, value=m.value, timestamp=None) is None:
                        futures.append(await producer.send_batch(batch, a.out, partition=part))
                        batch = producer.create_batch()
                        batch.append(key=m.key, value=m.value, timestamp=None)
                futures.append(await producer.send_batch(batch, a.out, partition=part))
            # The previous fetch's records are acknowledged while this one was read: commit it.
            if in_flight is not None:
                await asyncio.gather(*in_flight[0])
                await consumer.commit(in_flight[1])
            in_flight = (futures, offsets) if offsets else None
        if in_flight is not None:
            await asyncio.gather(*in_flight[0])
            await consumer.commit(in_flight[1])
    finally:
        await consumer.stop()
        await producer.stop()


async def run_per_message(a: argparse.Namespace) -> None:
    from wardwatch.models import Reading

    settings = get_settings()
    alerts = Topics(settings.topic_prefix).alerts
    # The obvious build keeps the client defaults (no tuned fetch sizes or batching), only the security.
    consumer = make_consumer(settings, a.inp, group_id=a.group, max_partition_fetch_bytes=1 << 20,
                             fetch_max_bytes=50 << 20)
    producer = make_producer(settings, linger_ms=0, max_batch_size=16384, max_request_size=1 << 20)
    await consumer.start()
    await producer.start()
    state: dict[str, PatientRules] = {}
    n = 0
    deadline = time.monotonic() + a.seconds
    try:
        while time.monotonic() < deadline:
            try:
                m = await asyncio.wait_for(consumer.getone(), 0.5)
            except asyncio.TimeoutError:
                continue
            r = Reading.model_validate_json(m.value)
            for change in state.setdefault(r.patient, PatientRules()).update(RULES, r.metric.value, r.value, r.ts):
                await producer.send_and_wait(alerts, alert_event(r.patient, change).to_json(), key=m.key)
            n += 1
            if n % 1000 == 0:
                await consumer.commit()
    finally:
        await consumer.commit()
        await consumer.stop()
        await producer.stop()


BUILDS = ("raw", "per_message", "quixstreams", "quixstreams_store")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("build", choices=BUILDS)
    ap.add_argument("--in", dest="inp", required=True)
    ap.add_argument("--out", help="the pass-through's output topic (raw only)")
    ap.add_argument("--group", required=True)
    ap.add_argument("--seconds", type=float, default=60)
    a = ap.parse_args(argv)
    if a.build.startswith("quixstreams"):
        from .quix_peers import run

        run(a.build, get_settings(), a.inp, a.group, a.seconds)
    elif a.build == "raw":
        if not a.out:
            ap.error("raw needs --out")
        eventloop.run(run_raw(a))  # the same loop as WardWatch's services: a like-for-like race
    else:
        eventloop.run(run_per_message(a))


if __name__ == "__main__":
    main()
