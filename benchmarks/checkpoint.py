"""``wardwatch bench checkpoint``: what one state checkpoint of many dirty patients costs the worker's
loop, the JSON records of earlier releases (one ``state_dict`` and one orjson document per patient)
beside the binary records built for all dirty rows at once (:mod:`detectors.state_records`), in the
same run: milliseconds to build them, bytes sent to the state topic, milliseconds to load them back.
The third row is what the worker sends: the binary records compressed (its build time is the
binary build, which the loop waits for, plus the compression, which runs in a thread beside it).

The engine is the worker's (every score stage), warmed on a few seconds of synthetic ward data so
the arrays hold real values. With ``--kafka`` each set of records is also sent (acks=all, as the
worker sends) to the state topic of a throw-away topic prefix on the Kafka the ``WARDWATCH_KAFKA_*``
settings name: before, the loop waited for build and send; now it waits for the build only.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import orjson

from detectors.engine import DetectorEngine
from detectors.state_records import compress_records, read_record
from wardwatch import eventloop
from wardwatch.codec import decode_readings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--patients", type=int, default=10_000, help="dirty patients in the checkpoint")
    p.add_argument("--seconds", type=int, default=5, help="seconds of ward data (3 vitals at 1 Hz) before it")
    p.add_argument("--repeat", type=int, default=3, help="best of this many")
    p.add_argument("--kafka", action="store_true", help="also time the send to Kafka (WARDWATCH_KAFKA_* settings)")


def warmed_engine(patients: int, seconds: int) -> DetectorEngine:
    from .detectors import messages

    engine = DetectorEngine(stale_after_ms=10**12)
    now = int(time.time() * 1000)
    for chunk in messages(patients, seconds):
        cols, _ = decode_readings(chunk, now)
        engine.process(cols)
    return engine


def json_records(engine: DetectorEngine, patients: list[str], covers: dict[int, int]) -> list[bytes]:
    """What the worker built before the binary records (its _encode_state over state_dict)."""
    cov = {str(k): v for k, v in covers.items()}
    return [orjson.dumps({"covers": cov, "state": orjson.Fragment(engine.state_dict(p))}) for p in patients]


def best_ms(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000, 1), out


async def send_ms(patients: list[str], records: list[bytes], repeat: int) -> float:
    from wardwatch.kafka import ensure_topics, make_producer, send_batch, topics_for
    from wardwatch.settings import get_settings

    settings = get_settings().model_copy(update={"topic_prefix": "wardwatch-bench-checkpoint."})
    await ensure_topics(settings)
    topic = topics_for(settings).state
    producer = make_producer(settings)
    await producer.start()
    try:
        parts = sorted(await producer.partitions_for(topic))
        items = list(zip([p.encode() for p in patients], records))
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            await send_batch(producer, topic, items, parts)
            best = min(best, time.perf_counter() - t0)
        return round(best * 1000, 1)
    finally:
        await producer.stop()


def run(args: argparse.Namespace) -> int:
    engine = warmed_engine(args.patients, args.seconds)
    patients = list(engine.table.ids)
    covers = {p: 1_000_000 + p for p in range(6)}
    res: dict = {"patients": len(patients), "cpus": os.cpu_count(), "loadavg": list(os.getloadavg())}
    for name, build in (("json", lambda: json_records(engine, patients, covers)),
                        ("binary", lambda: engine.state_records(patients, covers)),
                        ("compressed", lambda: compress_records(engine.state_records(patients, covers)))):
        ms, records = best_ms(build, args.repeat)
        parsed = {p: read_record(r) for p, r in zip(patients, records)}
        load_ms, (loaded, refused) = best_ms(lambda: DetectorEngine(stale_after_ms=10**12).load_records(parsed),
                                             args.repeat)
        assert len(loaded) == len(patients) and not refused
        res[name] = {"build_ms": ms, "bytes": sum(map(len, records)), "bytes_per_patient": round(sum(map(len, records)) / len(records)),
                     "load_ms": load_ms}
        if args.kafka:
            res[name]["send_ms"] = eventloop.run(send_ms(patients, records, args.repeat))
    res["build_speedup"] = round(res["json"]["build_ms"] / res["binary"]["build_ms"], 1)
    if args.json:
        print(json.dumps(res))
    else:
        print(f"state checkpoint of {res['patients']:,} dirty patients      build ms     bytes   bytes/patient   load ms"
              + ("   send ms" if args.kafka else ""))
        for name in ("json", "binary", "compressed"):
            r = res[name]
            print(f"  {name:<38} {r['build_ms']:>9} {r['bytes']:>11,} {r['bytes_per_patient']:>10} {r['load_ms']:>11}"
                  + (f" {r['send_ms']:>9}" if args.kafka else ""))
        print(f"  binary builds {res['build_speedup']}x faster (same run; ratios only on a shared machine); compressed,"
              f" {res['binary']['bytes'] / res['compressed']['bytes']:.1f}x fewer bytes (the worker compresses in a thread)")
    return 0
