"""The full-pipeline benchmark (``make bench`` / ``wardwatch bench pipeline``).

Starts the real Kafka and InfluxDB, then for each build of the same pipeline:

1. capacity: prefill the readings topic with ``--prefill-seconds`` of the ward's data and time how
   fast the build's consumer group drains it (10 % to 90 %, so start-up is not counted);
2. latency: simulated gateways produce ``--patients`` x 3 vitals at 1 Hz for ``--seconds`` with
   wall-clock timestamps; a share of patients desaturates; the time from a reading produced to its
   alarm arriving (on a websocket client for WardWatch, on the output topic for the peers) is the
   end-to-end latency; consumer lag at the end and CPU/memory per process are sampled.

Builds: ``wardwatch`` (detector worker + alert service + websocket clients), ``per_message`` (the
obvious per-message build), ``quixstreams`` (Quix Streams 3, per-key RocksDB state) and
``raw_aiokafka`` (a pass-through: the upper limit). Results: ``bench-results/latest.json`` and a
PNG chart beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from wardwatch.kafka import ensure_topics
from wardwatch.settings import Settings

from .load import Ward, prefill, produce_live
from .measure import GroupWatch, ProcSampler, drain_rate, latency_stats

BUILDS = ("wardwatch", "per_message", "quixstreams", "raw_aiokafka")
PEER_CMD = {"per_message": "per_message", "quixstreams": "quix", "raw_aiokafka": "raw"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--patients", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=30.0, help="length of the live (latency) phase")
    p.add_argument("--prefill-seconds", type=int, default=10, help="seconds of ward data for the capacity phase")
    p.add_argument("--builds", default=",".join(BUILDS))
    p.add_argument("--workers", type=int, default=1, help="detector workers in the WardWatch build")
    p.add_argument("--out", default="bench-results")


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    from devservices import die_with_parent

    return subprocess.Popen(argv, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            preexec_fn=die_with_parent)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()


async def _peer_latency(settings: Settings, topic: str, stop: asyncio.Event, lat: list[float]) -> None:
    import orjson

    from wardwatch.kafka import make_consumer

    c = make_consumer(settings, topic, auto_offset_reset="latest")
    await c.start()
    try:
        while not stop.is_set():
            batches = await c.getmany(timeout_ms=200, max_records=20000)
            now = time.time() * 1000
            for msgs in batches.values():
                for m in msgs:
                    ev = orjson.loads(m.value)
                    if str(ev.get("event", "raised")).startswith("raised") and "ts" in ev:
                        lat.append(now - ev["ts"])
    finally:
        await c.stop()


async def run_build(build: str, base: Settings, args: argparse.Namespace, workdir: Path) -> dict:
    tag = uuid.uuid4().hex[:6]
    settings = base.model_copy(update={"topic_prefix": f"bench-{build}-{tag}.", "consumer_group": f"bench-{build}-{tag}"})
    topics = settings.topic_prefix
    readings, out = f"{topics}readings", f"{topics}out"
    await ensure_topics(settings, {readings: settings.readings_partitions, out: settings.readings_partitions})
    ward = Ward(args.patients, sick_window=(2.0, max(3.0, args.seconds - 18.0)))
    env = dict(os.environ, **{k.upper(): str(v) for k, v in _settings_env(settings).items()})
    procs: dict[str, subprocess.Popen] = {}
    latency_task = None
    lat: list[float] = []
    stop = asyncio.Event()
    total = await prefill(settings, readings, ward, args.prefill_seconds)
    budget = args.prefill_seconds * 6 + args.seconds + 120
    if build == "wardwatch":
        from .wardwatch_build import start_wardwatch, wardwatch_latency

        procs = await start_wardwatch(settings, env, workdir, args.workers)
        latency_task = asyncio.create_task(wardwatch_latency(settings, stop, lat, ward))
    else:
        cmd = [sys.executable, "-m", "benchmarks.pipeline.peers", PEER_CMD[build], "--in", readings, "--out", out, "--group", settings.consumer_group,
               "--seconds", str(budget)]
        procs = {build: _spawn(cmd, env, workdir / f"{build}.log")}
    sampler = ProcSampler({name: p.pid for name, p in procs.items()})
    sampler.start()
    watch = await GroupWatch(settings, settings.consumer_group, readings,
                             settings.readings_partitions).start()
    try:
        capacity = await drain_rate(watch, total, timeout=max(30.0, args.prefill_seconds * 4))
        # Let it finish the backlog (bounded), then measure latency on live load.
        t_end = time.monotonic() + 30
        while time.monotonic() < t_end:
            done, end = await watch.consumed()
            if done >= end:
                break
            await asyncio.sleep(0.5)
        if latency_task is None:
            latency_task = asyncio.create_task(_peer_latency(settings, out, stop, lat))
        await asyncio.sleep(1.0)
        t0 = time.monotonic()
        before, _ = await watch.consumed()
        from .wardwatch_build import LIVE_START_MS

        LIVE_START_MS[0] = int(time.time() * 1000)
        offered = await produce_live(settings, readings, ward, args.seconds)
        live_s = time.monotonic() - t0
        await asyncio.sleep(3.0)  # grace for the last alarms
        after, end = await watch.consumed()
        stop.set()
        await asyncio.wait_for(latency_task, 30)
    finally:
        resources = await sampler.stop()
        await watch.stop()
        _stop(list(procs.values()))
    result = {
        "readings_per_s": round(capacity["readings_per_s"]),
        "offered_readings_per_s": round(offered / live_s),
        "sustained_readings_per_s": round((after - before) / (live_s + 3.0)),
        "lag_at_end": int(end - after),
        **latency_stats(lat),
        "processes": resources,
    }
    return result


def _settings_env(s: Settings) -> dict[str, str]:
    return {**s.kafka_env(), "WARDWATCH_BACKEND": s.backend,
            "WARDWATCH_TOPIC_PREFIX": s.topic_prefix, "WARDWATCH_CONSUMER_GROUP": s.consumer_group,
            "WARDWATCH_INFLUX_URL": s.influx_url, "WARDWATCH_INFLUX_TOKEN": s.influx_token,
            "WARDWATCH_INFLUX_BUCKET": s.influx_bucket, "WARDWATCH_READINGS_PARTITIONS": str(s.readings_partitions),
            "WARDWATCH_DATA_DIR": str(s.data_dir)}


def _table(results: dict) -> str:
    rows = ["build          readings/s  sustained/offered   lag     p50 ms   p99 ms   max ms  alarms",
            "-------------  ----------  -----------------  ------  -------  -------  -------  ------"]
    for b, r in results.items():
        rows.append(f"{b:<13}  {r['readings_per_s']:>10,}  {r['sustained_readings_per_s']:>8,}/{r['offered_readings_per_s']:<8,}"
                    f"  {r['lag_at_end']:>6,}  {r['p50_ms'] or '-':>7}  {r['p99_ms'] or '-':>7}  {r['max_ms'] or '-':>7}  {r['alarms']:>6}")
    return "\n".join(rows)


def _chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.bar(names, [results[n]["readings_per_s"] for n in names], color="#2a6f97")
    a.set_title("capacity (readings/s)")
    b.bar(names, [results[n]["p99_ms"] or 0 for n in names], color="#c44536")
    b.set_title("p99 reading-to-alarm latency (ms)")
    b.set_yscale("log")
    for ax in (a, b):
        ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


async def _main(args: argparse.Namespace) -> int:
    from devservices import bench_services

    services = bench_services()
    workdir = Path(args.out)
    workdir.mkdir(parents=True, exist_ok=True)
    base = Settings(data_dir=workdir / "data")
    results: dict[str, dict] = {}
    try:
        for build in [b for b in args.builds.split(",") if b]:
            print(f"[bench] {build} ...", file=sys.stderr, flush=True)
            results[build] = await run_build(build, base, args, workdir)
            print(f"[bench] {build}: {results[build]['readings_per_s']:,} readings/s, p99 {results[build]['p99_ms']} ms",
                  file=sys.stderr, flush=True)
    finally:
        if services:
            services.stop()
    ww = results.get("wardwatch")
    ratios = {}
    if ww:
        for peer in ("per_message", "quixstreams", "raw_aiokafka"):
            if peer in results and results[peer]["readings_per_s"]:
                ratios[f"wardwatch_vs_{peer}"] = round(ww["readings_per_s"] / results[peer]["readings_per_s"], 2)
    doc = {**results, "ratios": ratios,
           "setup": {"patients": args.patients, "vitals": 3, "live_seconds": args.seconds,
                     "prefill_seconds": args.prefill_seconds, "cpus": os.cpu_count(),
                     "loadavg_at_end": list(os.getloadavg())}}
    (workdir / "latest.json").write_text(json.dumps(doc, indent=2))
    _chart(results, workdir / "latest.png")
    if args.json:
        print(json.dumps(doc))
    else:
        print(_table(results))
        for k, v in ratios.items():
            print(f"{k}: {v}x")
        print(f"written: {workdir / 'latest.json'}, {workdir / 'latest.png'}")
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_main(args))
