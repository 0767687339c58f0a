"""``wardwatch bench alerts``: fan-out latency from the alerts topic to 1,000 websocket clients at
500 alert events per second (p50, p99, max), with the service and the clients in separate processes
on the same machine. Baseline in the same run: the raw Kafka produce-to-consume latency of the
same events (what the service cannot beat)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

import numpy as np
import orjson


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--events-per-s", type=int, default=500)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--client-processes", type=int, default=2)


async def clients_main(url: str, token: str, n: int, seconds: float) -> None:
    """Run in a child process: ``n`` clients on all wards; prints their latencies (ms) as JSON."""
    import websockets

    lat: list[float] = []
    received = 0

    async def one() -> None:
        nonlocal received
        async with websockets.connect(url, max_size=16 << 20, ping_interval=None) as ws:
            await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
            await ws.recv()
            await ws.send(orjson.dumps({"type": "subscribe", "wards": ["*"]}).decode())
            await ws.recv()
            ready.append(1)
            conns.append(ws)
            frames = 0
            try:
                async for raw in ws:  # no per-message timer: the clients must cost little
                    frames += 1
                    # Decoding every frame of 1,000 clients would measure this process's JSON speed,
                    # not the service: count events cheaply, decode a sample of frames for latency.
                    received += raw.count('"type":"raised"')
                    if frames % 10 == 0:
                        now = time.time() * 1000
                        msg = orjson.loads(raw)
                        lat.extend(now - e["at"] for e in msg.get("events", ()) if e["type"] == "raised")
            except websockets.ConnectionClosed:
                pass

    ready: list[int] = []
    conns: list = []
    tasks = [asyncio.create_task(one()) for _ in range(n)]
    while len(ready) < n and not all(t.done() for t in tasks):
        await asyncio.sleep(0.1)
    print(json.dumps({"ready": len(ready)}), flush=True)
    await asyncio.sleep(seconds + 8)
    for ws in conns:
        await ws.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"received": received, "latencies": lat}), flush=True)


async def _main(args: argparse.Namespace) -> dict:
    from wardwatch.auth import TokenStore
    from wardwatch.bus import open_bus
    from devservices import bench_services, free_port
    from wardwatch.models import Alert, AlertEvent, AlertEventType, AlertKind, Priority
    from wardwatch.settings import Settings

    services = bench_services()
    data_dir = tempfile.mkdtemp(prefix="ww-bench-alerts-")
    settings = Settings(topic_prefix=f"bench-alerts-{uuid.uuid4().hex[:6]}.", data_dir=data_dir, escalate_after_s=3600)
    bus = open_bus(settings)
    await bus.ensure_topics()
    token, _ = TokenStore(settings.tokens_path).create("nurse", "bench")
    port = free_port()
    env = dict(os.environ, WARDWATCH_TOPIC_PREFIX=settings.topic_prefix, WARDWATCH_DATA_DIR=data_dir,
               WARDWATCH_ESCALATE_AFTER_S="3600")
    procs = [subprocess.Popen([sys.executable, "-m", "app.cli", "--log-level", "WARNING", "alerts", "--port", str(port)],
                              env=env)]
    clients = []
    try:
        import httpx

        for _ in range(150):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
        per = args.clients // args.client_processes
        for _ in range(args.client_processes):
            clients.append(subprocess.Popen([sys.executable, "-c", "import sys, asyncio; from benchmarks.alerts import clients_main;"
                                             f"asyncio.run(clients_main('ws://127.0.0.1:{port}/ws', '{token}', {per}, {args.seconds}))"],
                                            stdout=subprocess.PIPE, text=True))
        connected = sum(json.loads(c.stdout.readline())["ready"] for c in clients)
        # Raw Kafka latency of the same events, for comparison.
        probe = bus.consumer(bus.topics.alerts, group_id=None, auto_offset_reset="latest")
        await probe.start()
        raw_lat: list[float] = []

        async def watch() -> None:
            while True:
                for msgs in (await probe.getmany(timeout_ms=100)).values():
                    now = time.time() * 1000
                    raw_lat.extend(now - orjson.loads(m.value)["at"] for m in msgs)

        watcher = asyncio.create_task(watch())
        producer = bus.producer()
        await producer.start()
        sent = 0
        start = time.monotonic()
        tick = 0.01
        per_tick = args.events_per_s * tick
        while time.monotonic() - start < args.seconds:
            due = int((time.monotonic() - start) / tick * per_tick) - sent
            if due > 0:
                now = int(time.time() * 1000)
                evs = []
                for k in range(due):
                    patient = f"b{(sent + k) % 2000:04d}"
                    aid = f"al-bench-{sent + k}"
                    alert = Alert(id=aid, patient=patient, kind=AlertKind.physiological, priority=Priority.medium,
                                  condition="hr_high", message="bench", onset=now, raised_at=now, updated_at=now)
                    evs.append(AlertEvent(event_id=f"{aid}:raised", type=AlertEventType.raised, alert=alert, at=now))
                await producer.send_many(bus.topics.alerts, [(e.alert.patient.encode(), e.to_json()) for e in evs])
                sent += due
            await asyncio.sleep(tick / 2)
        await producer.stop()
        await asyncio.sleep(3)
        watcher.cancel()
        await probe.stop()
        received, lat = 0, []
        for c in clients:
            out, _ = c.communicate(timeout=120)
            doc = json.loads(out.strip().splitlines()[-1])
            received += doc["received"]
            lat += doc["latencies"]
        a = np.asarray(lat) if lat else np.asarray([np.nan])
        r = np.asarray(raw_lat) if raw_lat else np.asarray([np.nan])
        return {"clients": connected, "events_per_s": round(sent / args.seconds), "events": sent,
                "deliveries": received, "expected_deliveries": sent * connected,
                "p50_ms": round(float(np.percentile(a, 50)), 1), "p99_ms": round(float(np.percentile(a, 99)), 1),
                "max_ms": round(float(a.max()), 1), "kafka_p50_ms": round(float(np.percentile(r, 50)), 1),
                "kafka_p99_ms": round(float(np.percentile(r, 99)), 1), "cpus": os.cpu_count(),
                "loadavg": list(os.getloadavg())}
    finally:
        for p in procs + clients:
            if p.poll() is None:
                p.terminate()
        if services:
            services.stop()


def run(args: argparse.Namespace) -> int:
    res = asyncio.run(_main(args))
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{res['clients']} websocket clients, {res['events_per_s']} alert events/s for {res['events']} events")
        print(f"delivered {res['deliveries']:,} of {res['expected_deliveries']:,}")
        print(f"alerts topic -> client   p50 {res['p50_ms']} ms   p99 {res['p99_ms']} ms   max {res['max_ms']} ms")
        print(f"raw Kafka produce->consume   p50 {res['kafka_p50_ms']} ms   p99 {res['kafka_p99_ms']} ms")
    return 0
