"""The peer builds of the pipeline benchmark, each run as its own process.

    python -m benchmarks.pipeline.peers raw|per_message|quix --in T --out T2 --group G --seconds S

Kafka connection and security settings come from the ``WARDWATCH_*`` environment, like every service.

* ``raw``: aiokafka pass-through (consume a batch, decode, send_batch, commit): the upper limit.
* ``per_message``: the obvious build: one message at a time, pydantic validation, dict state,
  an awaited send per alarm, commit every 1,000 messages.
* ``quix``: the same rules on Quix Streams 3 (per-key state in its RocksDB store).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

import orjson

from wardwatch.kafka import librdkafka_options, make_consumer, make_producer
from wardwatch.settings import get_settings

from ..naive import PIPELINE, PatientRules


async def run_raw(a: argparse.Namespace) -> None:
    from wardwatch.kafka import send_batch

    settings = get_settings()
    consumer = make_consumer(settings, a.inp, group_id=a.group)
    producer = make_producer(settings)
    await consumer.start()
    await producer.start()
    parts = sorted(await producer.partitions_for(a.out))
    deadline = time.monotonic() + a.seconds
    try:
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=20000)
            items = []
            for msgs in batches.values():
                for m in msgs:
                    r = orjson.loads(m.value)
                    items.append((m.key, orjson.dumps(r)))
            if items:
                await send_batch(producer, a.out, items, parts)
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


async def run_per_message(a: argparse.Namespace) -> None:
    from wardwatch.models import Reading

    settings = get_settings()
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
            for change in state.setdefault(r.patient, PatientRules()).update(PIPELINE, r.metric.value, r.value, r.ts):
                await producer.send_and_wait(a.out, orjson.dumps({"patient": r.patient, "event": change, "ts": r.ts}),
                                             key=m.key)
            n += 1
            if n % 1000 == 0:
                await consumer.commit()
    finally:
        await consumer.commit()
        await consumer.stop()
        await producer.stop()


def run_quix(a: argparse.Namespace) -> None:
    from quixstreams import Application

    settings = get_settings()
    extra = librdkafka_options(settings)
    app = Application(broker_address=settings.kafka_bootstrap, consumer_extra_config=extra, producer_extra_config=extra,
                      consumer_group=a.group, auto_offset_reset="earliest",
                      state_dir=tempfile.mkdtemp(prefix="ww-quix-"), commit_interval=1.0, loglevel="WARNING")
    src = app.topic(a.inp, value_deserializer="json")
    dst = app.topic(a.out, value_serializer="json")
    sdf = app.dataframe(src)

    def rules(value: dict, state) -> dict | None:
        r = PatientRules.from_dict(state.get("rules"))
        changes = r.update(PIPELINE, value["metric"], float(value["value"]), int(value["ts"]))
        state.set("rules", r.to_dict())
        # At most one change a reading (every pipeline rule has a delay).
        return {"patient": value["patient"], "event": changes[0], "ts": value["ts"]} if changes else None

    sdf = sdf.apply(rules, stateful=True).filter(lambda v: v is not None)
    sdf.to_topic(dst)
    _run_for(app, a.seconds)


def _run_for(app, seconds: float) -> None:
    import threading

    threading.Timer(seconds, app.stop).start()
    app.run()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("build", choices=["raw", "per_message", "quix"])
    ap.add_argument("--in", dest="inp", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--seconds", type=float, default=60)
    a = ap.parse_args(argv)
    if a.build == "quix":
        run_quix(a)
    else:
        asyncio.run(run_raw(a) if a.build == "raw" else run_per_message(a))


if __name__ == "__main__":
    main()
