"""Run the alert service (``wardwatch alerts``): websocket feed, nurse page, history API.

One ``websockets`` server answers both the socket (``/ws``) and plain GETs (the pages, the
history API, ``/healthz``, ``/metrics``). Inputs come from the bus: alarm events (alerts topic),
vitals snapshots (vitals topic) and the patient registry. Every event is stored in the event log
before it is shown or its offset committed, so a restart loses nothing and shows nothing twice.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import mimetypes
import signal
import time
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from wardwatch.auth import AuthError, Role, TokenStore, bearer
from wardwatch.bus import Bus, open_bus
from wardwatch.embedded_store import open_store
from wardwatch.lineprotocol import line
from wardwatch.models import AlertEvent, AlertEventType, VitalsSnapshot, now_ms
from wardwatch.registry import RegistryView
from wardwatch.settings import Settings, get_settings

from .eventlog import EventLog
from .feed import Client, Feed
from .history import patient_history, to_csv, to_fhir_bundle

log = logging.getLogger("wardwatch.alerts")
STATIC = Path(__file__).parent / "static"
FEED_ROLES = frozenset({Role.nurse, Role.clinician, Role.admin})
LIMIT_ROLES = frozenset({Role.clinician, Role.admin})
HEARTBEAT_S = 5.0
MAX_ESCALATION = 2


class AlertService:
    def __init__(self, settings: Settings, bus: Bus | None = None, store=None) -> None:
        self.settings = settings
        self.bus = bus or open_bus(settings)
        self.store = store or open_store(settings)
        self.tokens = TokenStore(settings.tokens_path)
        self.log = EventLog(settings.data_dir / "alerts.sqlite3")
        self.feed = Feed()
        self.registry = RegistryView()
        self.producer = self.bus.producer()
        self.stop = asyncio.Event()
        self.registry_ready = asyncio.Event()
        self._last_poll = time.monotonic()
        self.metrics = CollectorRegistry()
        self.m_events = Counter("wardwatch_alerts_events_total", "alarm events stored", ["type"], registry=self.metrics)
        self.m_clients = Gauge("wardwatch_alerts_clients", "connected websocket clients", registry=self.metrics)
        self.m_dupes = Counter("wardwatch_alerts_duplicates_total", "events dropped as repeats", registry=self.metrics)

    def ward_of(self, patient: str) -> str:
        return self.registry.ward_of(patient) or "unassigned"

    # ---------------------------------------------------------------- inputs

    async def consume_alerts(self) -> None:
        consumer = self.bus.consumer(self.bus.topics.alerts, self.bus.topics.actions, group_id=f"wardwatch-alerts-{self.settings.alerts_instance}")
        await consumer.start()
        try:
            while not self.stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                self._last_poll = time.monotonic()
                events = []
                for msgs in batches.values():
                    for m in msgs:
                        try:
                            events.append(AlertEvent.from_json(m.value))
                        except Exception:
                            log.warning("ignored a malformed alert event")
                if events:
                    self.ingest_many(events)
                if batches:
                    await consumer.commit()  # after the event log has them
        finally:
            await consumer.stop()

    def ingest(self, event: AlertEvent) -> dict | None:
        return self.ingest_many([event])[0]

    def ingest_many(self, events: list[AlertEvent]) -> list[dict | None]:
        """Store (dedupe by event_id), then show to every client whose scope covers the patient."""
        wards = [self.ward_of(e.alert.patient) for e in events]
        out: list[dict | None] = []
        for stored, ward in zip(self.log.append_many(list(zip(events, wards))), wards):
            if stored is None:
                self.m_dupes.inc()
                out.append(None)
                continue
            doc = stored.model_dump(mode="json")
            doc["ward"] = ward
            self.feed.publish_event(doc, ward, everyone=stored.type is AlertEventType.escalated)
            self.m_events.labels(stored.type.value).inc()
            out.append(doc)
        return out

    async def consume_vitals(self) -> None:
        consumer = self.bus.consumer(self.bus.topics.vitals, group_id=None, auto_offset_reset="latest")
        await consumer.start()
        try:
            while not self.stop.is_set():
                for msgs in (await consumer.getmany(timeout_ms=200, max_records=20000)).values():
                    for m in msgs:
                        try:
                            snap = VitalsSnapshot.model_validate_json(m.value)
                        except Exception:
                            continue
                        self.feed.publish_vitals(snap, self.ward_of(snap.patient))
        finally:
            await consumer.stop()

    async def escalate(self) -> None:
        """Unacknowledged alarms move up a priority and out to everyone, once per escalation period."""
        period = self.settings.escalate_after_s
        while not self.stop.is_set():
            for alarm, ward, seen in self.log.due_for_escalation(time.time(), period, MAX_ESCALATION):
                level = alarm.escalation_level
                at = int((seen + period * (level + 1)) * 1000)
                ev = AlertEvent(event_id=AlertEvent.make_id(alarm.id, AlertEventType.escalated, at),
                                type=AlertEventType.escalated, alert=alarm, at=at,
                                note=f"not acknowledged within {int(period * (level + 1))}s")
                await self.record_action(ev, None)
            await asyncio.sleep(min(1.0, max(0.05, period / 10)))

    async def record_action(self, ev: AlertEvent, client: Client | None) -> dict | None:
        doc = self.ingest(ev)
        if doc is None:
            return None
        if client is not None:
            self.log.audit(client.principal.name, client.principal.role.value, ev.type.value, ev.alert.id,
                           {"patient": ev.alert.patient})
        a = ev.alert
        await self.store.write_lines([line("alerts", {"patient": a.patient, "kind": a.kind.value, "priority": a.priority.value,
                                                      "condition": a.condition, "event": ev.type.value},
                                           {"alert_id": a.id, "message": a.message, "state": doc["alert"]["state"],
                                            "by": ev.by or "", "values": "{}"}, ev.at)], max_attempts=5)
        # Other instances of this service learn of it from the topic; this one drops it as a repeat.
        await self.producer.send_many(self.bus.topics.actions, [(a.patient.encode(), ev.to_json())])
        return doc

    # ---------------------------------------------------------------- websocket

    async def handle(self, ws: ServerConnection) -> None:
        if urlsplit(ws.request.path).path != "/ws":
            await ws.close(4404, "unknown path")
            return
        try:
            first = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            principal = self.tokens.check(first.get("token") if first.get("type") == "auth" else None, FEED_ROLES)
        except AuthError as exc:
            await ws.close(4401 if exc.status == 401 else 4403, exc.message)
            return
        except (asyncio.TimeoutError, ValueError, AttributeError, ConnectionClosed):
            await ws.close(4401, "authenticate first: {\"type\": \"auth\", \"token\": ...}")
            return
        client = Client(ws=ws, principal=principal)
        await ws.send(orjson.dumps({"type": "hello", "user": principal.name, "role": principal.role.value,
                                    "seq": self.log.last_seq(), "server_time": now_ms(),
                                    "audio_pause_s": self.settings.audio_pause_s}).decode())
        self.m_clients.inc()
        try:
            async for raw in ws:
                try:
                    msg = orjson.loads(raw)
                    await self.on_message(client, msg)
                except Exception as exc:  # one bad message never drops the connection
                    await ws.send(orjson.dumps({"type": "error", "message": str(exc)[:200]}).decode())
        except ConnectionClosed:
            pass
        finally:
            self.feed.remove(client)
            self.m_clients.dec()

    async def on_message(self, client: Client, msg: dict) -> None:
        kind = msg.get("type")
        if kind == "subscribe":
            await self.subscribe(client, msg)
        elif kind in ("ack", "pause", "resolve"):
            await self.act(client, kind, str(msg.get("alert_id", "")))
        elif kind == "set_limits":
            await self.set_limits(client, msg)
        elif kind == "ping":
            await client.ws.send(orjson.dumps({"type": "pong", "server_time": now_ms()}).decode())
        else:
            raise ValueError(f"unknown message type {str(kind)[:30]!r}")

    async def subscribe(self, client: Client, msg: dict) -> None:
        wards = [str(w) for w in msg.get("wards") or []]
        patients = {str(p) for p in msg.get("patients") or []}
        allowed = set(client.principal.wards)
        if "*" in wards or (not wards and not patients):
            want: set[str] | None = None
        else:
            want = set(wards)
        if allowed:  # a token limited to wards never sees beyond them
            want = allowed if want is None else want & allowed
            patients = {p for p in patients if self.ward_of(p) in allowed}
        self.feed.remove(client)
        client.wards, client.patients, client.needs_resync = want, patients, False
        since = msg.get("since")
        # No await between reading the log and joining the feed: nothing can fall in between.
        replay = self.log.since(int(since), want, patients) if isinstance(since, int) else None
        if replay is not None:
            reply = {"type": "replay", "events": replay, "seq": self.log.last_seq()}
        else:
            reply = {"type": "snapshot", "seq": self.log.last_seq(), "alarms": self.log.open_alarms(want, patients),
                     "vitals": self.feed.vitals_for(client, self.registry.ward_of),
                     "patients": [r.model_dump() | {"ward": r.ward} for r in self.registry.patients.values()
                                  if client.sees(r.ward, r.patient)]}
        self.feed.add(client)
        await client.ws.send(orjson.dumps(reply).decode())

    async def act(self, client: Client, kind: str, alert_id: str) -> None:
        found = self.log.alarm(alert_id)
        if found is None:
            raise ValueError("unknown alarm")
        alarm, ward, _ = found
        if not client.sees(ward, alarm.patient) and alarm.escalation_level == 0:
            raise PermissionError("this alarm is not on your wards")
        at = now_ms()
        type_ = {"ack": AlertEventType.acknowledged, "pause": AlertEventType.audio_paused,
                 "resolve": AlertEventType.resolved}[kind]
        update = {"audio_paused_until": at + int(self.settings.audio_pause_s * 1000)} if kind == "pause" else {}
        ev = AlertEvent(event_id=AlertEvent.make_id(alert_id, type_, at), type=type_,
                        alert=alarm.model_copy(update=update), at=at, by=client.principal.name)
        await self.record_action(ev, client)

    async def set_limits(self, client: Client, msg: dict) -> None:
        if client.principal.role not in LIMIT_ROLES:
            await client.ws.send(orjson.dumps({"type": "error", "code": 403,
                                               "message": "only a clinician may change alarm limits"}).decode())
            return
        patient, limits, why = str(msg.get("patient", "")), msg.get("limits"), str(msg.get("why", ""))
        if not patient or not isinstance(limits, dict) or not why:
            raise ValueError("set_limits needs patient, limits and why")
        doc = {"patient": patient, "limits": limits, "by": client.principal.name, "why": why, "at": now_ms()}
        await self.producer.send_many(self.bus.topics.limits, [(patient.encode(), orjson.dumps(doc))])
        self.log.audit(client.principal.name, client.principal.role.value, "set_limits", patient,
                       {"limits": limits, "why": why})
        await client.ws.send(orjson.dumps({"type": "limits_set", "patient": patient}).decode())

    async def heartbeat(self) -> None:
        from websockets import broadcast

        while not self.stop.is_set():
            await asyncio.sleep(HEARTBEAT_S)
            frame = orjson.dumps({"type": "heartbeat", "seq": self.log.last_seq(), "server_time": now_ms()}).decode()
            broadcast([c.ws for c in self.feed.clients()], frame)

    # ---------------------------------------------------------------- HTTP

    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        path = url.path
        if path == "/ws":
            return None
        if path == "/healthz":
            ok, doc = self.health()
            return _response(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, orjson.dumps(doc), "application/json")
        if path == "/metrics":
            return _response(HTTPStatus.OK, generate_latest(self.metrics), "text/plain; version=0.0.4")
        if path in ("/", "/nurse"):
            return _static("nurse.html")
        if path == "/history":
            return _static("history.html")
        if path.startswith("/static/"):
            return _static(path[len("/static/"):])
        if path.startswith("/api/"):
            return await self.api(path, parse_qs(url.query), request.headers.get("Authorization"))
        return _response(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    async def api(self, path: str, q: dict, authorization: str | None) -> Response:
        try:
            principal = self.tokens.check(bearer(authorization), FEED_ROLES if path.startswith("/api/history")
                                          else frozenset({Role.admin}))
        except AuthError as exc:
            return _response(HTTPStatus(exc.status), orjson.dumps({"error": exc.message}), "application/json")
        if path == "/api/audit":
            return _response(HTTPStatus.OK, orjson.dumps(self.log.audit_rows()), "application/json")
        try:
            patient = q["patient"][0]
            stop = int(q.get("stop", [now_ms()])[0])
            start = int(q.get("start", [stop - 6 * 3600_000])[0])
            every = int(q["every"][0]) if "every" in q else None
            if stop <= start or not patient:
                raise ValueError
        except (KeyError, ValueError, IndexError):
            return _response(HTTPStatus.BAD_REQUEST, orjson.dumps({"error": "need patient, start < stop (epoch ms)"}),
                             "application/json")
        if principal.wards and self.ward_of(patient) not in principal.wards:
            return _response(HTTPStatus.FORBIDDEN, orjson.dumps({"error": "patient not on your wards"}), "application/json")
        hist = await patient_history(self.store, patient, start, stop, every)
        if path == "/api/history":
            return _response(HTTPStatus.OK, orjson.dumps(hist), "application/json")
        if path == "/api/history.csv":
            return _response(HTTPStatus.OK, to_csv(hist).encode(), "text/csv")
        if path == "/api/history.fhir":
            return _response(HTTPStatus.OK, orjson.dumps(to_fhir_bundle(hist)), "application/fhir+json")
        return _response(HTTPStatus.NOT_FOUND, b"{}", "application/json")

    def health(self) -> tuple[bool, dict]:
        consuming = time.monotonic() - self._last_poll < 15
        store_ok = self.store.health.ok
        ok = consuming and store_ok
        return ok, {"ok": ok, "consuming": consuming, "store_ok": store_ok, "clients": len(self.feed.clients()),
                    "seq": self.log.last_seq()}

    # ---------------------------------------------------------------- run

    async def run(self, host: str, port: int, ready: asyncio.Event | None = None) -> None:
        await self.bus.ensure_topics()
        await self.producer.start()
        tasks = [asyncio.create_task(c) for c in (self.registry.follow(self.bus, self.stop, self.registry_ready),
                                                  self.consume_alerts(), self.consume_vitals(), self.escalate(),
                                                  self.feed.run(self.stop), self.heartbeat())]
        try:
            await asyncio.wait_for(self.registry_ready.wait(), 30)
        except asyncio.TimeoutError:
            log.warning("registry not read within 30s; patients show as unassigned until it is")
        async with serve(self.handle, host, port, process_request=self.process_request, ping_interval=10,
                         ping_timeout=20, max_size=1 << 20, max_queue=64,
                         compression=None) as server:  # per-client deflate made fan-out CPU-bound (profiled)
            self.server = server
            log.info("alert service on http://%s:%d/", host, port)
            if ready is not None:
                ready.set()
            await self.stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.producer.stop()


def _response(status: HTTPStatus, body: bytes, ctype: str) -> Response:
    headers = Headers([("Content-Type", ctype), ("Content-Length", str(len(body))), ("Cache-Control", "no-store"),
                       ("X-Content-Type-Options", "nosniff")])
    return Response(status.value, status.phrase, headers, body)


def _static(name: str) -> Response:
    path = (STATIC / name).resolve()
    if STATIC.resolve() not in path.parents or not path.is_file():
        return _response(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return _response(HTTPStatus.OK, path.read_bytes(), ctype + ("; charset=utf-8" if ctype.startswith("text") else ""))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None, help="default: WARDWATCH_ALERTS_HOST")
    p.add_argument("--port", type=int, default=None, help="default: WARDWATCH_ALERTS_PORT")


def run(args: argparse.Namespace) -> int:
    settings = get_settings()

    async def main() -> None:
        service = AlertService(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.stop.set)
        await service.run(args.host or settings.alerts_host, args.port or settings.alerts_port)

    asyncio.run(main())
    return 0
