"""``wardwatch bench ingest``: readings per second through the Kafka path (the gateway client:
validate, serialise, batch, produce with acks=all), the HTTP path (batched JSON POSTs to the
ingest service) and HL7 v2 messages per second over MLLP (IHE PCD-01, three vitals a message, each
sender waiting for its ACK before the next, as monitor gateways do), beside the raw aiokafka batch
producer measured in the same run.

``--hostile``: the p99 latency of valid HTTP requests while hostile bodies (huge HL7, ``~`` floods, a
FHIR Bundle of 600,000 entries, an 11 MB JSON body) and slow-loris clients are sent, beside the p99
without them, in the same run; loopback only, bounded in clients and seconds."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

import orjson

from wardwatch import eventloop
from wardwatch.columns import ReadingColumns
from wardwatch.settings import Settings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--readings", type=int, default=600_000, help="readings per Kafka measurement")
    p.add_argument("--http-seconds", type=float, default=10.0)
    p.add_argument("--batch", type=int, default=1000, help="readings per HTTP request")
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--mllp-connections", type=int, default=4, help="MLLP senders, one message in flight each")
    p.add_argument("--hostile", action="store_true", help="only the valid-request latency under hostile load")
    p.add_argument("--hostile-seconds", type=float, default=10.0, help="per phase (quiet, then hostile)")
    p.add_argument("--lorises", type=int, default=50, help="slow-loris clients during the hostile phase")


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


def start_server(settings: Settings, port: int, **env_extra: str) -> subprocess.Popen:
    env = dict(os.environ, **settings.kafka_env(), WARDWATCH_TOPIC_PREFIX=settings.topic_prefix,
               WARDWATCH_DATA_DIR=str(settings.data_dir), WARDWATCH_INGEST_MAX_BACKLOG="1000000", **env_extra)
    return subprocess.Popen([sys.executable, "-m", "app.cli", "--log-level", "WARNING", "ingest", "--port", str(port)],
                            env=env)


async def wait_healthy(http) -> None:
    import httpx

    for _ in range(100):
        try:
            if (await http.get("/healthz")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)


async def http_path(settings: Settings, ticks: list[ReadingColumns], seconds: float, batch: int, conns: int) -> float:
    import httpx

    from ingest.gateway import GatewayClient
    from wardwatch.auth import TokenStore
    from devservices import free_port
    from wardwatch.models import PatientRecord
    from wardwatch.bus import open_bus
    from wardwatch.registry import Registry

    patients = sorted(set(ticks[0].patient.tolist()))
    await Registry(settings.registry_path, open_bus(settings)).admit_many(
        [PatientRecord(patient=p, ward="bench") for p in patients])
    token, _ = TokenStore(settings.tokens_path).create("gateway", "bench")
    port = free_port()
    server = start_server(settings, port)
    bodies = []
    for cols in ticks:
        items = [orjson.loads(v) for _, v in GatewayClient.encode(cols)]
        for i in range(0, len(items), batch):
            bodies.append(orjson.dumps({"readings": items[i:i + batch]}))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            await wait_healthy(http)
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


def p99(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(0.99 * len(xs)))] if xs else float("nan")


async def hostile_path(settings: Settings, seconds: float, lorises: int) -> dict:
    """Valid 10-reading requests on 4 connections for ``seconds`` quiet, then ``seconds`` under attack."""
    import httpx

    from benchmarks.hostile import hostile_bodies, slow_loris, valid_reading_body
    from wardwatch.auth import TokenStore
    from devservices import free_port

    token, _ = TokenStore(settings.tokens_path).create("gateway", "bench-hostile")
    port = free_port()
    server = start_server(settings, port, WARDWATCH_ENFORCE_REGISTRY="false")
    hostile = list(hostile_bodies().values())
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            await wait_healthy(http)

            async def valid(stop_at: float, lat: list[float], failed: list[int]) -> None:
                while time.perf_counter() < stop_at:
                    t0 = time.perf_counter()
                    r = await http.post("/v1/readings", content=valid_reading_body(10))
                    lat.append(time.perf_counter() - t0)
                    if r.status_code != 200:
                        failed.append(r.status_code)

            async def attacker(stop_at: float, sent: list[int]) -> None:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                             headers={"Authorization": f"Bearer {token}"}) as own:
                    while time.perf_counter() < stop_at:
                        path, body = hostile[len(sent) % len(hostile)]
                        await own.post(path, content=body)
                        sent.append(1)

            async def loris(stop_at: float, held: list[float]) -> None:
                while time.perf_counter() < stop_at:
                    held.append(await slow_loris(port, stop_at - time.perf_counter()))

            out: dict = {}
            for phase in ("quiet", "hostile"):
                stop_at = time.perf_counter() + seconds
                lat: list[float] = []
                failed: list[int] = []
                sent: list[int] = []
                held: list[float] = []
                tasks = [valid(stop_at, lat, failed) for _ in range(4)]
                if phase == "hostile":
                    tasks += [attacker(stop_at, sent) for _ in range(2)] + [loris(stop_at, held) for _ in range(lorises)]
                await asyncio.gather(*tasks)
                out[phase] = {"valid_requests": len(lat), "valid_failed": len(failed), "p50_ms": round(1000 * sorted(lat)[len(lat) // 2], 1),
                              "p99_ms": round(1000 * p99(lat), 1), "max_ms": round(1000 * max(lat), 1),
                              "hostile_bodies": len(sent), "loris_connections": len(held),
                              "loris_max_held_s": round(max(held), 1) if held else None}
            return out
    finally:
        server.terminate()
        server.wait(20)


def pcd01(control: str, patient: str, device: str, ts_s: int, hr: float, spo2: float, rr: float) -> bytes:
    """One ORU^R01 as IHE PCD-01 writes it (codes and units as MDC), framed for MLLP."""
    t = time.strftime("%Y%m%d%H%M%S", time.gmtime(ts_s)) + "+0000"
    obx = [("147842^MDC_ECG_HEART_RATE^MDC", hr, "264864^MDC_DIM_BEAT_PER_MIN^MDC"),
           ("150456^MDC_PULS_OXIM_SAT_O2^MDC", spo2, "262688^MDC_DIM_PERCENT^MDC"),
           ("151562^MDC_RESP_RATE^MDC", rr, "264928^MDC_DIM_RESP_PER_MIN^MDC")]
    segs = [f"MSH|^~\\&|GW^bench|WARD|WARDWATCH|HOSP|{t}||ORU^R01^ORU_R01|{control}|P|2.6",
            f"PID|||{patient}^^^HOSP^MR", f"OBR|1|||182777000^monitoring of patient^SCT|||{t}"]
    segs += [f"OBX|{k}|NM|{code}|1.1.1.{k}|{v:.1f}|{unit}|||||R|||{t}||||{device}" for k, (code, v, unit) in enumerate(obx, 1)]
    return b"\x0b" + "\r".join(segs).encode() + b"\r\x1c\r"


async def mllp_path(settings: Settings, ticks: list[ReadingColumns], seconds: float, conns: int) -> dict:
    """Messages per second over MLLP; every ACK must be AA (anything else is counted and reported)."""
    from devservices import free_port
    from wardwatch.bus import open_bus
    from wardwatch.models import PatientRecord
    from wardwatch.registry import Registry

    patients = sorted(set(ticks[0].patient.tolist()))
    await Registry(settings.registry_path, open_bus(settings)).admit_many(
        [PatientRecord(patient=p, ward="bench") for p in patients])
    port, mllp_port = free_port(), free_port()
    server = start_server(settings, port, WARDWATCH_MLLP_PORT=str(mllp_port))
    base = int(time.time()) - 3600  # message k is patient k % P at base + k // P seconds: every reading distinct
    counter = iter(range(10**9))
    acked, refused = [], []
    try:
        for _ in range(150):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", mllp_port)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.2)
        stop_at = time.perf_counter() + seconds

        async def sender() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", mllp_port)
            try:
                while time.perf_counter() < stop_at:
                    k = next(counter)
                    p = patients[k % len(patients)]
                    writer.write(pcd01(f"B{k}", p, f"{p}-m", base + k // len(patients), 70 + k % 30, 96.0, 16.0))
                    await writer.drain()
                    ack = await reader.readuntil(b"\x1c\r")
                    (acked if b"MSA|AA|" in ack else refused).append(k)
            finally:
                writer.close()

        t0 = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(conns)))
        dt = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(20)
    return {"mllp_messages_per_s": round(len(acked) / dt), "mllp_readings_per_s": round(3 * len(acked) / dt),
            "mllp_connections": conns, "mllp_not_aa": len(refused)}


async def _main(args: argparse.Namespace) -> dict:
    import tempfile
    import uuid

    from devservices import bench_services
    from wardwatch.kafka import ensure_topics

    services = bench_services()
    try:
        settings = Settings(topic_prefix=f"bench-ingest-{uuid.uuid4().hex[:6]}.", data_dir=tempfile.mkdtemp())
        await ensure_topics(settings, {f"{settings.topic_prefix}{t}": n for t, n in
                                       (("raw", 6), ("readings", 6), ("deadletter", 1), ("registry", 1), ("alerts", 6), ("actions", 6),
                                        ("detector-state", 6), ("vitals", 6), ("limits", 1))})
        if args.hostile:
            return {"hostile": await hostile_path(settings, args.hostile_seconds, args.lorises),
                    "seconds_per_phase": args.hostile_seconds, "cpus": os.cpu_count(), "loadavg": list(os.getloadavg())}
        ticks = _ticks(args.readings)
        from ingest.gateway import GatewayClient

        payloads = [GatewayClient.encode(c) for c in ticks]
        raw = await raw_aiokafka(settings, payloads)
        kafka = await kafka_path(settings, ticks)
        http = await http_path(settings, ticks[:20], args.http_seconds, args.batch, args.connections)
        mllp = await mllp_path(settings, ticks[:1], args.http_seconds, args.mllp_connections)
        return {"raw_aiokafka_readings_per_s": round(raw), "kafka_readings_per_s": round(kafka),
                "http_readings_per_s": round(http), "kafka_vs_raw": round(kafka / raw, 3), **mllp,
                "readings": sum(len(t) for t in ticks), "http_batch": args.batch, "http_connections": args.connections,
                "cpus": os.cpu_count(), "loadavg": list(os.getloadavg())}
    finally:
        if services:
            services.stop()


def run(args: argparse.Namespace) -> int:
    res = eventloop.run(_main(args))
    if args.json:
        print(json.dumps(res))
    elif args.hostile:
        for phase, r in res["hostile"].items():
            print(f"valid requests, {phase:7}  p99 {r['p99_ms']:>8} ms  p50 {r['p50_ms']:>7} ms  max {r['max_ms']:>8} ms"
                  f"  ({r['valid_requests']} requests, {r['valid_failed']} failed; {r['hostile_bodies']} hostile bodies,"
                  f" {r['loris_connections']} slow-loris connections, held at most {r['loris_max_held_s']} s)")
    else:
        print(f"raw aiokafka (create_batch/send_batch)   {res['raw_aiokafka_readings_per_s']:>10,} readings/s")
        print(f"Kafka path (gateway client)              {res['kafka_readings_per_s']:>10,} readings/s"
              f"  ({res['kafka_vs_raw']:.0%} of raw)")
        print(f"HTTP path ({res['http_batch']}/request, {res['http_connections']} connections)  "
              f"{res['http_readings_per_s']:>10,} readings/s")
        print(f"MLLP (PCD-01, 3 vitals a message, {res['mllp_connections']} connections, ACK each)"
              f"  {res['mllp_messages_per_s']:>8,} messages/s  ({res['mllp_readings_per_s']:,} readings/s,"
              f" {res['mllp_not_aa']} ACKs not AA)")
    return 0
