"""Which stack should carry the alert feed: ``websockets.broadcast`` or Starlette/uvicorn websockets?

``python -m benchmarks.feed_stacks [--clients 1000] [--seconds 10]``

The same frames, at the feed's cadence (one ``batch`` frame every 50 ms, ~25 alert events of the
bench's 500 events/s in each), to the same number of connected clients, from:

* ``websockets``: a ``websockets.asyncio.server`` (compression off, as the alert service) fanning
  out with ``websockets.broadcast`` (one frame encoded once, written to every transport);
* ``starlette``: a Starlette ``WebSocketRoute`` under uvicorn (its default websockets-sansio
  protocol, per-message deflate off) fanning out with ``await ws.send_bytes(frame)`` per client.

The server runs in this process, the clients in two child processes (websockets clients). Printed
per stack: the server's time to hand one frame to every client (p50, p99: what the event loop is
blocked for, 20 times a second, and the CPU time that takes) and the clients' send-to-receive
latency (p50, p99; with the clients on the same two cores, this is mostly the clients' own time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

import numpy as np
import orjson

FLUSH_S = 0.05


def frame(i: int) -> bytes:
    now = int(time.time() * 1000)
    events = [{"seq": i * 25 + k, "event_id": f"al-bench-{i}-{k}:raised", "type": "raised", "at": now, "ward": "w7",
               "alert": {"id": f"al-bench-{i}-{k}", "patient": f"b{k:04d}", "kind": "physiological",
                         "priority": "medium", "condition": "hr_high", "message": "bench", "values": {},
                         "onset": now, "raised_at": now, "updated_at": now, "state": "active"}} for k in range(25)]
    return orjson.dumps({"type": "batch", "sent": time.time() * 1000, "events": events, "vitals": []})


async def clients_main(url: str, n: int) -> None:
    """In a child process: ``n`` clients; prints the latency of every 10th frame each sees (ms)."""
    import websockets

    lat: list[float] = []
    counts = [0]
    ready: list[int] = []

    async def one() -> None:
        async with websockets.connect(url, max_size=16 << 20, ping_interval=None, compression=None) as ws:
            ready.append(1)
            frames = 0
            try:
                async for raw in ws:
                    frames += 1
                    counts[0] += 1
                    if frames % 10 == 0:
                        lat.append(time.time() * 1000 - orjson.loads(raw)["sent"])
            except websockets.ConnectionClosed:
                pass

    tasks = [asyncio.create_task(one()) for _ in range(n)]
    while len(ready) < n and not all(t.done() for t in tasks):
        await asyncio.sleep(0.05)
    print(json.dumps({"ready": len(ready)}), flush=True)
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"received": counts[0], "latencies": lat}), flush=True)


class WebsocketsStack:
    name = "websockets.broadcast"

    async def start(self, port: int) -> None:
        from websockets.asyncio.server import serve

        self.conns: set = set()

        async def handler(ws) -> None:
            self.conns.add(ws)
            try:
                await ws.wait_closed()
            finally:
                self.conns.discard(ws)

        self.server = await serve(handler, "127.0.0.1", port, compression=None, max_queue=64).__aenter__()

    def count(self) -> int:
        return len(self.conns)

    async def fan_out(self, data: bytes) -> None:
        from websockets import broadcast

        broadcast(self.conns, data)

    async def stop(self) -> None:
        for ws in list(self.conns):
            await ws.close()
        self.server.close()
        await self.server.wait_closed()


class StarletteStack:
    name = "starlette/uvicorn send_bytes"

    async def start(self, port: int) -> None:
        from starlette.applications import Starlette
        from starlette.routing import WebSocketRoute
        from starlette.websockets import WebSocketDisconnect

        from wardwatch import web

        self.conns: set = set()

        async def endpoint(ws) -> None:
            await ws.accept()
            self.conns.add(ws)
            try:
                while True:
                    await ws.receive_bytes()
            except (WebSocketDisconnect, RuntimeError, KeyError):
                pass
            finally:
                self.conns.discard(ws)

        app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
        self.served = await web.serve(app, "127.0.0.1", port, ws_per_message_deflate=False, ws_max_queue=64)

    def count(self) -> int:
        return len(self.conns)

    async def fan_out(self, data: bytes) -> None:
        for ws in list(self.conns):
            try:
                await ws.send_bytes(data)
            except Exception:
                self.conns.discard(ws)

    async def stop(self) -> None:
        for ws in list(self.conns):
            try:
                await ws.close()
            except Exception:
                pass
        await self.served.wait_closed()


async def measure(stack, clients: int, seconds: float) -> dict:
    from devservices import free_port

    port = free_port()
    await stack.start(port)
    per = clients // 2
    procs = [subprocess.Popen([sys.executable, "-c", "import asyncio; from benchmarks.feed_stacks import clients_main;"
                               f"asyncio.run(clients_main('ws://127.0.0.1:{port}/ws', {per}))"],
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        ready = 0
        for p in procs:
            ready += json.loads(await asyncio.to_thread(p.stdout.readline))["ready"]
        while stack.count() < ready:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        fan: list[float] = []
        cpu: list[float] = []
        frames = int(seconds / FLUSH_S)
        t_start = time.monotonic()
        for i in range(frames):
            data = frame(i)
            t0, c0 = time.perf_counter(), time.process_time()
            await stack.fan_out(data)
            fan.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
            await asyncio.sleep(max(0.0, t_start + (i + 1) * FLUSH_S - time.monotonic()))
        await asyncio.sleep(2.0)
        await stack.stop()
        received, lat = 0, []
        for p in procs:
            out, _ = await asyncio.to_thread(p.communicate, timeout=120)
            doc = json.loads(out.strip().splitlines()[-1])
            received += doc["received"]
            lat += doc["latencies"]
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
    f, c, a = np.asarray(fan), np.asarray(cpu), np.asarray(lat or [np.nan])
    return {"stack": stack.name, "clients": ready, "frames": frames, "frame_bytes": len(frame(0)),
            "delivered": received, "expected": frames * ready,
            "fanout_p50_ms": round(float(np.percentile(f, 50)), 2), "fanout_p99_ms": round(float(np.percentile(f, 99)), 2),
            "fanout_cpu_ms": round(float(c.mean()), 2),
            "latency_p50_ms": round(float(np.percentile(a, 50)), 1), "latency_p99_ms": round(float(np.percentile(a, 99)), 1)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    results = []
    for stack in (WebsocketsStack(), StarletteStack()):
        results.append(asyncio.run(measure(stack, args.clients, args.seconds)))
    if args.json:
        print(json.dumps({"results": results, "cpus": os.cpu_count(), "loadavg": list(os.getloadavg())}))
        return
    for r in results:
        print(f"{r['stack']:30} {r['clients']} clients, {r['frames']} frames of {r['frame_bytes']:,} B, "
              f"delivered {r['delivered']:,} of {r['expected']:,}")
        print(f"{'':30} one frame to every client  p50 {r['fanout_p50_ms']} ms  p99 {r['fanout_p99_ms']} ms"
              f"  (CPU {r['fanout_cpu_ms']} ms mean)")
        print(f"{'':30} send->receive  p50 {r['latency_p50_ms']} ms  p99 {r['latency_p99_ms']} ms")
    ws, st = results
    print(f"starlette/websockets, time to hand a frame to every client: {st['fanout_p50_ms'] / ws['fanout_p50_ms']:.1f}x (p50),"
          f" {st['fanout_p99_ms'] / ws['fanout_p99_ms']:.1f}x (p99), CPU {st['fanout_cpu_ms'] / ws['fanout_cpu_ms']:.1f}x")
    print(f"loadavg {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")


if __name__ == "__main__":
    main()
