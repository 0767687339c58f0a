"""``wardwatch bench detectors``: readings per second for one worker process with the full detector
stack (decode + validate, filters, limit and sensor-off alarms, NEWS2, snapshots, line protocol),
beside a naive per-message implementation of the same rules measured in the same run, and the
memory the engine needs per 1,000 monitored patients.

Kafka and InfluxDB are left out on purpose: this isolates the worker's own CPU cost (the Kafka
and InfluxDB ceilings are measured by ``bench ingest`` and ``bench pipeline``).

Each build is timed ``--repeat`` times, alternately (engine, naive, engine, naive, ...), each time
from a fresh state; the figures are each build's best time, as ``timeit`` reports: on a machine
shared with other work, the slower repeats measure the other work, not the code. The median of the
repeats is printed beside the best, so a noisy run shows as one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import psutil

from wardwatch import heap
from wardwatch.codec import decode_readings

from detectors.engine import DetectorEngine

from .naive import by_metric, naive_process


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--patients", type=int, default=10_000)
    p.add_argument("--seconds", type=int, default=20, help="seconds of ward data (each patient, 3 vitals at 1 Hz)")
    p.add_argument("--naive-messages", type=int, default=60_000)
    p.add_argument("--repeat", type=int, default=3, help="timings of each build (alternating); the best is reported")


def messages(patients: int, seconds: int) -> list[list[bytes]]:
    from ingest.gateway import GatewayClient
    from ingest.sources.synthetic import SyntheticWard

    ward = SyntheticWard(patients, prefix="bench")
    base = int(time.time() * 1000) - seconds * 1000
    return [[v for _, v in GatewayClient.encode(ward.tick(base + 1000 * s))] for s in range(seconds)]


def time_engine(batches: list[list[bytes]]) -> tuple[float, int, DetectorEngine]:
    """Seconds for a fresh engine to process every batch (decode included), and its alarm events."""
    engine = DetectorEngine(stale_after_ms=10**12)
    now = int(time.time() * 1000)
    events = 0
    t0 = time.perf_counter()
    for b in batches:
        cols, _ = decode_readings(b, now)
        events += len(engine.process(cols).events)
    return time.perf_counter() - t0, events, engine


def time_naive(msgs: list[bytes], rules) -> float:
    state: dict = {}
    sink: list = []
    t0 = time.perf_counter()
    for raw in msgs:
        naive_process(raw, state, rules, sink)
    return time.perf_counter() - t0


def run(args: argparse.Namespace) -> int:
    from wardwatch.alarm_rules import DEFAULT_RULES

    rules = by_metric(DEFAULT_RULES)
    proc = psutil.Process()
    chunks = messages(args.patients, args.seconds)
    total = sum(len(c) for c in chunks)
    # The worker fetches up to 50,000 records a batch: process in batches of that size.
    flat = [m for c in chunks for m in c]
    batches = [flat[i:i + 50_000] for i in range(0, len(flat), 50_000)]
    n = min(args.naive_messages, total)
    # As the worker does after start-up (wardwatch.heap): the inputs, like a worker's imported
    # modules, live for the whole run, so they are frozen out of the collector's walks.
    heap.settle()
    engine_s, naive_s = [], []
    rss_per_1000 = events = None
    for i in range(max(1, args.repeat)):
        rss0 = proc.memory_info().rss
        dt, ev, engine = time_engine(batches)
        if i == 0:  # the first engine's growth: a later one reuses memory freed by the one before
            rss_per_1000 = (proc.memory_info().rss - rss0) / 2**20 / (args.patients / 1000)
            events = ev
        del engine
        engine_s.append(dt)
        naive_s.append(time_naive(flat[:n], rules))
    best, best_naive = total / min(engine_s), n / min(naive_s)
    res = {"readings_per_s": round(best), "naive_readings_per_s": round(best_naive),
           "speedup": round(best / best_naive, 1),
           "median_readings_per_s": round(total / statistics.median(engine_s)),
           "median_naive_readings_per_s": round(n / statistics.median(naive_s)),
           "repeat": len(engine_s), "rss_mb_per_1000_patients": round(rss_per_1000, 2),
           "patients": args.patients, "readings": total, "alarm_events": events, "cpus": os.cpu_count(),
           "loadavg": list(os.getloadavg())}
    if args.json:
        print(json.dumps(res))
    else:
        print(f"best of {res['repeat']} (median in brackets)")
        print(f"WardWatch worker (decode + full detector stack)  {res['readings_per_s']:>10,} readings/s"
              f"  ({res['median_readings_per_s']:,})")
        print(f"naive per-message implementation                 {res['naive_readings_per_s']:>10,} readings/s"
              f"  ({res['median_naive_readings_per_s']:,})")
        print(f"speed-up                                         {res['speedup']:>10}x")
        print(f"memory per 1,000 monitored patients              {res['rss_mb_per_1000_patients']:>10} MB")
    return 0
