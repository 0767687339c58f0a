"""``wardwatch bench ingest``: readings per second through the Kafka path (the gateway client:
validate, serialise, batch, produce with acks=all) and the HTTP path (batched JSON POSTs to the
ingest service), beside the raw aiokafka batch producer measured in the same run."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

import orjson

from wardwatch.columns import ReadingColumns
from wardwatch.settings import Settings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--readings", type=int, default=600_000, help="readings per Kafka measurement")
    p.add_argument("--http-seconds", type=float, default=10.0)
    p.add_argument("--batch", type=int, default=1000, help="readings per HTTP request")
    p.add_argument("--connections", type=int, default=8)


def _ticks(n_readings: int, patients: int = 10_000) -> list[ReadingColumns]:
    from ingest.sources.synthetic import SyntheticWard

    ward = SyntheticWard(patients, prefix="bench")
    now = int(time.time() * 1000)
    out, total = [], 0
    while total < n_readings:
        cols = ward.tick(now - 600_000 + 1000 * len(out))
        out.append(cols)
        total += len(cols)
    return out


async def raw_aiokafka(settings: Settings, payloads: list[list[tuple[bytes, bytes]]]) -> float:
    from wardwatch.kafka import make_producer, send_batch

    producer = make_producer(settings)
    await producer.start()
    parts = sorted(await producer.partitions_for(f"{settings.topic_prefix}raw"))
    t0 = time.perf_counter()
    n = 0
    for items in payloads:
        n += await send_batch(producer, f"{settings.topic_prefix}raw", items, parts)
    dt = time.perf_counter() - t0
    await producer.stop()
    return n / dt


async def kafka_path(settings: Settings, ticks: list[ReadingColumns]) -> float:
    from ingest.gateway import GatewayClient

    client = GatewayClient(settings.model_copy(update={"enforce_registry": False}))
    await client.start()
    t0 = time.perf_counter()
    n = 0
    for cols in ticks:
        n += await client.send(cols)
    dt = time.perf_counter() - t0
    await client.stop()
    return n / dt


async def http_path(settings: Settings, ticks: list[ReadingColumns], seconds: float, batch: int, conns: int) -> float:
    import httpx

    from ingest.gateway import GatewayClient
    from wardwatch.auth import TokenStore
    from wardwatch.devservices import free_port
    from wardwatch.models import PatientRecord
    from wardwatch.bus import open_bus
    from wardwatch.registry import Registry

    patients = sorted(set(ticks[0].patient.tolist()))
    await Registry(settings.registry_path, open_bus(settings)).admit_many(
        [PatientRecord(patient=p, ward="bench") for p in patients])
    token, _ = TokenStore(settings.tokens_path).create("gateway", "bench")
    port = free_port()
    env = dict(os.environ, **settings.kafka_env(), WARDWATCH_TOPIC_PREFIX=settings.topic_prefix,
               WARDWATCH_DATA_DIR=str(settings.data_dir), WARDWATCH_INGEST_MAX_BACKLOG="1000000")
    server = subprocess.Popen([sys.executable, "-m", "wardwatch.cli", "--log-level", "WARNING", "ingest", "--port", str(port)],
                              env=env)
    bodies = []
    for cols in ticks:
        items = [orjson.loads(v) for _, v in GatewayClient.encode(cols)]
        for i in range(0, len(items), batch):
            bodies.append(orjson.dumps({"readings": items[i:i + batch]}))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            for _ in range(100):
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
            accepted = 0
            next_body = 0
            stop_at = time.perf_counter() + seconds

            async def worker():
                nonlocal accepted, next_body
                while time.perf_counter() < stop_at:
                    body = bodies[next_body % len(bodies)]
                    next_body += 1
                    r = await http.post("/v1/readings", content=body, headers={"content-type": "application/json"})
                    if r.status_code in (200, 207):
                        accepted += r.json()["accepted"]

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(conns)))
            return accepted / (time.perf_counter() - t0)
    finally:
        server.terminate()
        server.wait(20)


async def _main(args: argparse.Namespace) -> dict:
    import tempfile
    import uuid

    from wardwatch.devservices import bench_services
    from wardwatch.kafka import ensure_topics

    services = bench_services()
    try:
        settings = Settings(topic_prefix=f"bench-ingest-{uuid.uuid4().hex[:6]}.", data_dir=tempfile.mkdtemp())
        await ensure_topics(settings, {f"{settings.topic_prefix}{t}": n for t, n in
                                       (("raw", 6), ("readings", 6), ("deadletter", 1), ("registry", 1), ("alerts", 6), ("actions", 6),
                                        ("detector-state", 6), ("vitals", 6), ("limits", 1))})
        ticks = _ticks(args.readings)
        from ingest.gateway import GatewayClient

        payloads = [GatewayClient.encode(c) for c in ticks]
        raw = await raw_aiokafka(settings, payloads)
        kafka = await kafka_path(settings, ticks)
        http = await http_path(settings, ticks[:20], args.http_seconds, args.batch, args.connections)
        return {"raw_aiokafka_readings_per_s": round(raw), "kafka_readings_per_s": round(kafka),
                "http_readings_per_s": round(http), "kafka_vs_raw": round(kafka / raw, 3),
                "readings": sum(len(t) for t in ticks), "http_batch": args.batch, "http_connections": args.connections,
                "cpus": os.cpu_count(), "loadavg": list(os.getloadavg())}
    finally:
        if services:
            services.stop()


def run(args: argparse.Namespace) -> int:
    res = asyncio.run(_main(args))
    if args.json:
        print(json.dumps(res))
    else:
        print(f"raw aiokafka (create_batch/send_batch)   {res['raw_aiokafka_readings_per_s']:>10,} readings/s")
        print(f"Kafka path (gateway client)              {res['kafka_readings_per_s']:>10,} readings/s"
              f"  ({res['kafka_vs_raw']:.0%} of raw)")
        print(f"HTTP path ({res['http_batch']}/request, {res['http_connections']} connections)  "
              f"{res['http_readings_per_s']:>10,} readings/s")
    return 0
