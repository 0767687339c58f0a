"""``wardwatch bench detectors``: readings per second for one worker process with the full detector
stack (decode + validate, filters, limit and sensor-off alarms, NEWS2, snapshots, line protocol),
beside a naive per-message implementation of the same rules measured in the same run, and the
memory the engine needs per 1,000 monitored patients.

Kafka and InfluxDB are left out on purpose: this isolates the worker's own CPU cost (the Kafka
and InfluxDB ceilings are measured by ``bench ingest`` and ``bench pipeline``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
from collections import defaultdict

import psutil

from wardwatch.codec import decode_readings

from detectors.engine import DetectorEngine


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--patients", type=int, default=10_000)
    p.add_argument("--seconds", type=int, default=20, help="seconds of ward data (each patient, 3 vitals at 1 Hz)")
    p.add_argument("--naive-messages", type=int, default=60_000)


def messages(patients: int, seconds: int) -> list[list[bytes]]:
    from ingest.gateway import GatewayClient
    from ingest.sources.synthetic import SyntheticWard

    ward = SyntheticWard(patients, prefix="bench")
    base = int(time.time() * 1000) - seconds * 1000
    return [[v for _, v in GatewayClient.encode(ward.tick(base + 1000 * s))] for s in range(seconds)]


class NaivePatient:
    """The same rules, the obvious way: dicts and lists per patient, one message at a time."""

    def __init__(self) -> None:
        self.window: dict[str, list[float]] = defaultdict(list)
        self.latest: dict[str, float] = {}
        self.onset: dict[str, int] = {}
        self.active: set[str] = set()


def naive_process(raw: bytes, state: dict, rules, out: list) -> None:
    from detectors.early_warning.news2 import news2
    from wardwatch.lineprotocol import line
    from wardwatch.models import Reading

    import numpy as np

    from wardwatch.metrics_catalog import METRIC_INDEX, METRICS

    r = Reading.model_validate_json(raw)
    p = state.setdefault(r.patient, NaivePatient())
    m = r.metric.value
    w = p.window[m]
    med = statistics.median(w) if w else r.value
    mad = statistics.median([abs(x - med) for x in w]) * 1.4826 if w else 0
    artefact = len(w) >= 5 and abs(r.value - med) > 3.5 * max(mad, 1.0)
    w.append(r.value)
    if len(w) > 7:
        w.pop(0)
    fields = {"value": r.value}
    if not artefact and r.value != 0:
        fields["clean"] = r.value
        p.latest[m] = r.value
        for rule in rules:
            if rule.metric.value != m:
                continue
            outside = r.value < rule.limit if rule.side == "low" else r.value > rule.limit
            if outside:
                onset = p.onset.setdefault(rule.condition, r.ts)
                if rule.condition not in p.active and r.ts - onset >= rule.delay_ms:
                    p.active.add(rule.condition)
                    out.append(("raised", rule.condition))
            else:
                p.onset.pop(rule.condition, None)
                p.active.discard(rule.condition)
        latest = np.full((1, len(METRICS)), np.nan)
        for k, v in p.latest.items():
            latest[0, METRIC_INDEX[k]] = v
        news2(latest)
    out.append(line("vitals", {"patient": r.patient, "metric": m}, fields, r.ts))


def run(args: argparse.Namespace) -> int:
    from detectors.limits import DEFAULT_RULES

    proc = psutil.Process()
    chunks = messages(args.patients, args.seconds)
    total = sum(len(c) for c in chunks)
    # The worker fetches up to 50,000 records a batch: process in batches of that size.
    flat = [m for c in chunks for m in c]
    batches = [flat[i:i + 50_000] for i in range(0, len(flat), 50_000)]
    gc.collect()
    rss0 = proc.memory_info().rss
    engine = DetectorEngine(stale_after_ms=10**12)
    now = int(time.time() * 1000)
    t0 = time.perf_counter()
    events = 0
    for b in batches:
        cols, _ = decode_readings(b, now)
        out = engine.process(cols)
        events += len(out.events)
    dt = time.perf_counter() - t0
    rss_per_1000 = (proc.memory_info().rss - rss0) / 2**20 / (args.patients / 1000)
    state: dict = {}
    sink: list = []
    n = min(args.naive_messages, total)
    t1 = time.perf_counter()
    for raw in flat[:n]:
        naive_process(raw, state, DEFAULT_RULES, sink)
    ndt = time.perf_counter() - t1
    res = {"readings_per_s": round(total / dt), "naive_readings_per_s": round(n / ndt),
           "speedup": round((total / dt) / (n / ndt), 1), "rss_mb_per_1000_patients": round(rss_per_1000, 2),
           "patients": args.patients, "readings": total, "alarm_events": events, "cpus": os.cpu_count(),
           "loadavg": list(os.getloadavg())}
    if args.json:
        print(json.dumps(res))
    else:
        print(f"WardWatch worker (decode + full detector stack)  {res['readings_per_s']:>10,} readings/s")
        print(f"naive per-message implementation                 {res['naive_readings_per_s']:>10,} readings/s")
        print(f"speed-up                                         {res['speedup']:>10}x")
        print(f"memory per 1,000 monitored patients              {res['rss_mb_per_1000_patients']:>10} MB")
    return 0
