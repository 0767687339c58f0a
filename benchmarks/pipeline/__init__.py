"""The full-pipeline benchmark (``make bench`` / ``wardwatch bench pipeline``).

Starts the real Kafka (SASL/SCRAM, as the tests) and InfluxDB, then for each build of the same
pipeline, on its own topic prefix:

1. capacity: prefill the readings topic with ``--prefill-seconds`` of the ward's data and time how
   fast the build's consumer group drains it, timed between its commits (``measure.window_rate``:
   from the first past 10 %, so start-up is not counted, to the last made while still reading);
2. latency: simulated gateways produce ``--patients`` x 3 vitals at 1 Hz for ``--seconds`` with
   wall-clock timestamps; a share of patients desaturates after the warm-up; the time from a reading
   produced to its alarm on a nurse's websocket (the same alert service process for every build) is
   the end-to-end latency, counted for readings after ``--warmup-seconds``; consumer lag at the end
   and CPU/memory per process are sampled. WardWatch's lag is its workers' own count (their
   /healthz: the end of the topic less their position) as the load ends (its committed lag, should
   a worker not answer); a peer's is its group's
   committed lag 3 s later, which trails by up to its commit interval (WardWatch's committed lag,
   which trails by up to ``detect_checkpoint_s``, is kept as ``committed_lag_at_end``).

Builds: ``wardwatch`` (detector workers + alert service), ``quixstreams_store`` (Quix Streams 3 doing
the same job: state, rules, NEWS2, InfluxDB), ``quixstreams`` and ``per_message`` (the rules only,
no storage) and ``raw_aiokafka`` (a pass-through, the ceiling; it raises no alarms, so its latency
is taken on its output topic). Results: ``bench-results/latest.json`` and a PNG chart beside it.
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

from wardwatch import eventloop
from wardwatch.kafka import ensure_topics, topics_for
from wardwatch.settings import Settings

from .feed_probe import raised_at, start_alert_service, topic_latency, websocket_latency
from .load import Ward, prefill, produce_live
from .measure import GroupWatch, ProcSampler, drain_rate, latency_stats
from .wardwatch_build import start_detectors, worker_lag

BUILDS = ("wardwatch", "quixstreams_store", "quixstreams", "per_message", "raw_aiokafka")
PEER_CMD = {"quixstreams_store": "quixstreams_store", "quixstreams": "quixstreams", "per_message": "per_message",
            "raw_aiokafka": "raw"}
# Where each build's alarms are timed: the raw pass-through raises none, so its copies of the
# readings are timed on its output topic instead (a floor, not a like-for-like figure).
LATENCY_AT = {b: "topic" if b == "raw_aiokafka" else "websocket" for b in BUILDS}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--patients", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=60.0, help="length of the live (latency) phase")
    p.add_argument("--warmup-seconds", type=float, default=30.0,
                   help="latency statistics leave out alarms of readings from the live phase's first seconds")
    p.add_argument("--prefill-seconds", type=int, default=90,
                   help="seconds of ward data for the capacity phase (2,700,000 readings at 10,000 patients: "
                        "a drain long enough for several commits of a build that commits every 5 s)")
    p.add_argument("--builds", default=",".join(BUILDS))
    p.add_argument("--workers", type=int, default=1, help="detector processes (`wardwatch detect`) in the WardWatch build")
    p.add_argument("--processes", type=int, default=None,
                   help="passed on as `wardwatch detect --processes N` (default: detect's own default)")
    p.add_argument("--out", default="bench-results")
    p.add_argument("--chart-copy", default=None, help="also write the chart here (e.g. docs/benchmarks.png)")


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


def _sick_window(args: argparse.Namespace) -> tuple[float, float]:
    """Deteriorations start so that their alarms (5-30 s later) fall after the warm-up."""
    lo = max(2.0, args.warmup_seconds - 10.0)
    return lo, max(lo + 1.0, args.seconds - 18.0)


async def run_build(build: str, base: Settings, args: argparse.Namespace, workdir: Path) -> dict:
    tag = uuid.uuid4().hex[:6]
    settings = base.model_copy(update={"topic_prefix": f"bench-{build}-{tag}.", "consumer_group": f"bench-{build}-{tag}",
                                       "data_dir": base.data_dir / f"{build}-{tag}"})
    readings, out = topics_for(settings).readings, f"{settings.topic_prefix}out"
    await ensure_topics(settings)
    if build == "raw_aiokafka":
        await ensure_topics(settings, {out: settings.readings_partitions})
    ward = Ward(args.patients, sick_window=_sick_window(args))
    # Nothing goes silent or escalates during a run: only the alarms of the load are timed.
    env = dict(os.environ, **_settings_env(settings), WARDWATCH_STALE_AFTER_S="3600", WARDWATCH_ESCALATE_AFTER_S="3600")
    lat: list[tuple[int, float]] = []
    topic_lat: list[tuple[int, float]] = []  # the same alarms on the alerts topic, before the alert service
    stop = asyncio.Event()
    total = await prefill(settings, readings, ward, args.prefill_seconds)
    budget = args.prefill_seconds * 6 + args.seconds + 120
    ports: list[int] = []
    if build == "wardwatch":
        procs, ports = start_detectors(env, workdir, args.workers, args.processes or settings.detect_processes)
    else:
        cmd = [sys.executable, "-m", "benchmarks.pipeline.peers", PEER_CMD[build], "--in", readings, "--out", out,
               "--group", settings.consumer_group, "--seconds", str(budget)]
        procs = {build: _spawn(cmd, env, workdir / f"{build}.log")}
    probes = []
    if LATENCY_AT[build] == "websocket":
        service = start_alert_service(settings, env, workdir)
        procs["alerts"] = service.proc
        probes = [asyncio.create_task(websocket_latency(service, stop, lat)),
                  asyncio.create_task(topic_latency(settings, topics_for(settings).alerts, stop, topic_lat, raised_at))]
    sampler = ProcSampler({name: p.pid for name, p in procs.items()})
    sampler.start()
    watch = await GroupWatch(settings, settings.consumer_group, readings,
                             settings.readings_partitions).start()
    try:
        # A build slower than a sixth of the load is timed over what it read in 150 s.
        capacity = await drain_rate(watch, total, timeout=min(150.0, max(30.0, args.prefill_seconds * 4)))
        # Let it finish the backlog (bounded), then measure latency on live load.
        t_end = time.monotonic() + 30
        while time.monotonic() < t_end:
            done, end = await watch.consumed()
            if done >= end:
                break
            await asyncio.sleep(0.5)
        if not probes:  # the pass-through's probe starts after the capacity phase: it would compete with it
            probes = [asyncio.create_task(topic_latency(settings, out, stop, lat))]
        await asyncio.sleep(1.0)
        t0 = time.monotonic()
        before, _ = await watch.consumed()
        live_start_ms = int(time.time() * 1000)
        offered = await produce_live(settings, readings, ward, args.seconds)
        live_s = time.monotonic() - t0
        # The backlog as the load ends, where the build can tell it (its position); every build's
        # committed lag is taken after the grace too, and it trails by up to a commit interval.
        position_lag = await asyncio.to_thread(worker_lag, ports) if ports else None
        await asyncio.sleep(3.0)  # grace for the last alarms
        after, end = await watch.consumed()
        died = {name: p.returncode for name, p in procs.items() if p.poll() is not None}
        stop.set()
        await asyncio.wait_for(asyncio.gather(*probes), 30)
    finally:
        stop.set()
        resources = await sampler.stop()
        await watch.stop()
        _stop(list(procs.values()))
    since = live_start_ms + int(args.warmup_seconds * 1000)
    result = {
        "readings_per_s": round(capacity["readings_per_s"]),
        "offered_readings_per_s": round(offered / live_s),
        "sustained_readings_per_s": round((after - before) / (live_s + 3.0)),
        "lag_at_end": int(end - after) if position_lag is None else position_lag,
        # Said with the figure: a worker that did not answer its /healthz leaves only the committed lag.
        "lag_counted_by": "committed" if position_lag is None else "workers",
        "committed_lag_at_end": int(end - after),
        **latency_stats(lat, since),
        "latency_at": LATENCY_AT[build],
        "processes": resources,
    }
    if topic_lat:
        on_topic = latency_stats(topic_lat, since)
        result["alerts_topic"] = {k: on_topic[k] for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms", "samples")}
    if died:  # fail loud: a build that crashed has no figures worth comparing
        result["error"] = ", ".join(f"{n} exited with {rc} (see {workdir / (n + '.log')})" for n, rc in died.items())
    return result


def _settings_env(s: Settings) -> dict[str, str]:
    return {**s.kafka_env(), "WARDWATCH_BACKEND": s.backend,
            "WARDWATCH_TOPIC_PREFIX": s.topic_prefix, "WARDWATCH_CONSUMER_GROUP": s.consumer_group,
            "WARDWATCH_INFLUX_URL": s.influx_url, "WARDWATCH_INFLUX_TOKEN": s.influx_token,
            "WARDWATCH_INFLUX_ORG": s.influx_org, "WARDWATCH_INFLUX_BUCKET": s.influx_bucket,
            "WARDWATCH_INFLUX_BATCH_SIZE": str(s.influx_batch_size),
            "WARDWATCH_READINGS_PARTITIONS": str(s.readings_partitions),
            "WARDWATCH_DATA_DIR": str(s.data_dir)}


def _ms(v) -> str:
    return "-" if v is None else f"{v:,.0f}"


def _topic(r: dict) -> str:
    t = r.get("alerts_topic")
    return f"{_ms(t['p50_ms'])}/{_ms(t['p99_ms'])}" if t else ""


def _lag_mark(build: str, r: dict) -> str:
    # "*": a WardWatch lag that is the committed one because a worker did not answer (the footnote's
    # "as its workers count it" does not hold for that row).
    return "* " if build == "wardwatch" and r.get("lag_counted_by") == "committed" else "  "


def _table(results: dict) -> str:
    rows = ["build              readings/s  sustained/offered    lag      p50 ms  p99 ms  p99.9 ms  max ms  alarms  timed at   (alerts topic p50/p99)",
            "-----------------  ----------  -----------------  -------  ------  ------  --------  ------  ------  ---------  ----------------------"]
    for b, r in results.items():
        rows.append(f"{b:<17}  {r['readings_per_s']:>10,}  {r['sustained_readings_per_s']:>8,}/{r['offered_readings_per_s']:<8,}"
                    f"  {r['lag_at_end']:>7,}{_lag_mark(build=b, r=r)}{_ms(r['p50_ms']):>6}  {_ms(r['p99_ms']):>6}  {_ms(r['p999_ms']):>8}"
                    f"  {_ms(r['max_ms']):>6}  {r['samples']:>6}  {r['latency_at']:<9}  {_topic(r)}"
                    f"{'  ERROR: ' + r['error'] if 'error' in r else ''}")
    rows.append("lag: WardWatch's as its workers count it when the load ends; a peer's, its committed lag 3 s later")
    if any(_lag_mark(b, r).strip() for b, r in results.items()):
        rows.append("*: a worker did not answer its /healthz as the load ended: this lag is the committed one, 3 s later")
    return "\n".join(rows)


async def _main(args: argparse.Namespace) -> int:
    from devservices import bench_services

    from .chart import chart
    from .quix_peers import COMMIT_INTERVAL_S

    if args.seconds <= args.warmup_seconds:
        raise SystemExit(f"--seconds ({args.seconds:g}) must be longer than --warmup-seconds ({args.warmup_seconds:g})")
    services = bench_services()
    workdir = Path(args.out)
    workdir.mkdir(parents=True, exist_ok=True)
    base = Settings(data_dir=workdir / "data")
    results: dict[str, dict] = {}
    try:
        for build in [b for b in args.builds.split(",") if b]:
            if build not in BUILDS:
                raise SystemExit(f"unknown build {build!r}: one of {', '.join(BUILDS)}")
            print(f"[bench] {build} ...", file=sys.stderr, flush=True)
            results[build] = await run_build(build, base, args, workdir)
            r = results[build]
            print(f"[bench] {build}: {r['readings_per_s']:,} readings/s, p99 {r['p99_ms']} ms ({r['latency_at']})"
                  f"{', ERROR: ' + r['error'] if 'error' in r else ''}", file=sys.stderr, flush=True)
    finally:
        if services:
            services.stop()
    ww = results.get("wardwatch")
    ratios = {}
    if ww:
        for peer in BUILDS[1:]:
            if peer in results and results[peer]["readings_per_s"]:
                ratios[f"wardwatch_vs_{peer}"] = round(ww["readings_per_s"] / results[peer]["readings_per_s"], 2)
    doc = {**results, "ratios": ratios,
           "setup": {"patients": args.patients, "vitals": 3, "live_seconds": args.seconds,
                     "warmup_seconds": args.warmup_seconds, "prefill_seconds": args.prefill_seconds,
                     "workers": args.workers, "processes": args.processes,
                     "kafka_security_protocol": base.kafka_security_protocol,
                     "kafka_sasl_mechanism": base.kafka_sasl_mechanism,
                     "quixstreams_store_sink": {"influx_batch_size": base.influx_batch_size,
                                                "commit_interval_s": COMMIT_INTERVAL_S},
                     "cpus": os.cpu_count(), "loadavg_at_end": list(os.getloadavg())}}
    (workdir / "latest.json").write_text(json.dumps(doc, indent=2))
    charts = [workdir / "latest.png"] + ([Path(args.chart_copy)] if args.chart_copy else [])
    chart(results, charts, args)
    if args.json:
        print(json.dumps(doc))
    else:
        print(_table(results))
        for k, v in ratios.items():
            print(f"{k}: {v}x")
        print(f"written: {workdir / 'latest.json'}, {', '.join(map(str, charts))}")
    return 1 if any("error" in r for r in results.values()) else 0


def run(args: argparse.Namespace) -> int:
    return eventloop.run(_main(args))
