"""``wardwatch bench plan``: the sizing table of docs/scaling.md, computed from measured figures.

It reads what the benchmarks wrote under ``bench-results/`` (``latest.json`` from ``make bench`` /
``wardwatch bench pipeline``, ``alerts.json`` from ``wardwatch bench alerts``, and ``ingest.json``
and ``detectors.json`` when saved with ``wardwatch bench ingest --json > bench-results/ingest.json``)
and prints, for a deployment of ``--hospitals`` x ``--beds``, every quantity with its formula and
the figures it used. A figure that is missing is named, with the command that measures it; the
rows that need it say so instead of guessing.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

# Where the figures come from: (file, path inside it, what measures it).
SOURCES = {
    "stack_readings_per_s": ("latest.json", ("wardwatch", "readings_per_s"), "make bench"),
    "stack_cpus": ("latest.json", ("setup", "cpus"), "make bench"),
    "engine_readings_per_s": ("detectors.json", ("readings_per_s",), "wardwatch bench detectors --json > bench-results/detectors.json"),
    "http_readings_per_s": ("ingest.json", ("http_readings_per_s",), "wardwatch bench ingest --json > bench-results/ingest.json"),
    "raw_readings_per_s": ("ingest.json", ("raw_aiokafka_readings_per_s",), "wardwatch bench ingest --json > bench-results/ingest.json"),
    "alert_events_per_s": ("alerts.json", ("runs", 0, "events_per_s"), "wardwatch bench alerts"),
    "alert_clients": ("alerts.json", ("runs", 0, "clients"), "wardwatch bench alerts"),
    "alert_p99_ms": ("alerts.json", ("runs", 0, "p99_ms"), "wardwatch bench alerts"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default="bench-results", help="folder the benchmarks wrote")
    p.add_argument("--hospitals", type=int, default=10)
    p.add_argument("--beds", type=int, default=1000, help="monitored beds per hospital")
    p.add_argument("--vitals", type=float, default=3, help="readings per bed per second")
    p.add_argument("--headroom", type=float, default=2.0, help="capacity over the mean load (peaks, one node down)")
    p.add_argument("--beds-per-ward", type=int, default=25)
    p.add_argument("--clients-per-ward", type=int, default=3, help="nurse station pages and phones per ward")
    p.add_argument("--events-per-bed-hour", type=float, default=40.0,
                   help="alarm events (raised, updated, cleared, actions) per bed and hour")
    p.add_argument("--p99-target-ms", type=float, default=100.0)
    p.add_argument("--reading-bytes", type=int, default=120, help="bytes of one reading on the readings topic")
    p.add_argument("--retention-days", type=float, default=7.0)
    p.add_argument("--replication", type=int, default=3)
    # InfluxDB OSS 1.x hardware sizing guidelines (docs.influxdata.com): one node for "moderate"
    # loads up to these; beyond, a clustered (Enterprise) or hosted InfluxDB.
    p.add_argument("--influx-node-field-writes", type=float, default=250_000)
    p.add_argument("--influx-node-series", type=float, default=1_000_000)
    p.add_argument("--fields-per-reading", type=int, default=3,
                   help="InfluxDB field values a reading writes (the raw value, the clean value, the device; "
                        "docs/operations.md 'Data kept')")
    p.add_argument("--metrics-per-bed", type=int, default=8, help="series per bed (vitals, scores, alarms)")


def figures(folder: Path) -> tuple[dict[str, float], dict[str, str]]:
    found, missing = {}, {}
    for name, (file, path, command) in SOURCES.items():
        try:
            doc = json.loads((folder / file).read_text())
            for key in path:
                doc = doc[key]
            found[name] = float(doc)
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            missing[name] = command
    return found, missing


def plan(a: argparse.Namespace, f: dict[str, float]) -> list[tuple[str, str, str]]:
    """Rows of (quantity, formula, value); a value needing a missing figure says which."""
    rows: list[tuple[str, str, str]] = []

    def row(name: str, formula: str, needs: tuple[str, ...], compute) -> float | None:
        lacking = [n for n in needs if n not in f]
        if lacking:
            rows.append((name, formula, "needs " + ", ".join(lacking)))
            return None
        value = compute()
        rows.append((name, formula, f"{value:,.0f}" if isinstance(value, (int, float)) else str(value)))
        return value

    beds = a.hospitals * a.beds
    R = beds * a.vitals
    D = R * a.headroom
    rows.append(("beds B", "hospitals x beds", f"{beds:,}"))
    rows.append(("readings/s R", "B x vitals", f"{R:,.0f}"))
    rows.append(("design rate D", "R x headroom", f"{D:,.0f}"))
    row("stack readings/s per core", "make bench: wardwatch readings/s / cpus", ("stack_readings_per_s", "stack_cpus"),
        lambda: f["stack_readings_per_s"] / f["stack_cpus"])
    row("cores, whole stack", "ceil(D / stack readings/s per core)", ("stack_readings_per_s", "stack_cpus"),
        lambda: math.ceil(D / (f["stack_readings_per_s"] / f["stack_cpus"])))
    det = row("detector processes", "max(2, ceil(D / engine readings/s))", ("engine_readings_per_s",),
              lambda: max(2, math.ceil(D / f["engine_readings_per_s"])))
    parts = row("readings partitions P", "6 x ceil(2 x detector processes / 6)", ("engine_readings_per_s",),
                lambda: 6 * math.ceil(2 * det / 6))
    row("readings/s per partition", "D / P (under raw consume/produce rate)", ("engine_readings_per_s", "raw_readings_per_s"),
        lambda: f"{D / parts:,.0f} of {f['raw_readings_per_s']:,.0f}")
    row("ingest processes", "max(2, ceil(D / HTTP readings/s per process))", ("http_readings_per_s",),
        lambda: max(2, math.ceil(D / f["http_readings_per_s"])))
    A = beds * a.events_per_bed_hour / 3600
    clients = math.ceil(beds / a.beds_per_ward) * a.clients_per_ward
    deliveries = A * a.clients_per_ward  # each client sees its own ward's events
    rows.append(("alarm events/s A", "B x events per bed-hour / 3600", f"{A:,.1f}"))
    rows.append(("websocket clients", "ceil(B / beds per ward) x clients per ward", f"{clients:,}"))
    rows.append(("deliveries/s", "A x clients per ward", f"{deliveries:,.0f}"))
    ok = f.get("alert_p99_ms", math.inf) <= a.p99_target_ms
    row("deliveries/s per alert instance", "bench alerts: events/s x clients (p99 "
        + ("within" if ok else "OVER") + f" {a.p99_target_ms:g} ms)", ("alert_events_per_s", "alert_clients", "alert_p99_ms"),
        lambda: f["alert_events_per_s"] * f["alert_clients"])
    row("alert instances", "max(2, ceil(deliveries x headroom / per instance), ceil(clients / bench clients))",
        ("alert_events_per_s", "alert_clients"),
        lambda: max(2, math.ceil(deliveries * a.headroom / (f["alert_events_per_s"] * f["alert_clients"])),
                    math.ceil(clients / f["alert_clients"])))
    row("alert log: events/s vs one instance's fold", "A x headroom of bench events/s (every instance folds all)",
        ("alert_events_per_s",), lambda: f"{A * a.headroom:,.0f} of {f['alert_events_per_s']:,.0f}"
        + ("" if A * a.headroom <= f["alert_events_per_s"] else ": shard by hospital (a topic prefix each)"))
    writes = D * a.fields_per_reading  # field values/s into InfluxDB: every reading (scores and alarms are fewer)
    series = beds * a.metrics_per_bed
    rows.append(("InfluxDB field writes/s", "D x fields per reading", f"{writes:,.0f}"))
    rows.append(("InfluxDB series", "B x metrics per bed", f"{series:,}"))
    nodes = max(writes / a.influx_node_field_writes, series / a.influx_node_series)
    rows.append(("InfluxDB", "one node while writes <= node field writes and series <= node series",
                 "one node" if nodes <= 1 else f"clustered or hosted: {nodes:.1f}x one node's guideline"))
    mb_s = R * a.reading_bytes / 1e6
    rows.append(("Kafka readings MB/s in", "R x reading bytes / 1e6", f"{mb_s:,.1f}"))
    rows.append(("Kafka disk, readings (GB)", "MB/s x 86,400 x retention days x replication / 1,000",
                 f"{mb_s * 86400 * a.retention_days * a.replication / 1000:,.0f}"))
    rows.append(("Kafka brokers", "max(3, replication): min.insync.replicas = 2 survives one broker", f"{max(3, a.replication)}"))
    return rows


def run(args: argparse.Namespace) -> int:
    f, missing = figures(Path(args.results))
    rows = plan(args, f)
    if getattr(args, "json", False):
        print(json.dumps({"figures": f, "missing": missing, "rows": rows}))
        return 0
    print(f"WardWatch sizing: {args.hospitals} hospitals x {args.beds:,} beds, {args.vitals:g} readings/bed/s, "
          f"headroom {args.headroom:g}x  (figures from {args.results}/)")
    w0, w1 = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    print(f"| {'quantity':<{w0}} | {'formula':<{w1}} | value |")
    print(f"|{'-' * (w0 + 2)}|{'-' * (w1 + 2)}|-------|")
    for name, formula, value in rows:
        print(f"| {name:<{w0}} | {formula:<{w1}} | {value} |")
    print("figures used: " + (", ".join(f"{k}={v:,.1f}" for k, v in f.items()) or "none"))
    for name, command in missing.items():
        print(f"missing {name}: run `{command}`")
    return 0
