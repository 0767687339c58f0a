"""``wardwatch bench alerts``: fan-out latency from the alerts topic to 1,000 websocket clients at
500 alert events per second (p50, p99, max), with the service and the clients in separate processes
on the same machine. Baseline in the same run: the raw Kafka produce-to-consume latency of the
same events (what the service cannot beat). ``--instances N`` measures N services (the clients
split over them) beside one; the figures go to ``bench-results/alerts.json`` as well.

Two ways to watch, each a phase of its own:

* **every ward**: each client subscribes to all wards (a central station), so every event goes to
  every client: 500,000 deliveries a second, all 1,000 sockets written on every frame;
* **by ward** (``--wards W``): patients and clients split evenly over W wards and each client
  subscribes to its own, as a nurse's screen does; the same 500 events a second reach the
  hospital, each to its ward's clients only."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path

import numpy as np
import orjson

from wardwatch import eventloop
from wardwatch.models import Alert, AlertEvent, AlertEventType, AlertKind, Priority


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--events-per-s", type=int, default=500)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--client-processes", type=int, default=2)
    p.add_argument("--client", choices=("lean", "websockets"), default="lean",
                   help="how the clients read frames: a few lines of RFC 6455 (lean), or websockets' Sans-I/O parser")
    p.add_argument("--instances", type=int, default=1, help="also measure this many alert services, clients split over them")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds sent but not measured")
    p.add_argument("--wards", type=int, default=20,
                   help="also measure clients split over this many wards, each watching its own (0: skip)")
    p.add_argument("--out", default="bench-results", help="alerts.json goes here (for `wardwatch bench plan`)")


class _Client(asyncio.Protocol):
    """One benchmark client: what it does with each message (hello, then the snapshot, then batch
    frames, whose raised events it counts and, for a sample, times). How it reads frames is its
    subclass's: the clients share the service's two cores, so the lighter they are, the more of
    the machine measures the service rather than them."""

    def __init__(self, url: str, token: str, stats: dict, wards: list[str]) -> None:
        self.url, self.token, self.stats, self.stage, self.frames, self.wards = url, token, stats, 0, 0, wards
        self.ready = asyncio.get_running_loop().create_future()

    def send_text(self, data: bytes) -> None:
        raise NotImplementedError

    def message(self, raw: bytes) -> None:
        if self.stage < 2:  # hello, then the snapshot
            self.stage += 1
            if self.stage == 1:
                self.send_text(orjson.dumps({"type": "subscribe", "wards": self.wards}))
            elif not self.ready.done():
                self.ready.set_result(None)
            return
        self.frames += 1
        raised, sent = self.read(raw)
        self.stats["received"] += len(raised)
        if self.frames % 10 == 0:  # a sample of frames for latency
            now = time.time() * 1000
            for at in raised:
                self.stats["latencies"].append(now - at)
                self.stats["ats"].append(at)
                self.stats["server"].append((now if sent is None else sent) - at)

    @staticmethod
    def read(raw: bytes) -> tuple[list[float], float | None]:
        """The times of a frame's raised events, and its 'sent' stamp."""
        doc = orjson.loads(raw)
        return [e["at"] for e in doc.get("events", ()) if e["type"] == "raised"], doc.get("sent")

    def connection_lost(self, exc) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before subscribing"))


class _WebsocketsClient(_Client):
    """Frames read by websockets' Sans-I/O protocol (the same parsing and inflation as a websockets
    client, without an asyncio connection object per socket)."""

    def __init__(self, *args) -> None:
        from websockets.client import ClientProtocol
        from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
        from websockets.uri import parse_uri

        super().__init__(*args)
        self.proto = ClientProtocol(parse_uri(self.url), extensions=[ClientPerMessageDeflateFactory()], max_size=16 << 20)

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.proto.send_request(self.proto.connect())
        self._flush()

    def _flush(self) -> None:
        for data in self.proto.data_to_send():
            if data:
                self.transport.write(data)

    def send_text(self, data: bytes) -> None:
        self.proto.send_text(data)

    def data_received(self, data: bytes) -> None:
        from websockets.frames import Frame, Opcode

        self.proto.receive_data(data)
        for ev in self.proto.events_received():
            if not isinstance(ev, Frame):  # the handshake's response
                self.send_text(orjson.dumps({"type": "auth", "token": self.token}))
            elif ev.opcode is Opcode.TEXT:
                self.message(bytes(ev.data))
        self._flush()


class _LeanClient(_Client):
    """Frames read by a few lines of RFC 6455 for what a server sends (unmasked frames, fragments,
    ping, close) and RFC 7692 permessage-deflate as the service negotiates it (no context takeover:
    each message inflated on its own). A browser does this in C on a machine of its own; in Python,
    websockets' general parser cost the clients about 40 % of their CPU (profiled), taken from the
    two cores the service runs on."""

    # The same text object for every client of the process (_inflate), so its hash is computed once.
    read = staticmethod(functools.lru_cache(64)(_Client.read))

    def connection_made(self, transport) -> None:
        import base64
        from urllib.parse import urlsplit

        self.transport, self.buf, self.upgraded, self.parts, self.compressed = transport, bytearray(), False, [], False
        u = urlsplit(self.url)
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(f"GET {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n".encode())

    def _send(self, opcode: int, payload: bytes) -> None:
        n = len(payload)  # a client's frames are masked (RFC 6455 5.3)
        size = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big") if n < 65536 else \
            bytes([0x80 | 127]) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
        self.transport.write(bytes([0x80 | opcode]) + size + mask + masked)

    def send_text(self, data: bytes) -> None:
        self._send(0x1, data)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            del buf[:end + 4]
            if not head.startswith(b"http/1.1 101"):
                self.transport.close()
                return
            self.upgraded, self.deflate = True, b"permessage-deflate" in head
            self.send_text(orjson.dumps({"type": "auth", "token": self.token}))
        while len(buf) >= 2:
            b0, n, i = buf[0], buf[1] & 0x7F, 2
            if n >= 126:
                i = 4 if n == 126 else 10
                if len(buf) < i:
                    return
                n = int.from_bytes(buf[2:i], "big")
            if len(buf) < i + n:
                return
            payload = bytes(buf[i:i + n])
            del buf[:i + n]
            opcode = b0 & 0x0F
            if opcode == 0x9:
                self._send(0xA, payload)  # pong
            elif opcode == 0x8:
                self.transport.close()
                return
            elif opcode in (0x0, 0x1):
                if opcode == 0x1:
                    self.parts, self.compressed = [], bool(b0 & 0x40)
                self.parts.append(payload)
                if b0 & 0x80:  # FIN
                    raw = b"".join(self.parts)
                    if self.compressed and self.deflate:
                        raw = _inflate(raw)
                    self.message(raw)


@functools.lru_cache(64)
def _inflate(compressed: bytes) -> bytes:
    """A message's text, inflated once per client process. The service compresses a frame once and
    writes the same bytes to every socket (no context takeover), so the 500 clients of a process would
    otherwise inflate (and decode) the same bytes 500 times: work a browser does in C on a machine
    of its own, which here would take the cores the service runs on. Each client still reads its
    own frame from its own socket, and is timed when it does."""
    return zlib.decompressobj(-15).decompress(compressed + b"\x00\x00\xff\xff")


CLIENTS = {"lean": _LeanClient, "websockets": _WebsocketsClient}


async def clients_main(url: str, token: str, n: int, seconds: float, wards: list[list[str]] | None = None,
                       kind: str = "lean") -> None:
    """Run in a child process: ``n`` clients, client i subscribed to ``wards[i]`` (all wards if None);
    prints their latencies (ms) as JSON."""
    from urllib.parse import urlsplit

    stats = {"received": 0, "latencies": [], "ats": [], "server": []}
    loop = asyncio.get_running_loop()
    u = urlsplit(url)
    clients: list[_Client] = []
    for i in range(n):
        w = ["*"] if wards is None else wards[i]
        _, c = await loop.create_connection(lambda: CLIENTS[kind](url, token, stats, w), u.hostname, u.port)
        clients.append(c)
    done = await asyncio.gather(*(asyncio.wait_for(c.ready, 60) for c in clients), return_exceptions=True)
    print(json.dumps({"ready": sum(1 for d in done if d is None)}), flush=True)
    await asyncio.sleep(seconds + 8)
    for c in clients:
        c.transport.close()
    print(json.dumps(stats), flush=True)


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far: the service's cost, whatever the load."""
    import psutil

    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return float("nan")
    return t.user + t.system


def _cpu_ticks() -> tuple[float, float]:
    """(idle, total) CPU seconds of the whole machine so far: how busy all of it was."""
    import psutil

    t = psutil.cpu_times()
    return t.idle + getattr(t, "iowait", 0.0), sum(t)


def _fanout_s(ports: list[int], admin: str) -> tuple[float, float]:
    """(seconds, count) the services' fan-outs have held their event loops so far, from /metrics."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    total = n = 0.0
    for port in ports:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {admin}"}, timeout=5).text
        except httpx.HTTPError:
            return float("nan"), float("nan")
        for family in text_string_to_metric_families(text):
            if family.name == "wardwatch_alerts_fanout_seconds":
                for sample in family.samples:
                    if sample.name.endswith("_sum"):
                        total += sample.value
                    elif sample.name.endswith("_count"):
                        n += sample.value
    return total, n


def _healthz(port: int) -> dict:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return {}


async def _spawn(n: int, env: dict, inputs: int) -> tuple[list, list[int]]:
    """``n`` alert services with the same settings; back once every input partition has its copier."""
    from devservices import free_port

    ports = [free_port() for _ in range(n)]
    procs = [subprocess.Popen([sys.executable, "-m", "app.cli", "--log-level", "WARNING", "alerts", "--port", str(p)],
                              env=env) for p in ports]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        docs = [_healthz(p) for p in ports]
        if all("seq" in d for d in docs) and sum(d.get("copying", 0) for d in docs) == inputs \
                and (n == 1 or all(d.get("copying") for d in docs)):
            return procs, ports
        await asyncio.sleep(0.3)
    raise RuntimeError("the alert services did not start (or their copier group did not settle)")


PATIENTS = 2000  # the events' patients, b0000..b1999


def ward_name(k: int) -> str:
    return f"bench-w{k:03d}"


async def _phase(args: argparse.Namespace, bus, env: dict, token: str, admin: str, instances: int, inputs: int,
                 wards: int) -> dict:
    """One measurement: ``instances`` services, the clients split evenly over them; with ``wards``,
    client g (over all processes) watches ward g % wards, and patient i lies in ward i % wards."""
    procs, ports = await _spawn(instances, env, inputs)
    clients = []
    try:
        per = args.clients // args.client_processes
        for i in range(args.client_processes):
            port = ports[i % len(ports)]
            subs = None if not wards else [[ward_name((i * per + j) % wards)] for j in range(per)]
            clients.append(subprocess.Popen([sys.executable, "-c", "from wardwatch import eventloop; from benchmarks.alerts import clients_main;"
                                             f"eventloop.run(clients_main('ws://127.0.0.1:{port}/ws', '{token}', {per}, "
                                             f"{args.seconds + args.warmup}, {subs!r}, {args.client!r}))"],
                                            stdout=subprocess.PIPE, text=True))
        # How many clients each event goes to: all, or its ward's.
        watching = np.bincount([g % wards for g in range(per * args.client_processes)], minlength=wards) if wards else None
        connected = sum(json.loads(c.stdout.readline())["ready"] for c in clients)
        # Raw Kafka latency of the same events, for comparison.
        probe = bus.consumer(bus.topics.alerts, group_id=None, auto_offset_reset="latest")
        await probe.start()
        raw_lat: list[float] = []
        measuring_from = [float("inf")]

        async def watch() -> None:
            while True:
                for msgs in (await probe.getmany(timeout_ms=100)).values():
                    now = time.time() * 1000
                    raw_lat.extend(now - at for at in (orjson.loads(m.value)["at"] for m in msgs) if at >= measuring_from[0])

        watcher = asyncio.create_task(watch())
        producer = bus.producer()
        await producer.start()
        sent = counted = expected = 0
        start = time.monotonic()
        tick = 0.01
        per_tick = args.events_per_s * tick
        while time.monotonic() - start < args.seconds + args.warmup:
            if measuring_from[0] == float("inf") and time.monotonic() - start >= args.warmup:
                measuring_from[0] = time.time() * 1000
                counted = sent
                cpu0, t0 = sum(_cpu_s(p.pid) for p in procs), time.monotonic()
                ccpu0 = sum(_cpu_s(c.pid) for c in clients)
                idle0 = _cpu_ticks()
                fan0 = await asyncio.to_thread(_fanout_s, ports, admin)
            due = int((time.monotonic() - start) / tick * per_tick) - sent
            if due > 0:
                now = int(time.time() * 1000)
                evs = []
                for k in range(due):
                    patient = f"b{(sent + k) % PATIENTS:04d}"
                    if watching is not None:
                        expected += int(watching[((sent + k) % PATIENTS) % wards])
                    aid = f"al-bench-{instances}-{sent + k}"
                    alert = Alert(id=aid, patient=patient, kind=AlertKind.physiological, priority=Priority.medium,
                                  condition="hr_high", message="bench", onset=now, raised_at=now, updated_at=now)
                    evs.append(AlertEvent(event_id=f"{aid}:raised", type=AlertEventType.raised, alert=alert, at=now))
                await producer.send_many(bus.topics.alerts, [(e.alert.patient.encode(), e.to_json()) for e in evs])
                sent += due
            await asyncio.sleep(tick / 2)
        cpu = (sum(_cpu_s(p.pid) for p in procs) - cpu0) / (time.monotonic() - t0)
        client_cpu = (sum(_cpu_s(c.pid) for c in clients) - ccpu0) / (time.monotonic() - t0)
        idle1 = _cpu_ticks()
        fan1 = await asyncio.to_thread(_fanout_s, ports, admin)
        fan_s, fans = fan1[0] - fan0[0], fan1[1] - fan0[1]
        idle = (idle1[0] - idle0[0]) / max(1, idle1[1] - idle0[1])
        await producer.stop()
        await asyncio.sleep(3)
        watcher.cancel()
        await probe.stop()
        received, lat, server = 0, [], []
        for c in clients:
            out, _ = c.communicate(timeout=120)
            doc = json.loads(out.strip().splitlines()[-1])
            received += doc["received"]
            lat += [x for x, at in zip(doc["latencies"], doc["ats"]) if at >= measuring_from[0]]
            server += [x for x, at in zip(doc["server"], doc["ats"]) if at >= measuring_from[0]]
        a = np.asarray(lat) if lat else np.asarray([np.nan])
        r = np.asarray(raw_lat) if raw_lat else np.asarray([np.nan])
        s = np.asarray(server) if server else np.asarray([np.nan])
        return {"instances": instances, "wards": wards or "all", "clients": connected,
                "events_per_s": round((sent - counted) / args.seconds),
                "events": sent, "deliveries": received, "expected_deliveries": expected if wards else sent * connected,
                "p50_ms": round(float(np.percentile(a, 50)), 1), "p99_ms": round(float(np.percentile(a, 99)), 1),
                "max_ms": round(float(a.max()), 1),
                # Of which in the service: from the event's time to the frame's (its "sent" stamp).
                "service_p50_ms": round(float(np.percentile(s, 50)), 1),
                "service_p99_ms": round(float(np.percentile(s, 99)), 1), "kafka_p50_ms": round(float(np.percentile(r, 50)), 1),
                "kafka_p99_ms": round(float(np.percentile(r, 99)), 1),
                "service_cores": round(cpu, 3),  # CPU seconds per second, all instances together
                "client_cores": round(client_cpu, 3),
                "machine_idle": round(idle, 3),  # the share of all cores idle while measuring
                # Writing frames to the sockets (one fan-out: one frame to every client of a scope).
                "fanout_ms_mean": round(1000 * fan_s / fans, 2) if fans else None,
                "fanout_cores": round(fan_s / (time.monotonic() - t0), 3)}
    finally:
        for p in procs + clients:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            p.wait(20)


async def _main(args: argparse.Namespace) -> dict:
    from wardwatch.auth import TokenStore
    from wardwatch.bus import open_bus
    from wardwatch.models import PatientRecord
    from wardwatch.registry import Registry
    from devservices import bench_services
    from wardwatch.settings import Settings

    services = bench_services()
    try:
        runs = []
        phases = [(n, 0) for n in sorted({1, args.instances})] + ([(1, args.wards)] if args.wards else [])
        for instances, wards in phases:
            # A deployment of its own per phase (topics, copier group, tokens), with the same settings on each instance.
            data_dir = tempfile.mkdtemp(prefix="ww-bench-alerts-")
            settings = Settings(topic_prefix=f"bench-alerts-{uuid.uuid4().hex[:6]}.", data_dir=data_dir,
                                escalate_after_s=3600)
            bus = open_bus(settings)
            await bus.ensure_topics()
            if wards:
                await Registry(settings.registry_path, bus).admit_many(
                    [PatientRecord(patient=f"b{i:04d}", ward=ward_name(i % wards)) for i in range(PATIENTS)])
            tokens = TokenStore(settings.tokens_path)
            token, _ = tokens.create("nurse", "bench")
            admin, _ = tokens.create("admin", "bench-metrics")
            env = dict(os.environ, WARDWATCH_TOPIC_PREFIX=settings.topic_prefix, WARDWATCH_DATA_DIR=data_dir,
                       WARDWATCH_ESCALATE_AFTER_S="3600")
            runs.append(await _phase(args, bus, env, token, admin, instances, 3 * settings.readings_partitions, wards))
        every = [r for r in runs if r["wards"] == "all"]
        return {"runs": runs, **every[-1], "cpus": os.cpu_count(), "loadavg": list(os.getloadavg())}
    finally:
        if services:
            services.stop()


def run(args: argparse.Namespace) -> int:
    res = eventloop.run(_main(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "alerts.json").write_text(json.dumps(res, indent=1))
    if args.json:
        print(json.dumps(res))
        return 0
    first = res["runs"][0]
    print(f"{first['clients']} websocket clients, {first['events_per_s']} alert events/s, {args.seconds:g} s measured"
          f" after {args.warmup:g} s of warm-up")
    print(f"{'instances':>9}  {'watching':>9}  {'delivered':>21}  {'p50 ms':>8}  {'p99 ms':>8}  {'max ms':>8}  {'service p50':>11}"
          f"  {'service p99':>11}  {'Kafka p50':>9}  {'Kafka p99':>9}  {'service cores':>13}  {'fan-out cores':>13}"
          f"  {'fan-out ms':>10}  {'client cores':>12}  {'idle':>5}")
    for r in res["runs"]:
        watching = "all wards" if r["wards"] == "all" else f"{r['wards']} wards"
        print(f"{r['instances']:>9}  {watching:>9}  {r['deliveries']:>10,}/{r['expected_deliveries']:<10,}  {r['p50_ms']:>8}  "
              f"{r['p99_ms']:>8}  {r['max_ms']:>8}  {r['service_p50_ms']:>11}  {r['service_p99_ms']:>11}  {r['kafka_p50_ms']:>9}  {r['kafka_p99_ms']:>9}  {r['service_cores']:>13}"
              f"  {r['fanout_cores']:>13}  {r['fanout_ms_mean']!s:>10}  {r['client_cores']:>12}  {r['machine_idle']:>5.0%}")
    print("latency: alerts topic -> copied into the alert log -> folded -> on the client's socket; service: "
          "the part until the frame was built (its 'sent' stamp), the rest is writing it to every socket and the "
          "clients reading it, on the same cores; "
          "Kafka: produce -> consume of the same events; cores: CPU seconds per second of the alert services "
          "and of the client processes (on the same machine); fan-out: the services' time writing frames to the sockets "
          "(cores) and per frame to a scope's clients (ms, mean); idle: the share of all cores idle meanwhile")
    return 0
