"""Run the alert service (``wardwatch alerts``): websocket feed, nurse page, history API.

One port: the ``websockets`` server answers the socket (``/ws``) itself and hands every other
request to the Starlette app of ``alerts/web.py`` in-process (the pages, the history API,
``/healthz``, ``/metrics``); docs/alerts.md says why the feed stays on websockets. Inputs come
from the bus: alarm events (alerts topic), the monitors' own alarms (device-alarms topic, shown as
alarms of kind ``device``), vitals snapshots (vitals topic) and the patient registry. Every event is stored in the event log
before it is shown or its offset committed, so a restart loses nothing and shows nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import urlsplit

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from wardwatch import access, alarm_texts
from wardwatch.auth import AuthError, TokenStore
from wardwatch.bus import Bus, open_bus
from wardwatch.embedded_store import open_store
from wardwatch.lineprotocol import alert_event_line
from wardwatch.models import (Alert, AlertEvent, AlertEventType, AlertKind, AlertState, DeviceAlarm, DeviceAlarmState,
                              Priority, VitalsSnapshot, now_ms)
from wardwatch.registry import RegistryView
from wardwatch.settings import Settings
from wardwatch.supervisor import Supervisor

from . import limits as limit_checks
from . import web
from .eventlog import EventLog
from .monitoring import DetectorWatch
from .feed import Client, Feed
from .guards import REPLAY_MAX, Refused
from .overrides import Overrides

log = logging.getLogger("wardwatch.alerts")
HEARTBEAT_S = 5.0
REVOKE_CHECK_S = 1.0  # a revoked token's sockets close within this plus one query
MAX_ESCALATION = 2


class AlertService:
    def __init__(self, settings: Settings, bus: Bus | None = None, store=None) -> None:
        self.settings = settings
        self.bus = bus or open_bus(settings)
        self.store = store or open_store(settings)
        self.tokens = TokenStore(settings.tokens_path, cache_size=settings.token_cache_size)
        self.log = EventLog(settings.data_dir / "alerts.sqlite3")
        self.feed = Feed()
        self.registry = RegistryView()
        self.producer = self.bus.producer()
        self.stop = asyncio.Event()
        self.registry_ready = asyncio.Event()
        self._last_poll = time.monotonic()
        self.supervisor = Supervisor(stop=self.stop)
        self.watch = DetectorWatch(settings.monitor_stall_s)
        # Actions wait here to be stored and published: escalation and acks never wait on InfluxDB.
        self.outbox: asyncio.Queue[tuple[str, AlertEvent]] = asyncio.Queue()
        self._outbox_stuck_since: float | None = None
        self.overrides = Overrides(settings.data_dir / "limits.sqlite3")
        self.connections: set[Client] = set()  # authenticated sockets, subscribed or not
        self._closing: set[asyncio.Task] = set()
        self.metrics = CollectorRegistry()
        self.m_events = Counter("wardwatch_alerts_events_total", "alarm events stored", ["type"], registry=self.metrics)
        self.m_clients = Gauge("wardwatch_alerts_clients", "connected websocket clients", registry=self.metrics)
        self.m_dupes = Counter("wardwatch_alerts_duplicates_total", "events dropped as repeats", registry=self.metrics)
        self.http = web.create_app(self)  # every route but /ws (alerts/web.py)

    def ward_of(self, patient: str) -> str:
        return self.registry.ward_of(patient) or "unassigned"

    # ---------------------------------------------------------------- inputs

    async def consume_alerts(self) -> None:
        topics = self.bus.topics
        consumer = self.bus.consumer(topics.alerts, topics.actions, topics.device_alarms,
                                     group_id=f"wardwatch-alerts-{self.settings.alerts_instance}")
        await consumer.start()  # from the committed offsets: a consumer restarted after a stall loses nothing
        try:
            while not self.stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                self._last_poll = time.monotonic()
                events = []
                for msgs in batches.values():
                    for m in msgs:
                        try:
                            if m.topic == topics.device_alarms:
                                ev = self.device_event(DeviceAlarm.model_validate_json(m.value), events)
                                if ev is not None:
                                    events.append(ev)
                            else:
                                events.append(AlertEvent.from_json(m.value))
                        except Exception:
                            log.warning("ignored a malformed %s record", "device alarm" if m.topic == topics.device_alarms
                                        else "alert event")
                if events:
                    self.ingest_many(events)
                if batches:
                    await consumer.commit()  # after the event log has them
        finally:
            await consumer.stop()

    def device_event(self, da: DeviceAlarm, pending: list[AlertEvent] = ()) -> AlertEvent | None:
        """A monitor's report of its own alarm as an event of a ``device`` alarm, kept apart from the
        detectors' by its kind and its id (``da-...``). None for a repeat: the same report again, or a
        "continue" that changes nothing the nurse sees (priority, state, inactivation, text)."""
        ended = da.state is DeviceAlarmState.ended
        if not ended:
            current = next((e.alert for e in reversed(pending) if e.alert.id == da.id), None)
            if current is None:
                found = self.log.alarm(da.id)
                current = found[0] if found else None
            m = current.monitor if current is not None else None
            if (m is not None and current.state is not AlertState.resolved and m.state is da.state
                    and (m.alarm_state, m.inactivation, m.device_priority, m.text) ==
                    (da.alarm_state, da.inactivation, da.device_priority, da.text)):
                self.m_dupes.inc()
                return None
        type_ = (AlertEventType.cleared if ended else
                 AlertEventType.raised if da.phase in ("start", "start_only") else AlertEventType.updated)
        what = da.text or " ".join(x for x in (da.event, da.source) if x)
        alert = Alert(id=da.id, patient=da.patient, kind=AlertKind.device, priority=da.priority,
                      condition=f"device:{da.event}"[:80], message=alarm_texts.device_alarm(what)[:300],
                      values={da.source_metric or da.source or "value": da.source_value} if da.source_value is not None else {},
                      onset=da.ts, raised_at=da.ts, updated_at=da.ts, latched=da.priority is Priority.high,
                      monitor=da)
        return AlertEvent(event_id=da.event_id, type=type_, alert=alert, at=da.ts, note="the monitor's own alarm")

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
        """In the event log and on every page at once; stored and published from the outbox, so an
        InfluxDB or Kafka outage delays neither an acknowledgement nor an escalation."""
        doc = self.ingest(ev)
        if doc is None:
            return None
        if client is not None:
            self.log.audit(client.principal.name, client.principal.role.value, ev.type.value, ev.alert.id,
                           {"patient": ev.alert.patient})
        self.outbox.put_nowait((alert_event_line(ev, doc["alert"]["state"]), ev))
        return doc

    async def drain_outbox(self) -> None:
        """Actions to the actions topic (other instances learn of them there; this one drops them as
        repeats) and to InfluxDB, retried until both have them, in order."""
        while True:
            items = [await self.outbox.get()]
            while not self.outbox.empty():
                items.append(self.outbox.get_nowait())
            self._outbox_stuck_since = time.monotonic()
            records = [(ev.alert.patient.encode(), ev.to_json()) for _, ev in items]
            delay = 0.2
            while True:
                try:
                    await self.producer.send_many(self.bus.topics.actions, records)
                    break
                except Exception as exc:
                    log.warning("publishing %d action(s) failed (%s); retrying", len(records), type(exc).__name__)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            await self.store.write_lines([ln for ln, _ in items], max_attempts=None)
            self._outbox_stuck_since = None

    async def watch_detectors(self) -> None:
        """Every page learns at once when no detector is processing the readings that wait."""
        while True:
            try:
                progress = await self.bus.group_progress(self.settings.consumer_group, self.bus.topics.readings)
                changed = self.watch.observe(progress)
            except Exception as exc:  # Kafka unreachable: after the same grace, that is not calm either
                changed = self.watch.unknown(type(exc).__name__)
            if changed:
                status = self.watch.status
                (log.info if status.ok else log.error)("monitoring %s: %s", "running" if status.ok else "STOPPED",
                                                         status.reason or "detectors processing")
                self.broadcast(status.message())
            await asyncio.sleep(min(2.0, self.settings.monitor_stall_s / 5))

    def broadcast(self, message: dict) -> None:
        from websockets import broadcast

        broadcast([c.ws for c in self.connections], orjson.dumps(message).decode())

    # ---------------------------------------------------------------- websocket

    async def handle(self, ws: ServerConnection) -> None:
        if urlsplit(ws.request.path).path != "/ws":
            await ws.close(4404, "unknown path")
            return
        try:
            first = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            principal = access.check(self.tokens, first.get("token") if first.get("type") == "auth" else None, "auth")
        except AuthError as exc:
            await ws.close(4401 if exc.status == 401 else 4403, exc.message)
            return
        except (asyncio.TimeoutError, ValueError, AttributeError, ConnectionClosed):
            await ws.close(4401, "authenticate first: {\"type\": \"auth\", \"token\": ...}")
            return
        # Until it subscribes, a client's scope is its token's wards, never "everything".
        client = Client(ws=ws, principal=principal, wards=set(principal.wards) or None)
        await ws.send(orjson.dumps({"type": "hello", "user": principal.name, "role": principal.role.value,
                                    "seq": self.log.last_seq(), "server_time": now_ms(),
                                    "audio_pause_s": self.settings.audio_pause_s,
                                    "monitoring": self.watch.status.message()}).decode())
        self.m_clients.inc()
        self.connections.add(client)
        try:
            async for raw in ws:
                try:
                    msg = orjson.loads(raw)
                    await self.on_message(client, msg)
                except AuthError as exc:
                    await _send_error(ws, exc.status, exc.message)
                except Refused as exc:
                    await _send_error(ws, exc.code, exc.message)
                except Exception as exc:  # one bad message never drops the connection
                    await ws.send(orjson.dumps({"type": "error", "message": str(exc)[:200]}).decode())
        except ConnectionClosed:
            pass
        finally:
            self.connections.discard(client)
            self.feed.remove(client)
            self.m_clients.dec()

    async def close_revoked(self) -> None:
        """Re-check connected clients' tokens against the token table; close revoked ones (4401)."""
        while not self.stop.is_set():
            await asyncio.sleep(REVOKE_CHECK_S)
            clients = list(self.connections)
            if not clients:
                continue
            active = self.tokens.active({c.principal.token_id for c in clients})
            for c in clients:
                if c.principal.token_id not in active:
                    self.connections.discard(c)
                    self.feed.remove(c)  # nothing more reaches it while the close handshake runs
                    task = asyncio.create_task(c.ws.close(4401, "token revoked"))
                    self._closing.add(task)
                    task.add_done_callback(self._closing.discard)

    async def on_message(self, client: Client, msg: dict) -> None:
        kind = msg.get("type")
        if kind == "auth":
            raise ValueError("already authenticated")
        if not isinstance(kind, str) or kind not in access.SOCKET_MESSAGES:
            raise ValueError(f"unknown message type {str(kind)[:30]!r}")
        access.require_role(client.principal, kind)  # the ward, where it matters, is checked per message
        client.rates.check(kind)
        if kind == "subscribe":
            await self.subscribe(client, msg)
        elif kind in ("ack", "pause", "resolve"):
            await self.act(client, kind, str(msg.get("alert_id", "")))
        elif kind == "set_limits":
            await self.set_limits(client, msg)
        elif kind == "disable_alarm":
            await self.disable_alarm(client, msg)
        else:
            await client.ws.send(orjson.dumps({"type": "pong", "server_time": now_ms()}).decode())

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
        replay = self.log.since(int(since), want, patients, REPLAY_MAX) if isinstance(since, int) else None
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
            raise Refused(404, "unknown alarm")
        alarm, ward, _ = found
        cross_ward = access.authorize(client.principal, kind, ward, escalated=alarm.escalation_level > 0)
        device = alarm.kind is AlertKind.device
        if device and kind == "pause":  # WardWatch does not sound for it; only the monitor can pause it
            raise Refused(409, "the monitor's own alarm: its audio can be paused only at the bedside")
        if _unchanged(kind, alarm.state):  # a repeat is answered, not stored and shown to everyone again
            await client.ws.send(orjson.dumps({"type": "unchanged", "alert_id": alert_id,
                                               "state": alarm.state.value}).decode())
            return
        at = now_ms()
        type_ = {"ack": AlertEventType.acknowledged, "pause": AlertEventType.audio_paused,
                 "resolve": AlertEventType.resolved}[kind]
        update = {"audio_paused_until": at + int(self.settings.audio_pause_s * 1000)} if kind == "pause" else {}
        ev = AlertEvent(event_id=AlertEvent.make_id(alert_id, type_, at), type=type_,
                        alert=alarm.model_copy(update=update), at=at, by=client.principal.name)
        # Audited here rather than in record_action, so that the row says whether it crossed wards;
        # before it, so that the row exists by the time anyone sees the event.
        detail = {"patient": alarm.patient, "cross_ward": cross_ward}
        if device:
            detail |= {"device_alarm": True, "device": alarm.monitor.device if alarm.monitor else None,
                       "note": "recorded in WardWatch only; the monitor's alarm at the bedside is not silenced"}
        self.log.audit(client.principal.name, client.principal.role.value, type_.value, alert_id, detail)
        await self.record_action(ev, None)

    def _admitted(self, client: Client, action: str, patient) -> str:
        """The patient, once the principal may act on their ward and they are admitted."""
        patient = str(patient or "")
        access.authorize(client.principal, action, self.ward_of(patient))
        if not self.registry.is_admitted(patient):
            raise Refused(404, "unknown patient")
        return patient

    async def set_limits(self, client: Client, msg: dict) -> None:
        patient = self._admitted(client, "set_limits", msg.get("patient"))
        limits = limit_checks.check_limits(msg.get("limits"))
        why = limit_checks.check_why(msg.get("why"))
        at = now_ms()
        await self._publish_limits(client, patient, limit_checks.with_limits(self.overrides.get(patient), limits, at),
                                   why, at)
        self.log.audit(client.principal.name, client.principal.role.value, "set_limits", patient,
                       {"limits": limits, "why": why})
        await client.ws.send(orjson.dumps({"type": "limits_set", "patient": patient}).decode())

    async def disable_alarm(self, client: Client, msg: dict) -> None:
        patient = self._admitted(client, "disable_alarm", msg.get("patient"))
        at = now_ms()
        condition, until = limit_checks.check_disable(msg.get("condition"), msg.get("until"), at)
        why = limit_checks.check_why(msg.get("why"))
        await self._publish_limits(client, patient,
                                   limit_checks.with_disable(self.overrides.get(patient), condition, until, at), why, at)
        self.log.audit(client.principal.name, client.principal.role.value, "disable_alarm", patient,
                       {"condition": condition, "until": until, "why": why})
        await client.ws.send(orjson.dumps({"type": "alarm_disabled", "patient": patient, "condition": condition,
                                           "until": until}).decode())

    async def _publish_limits(self, client: Client, patient: str, limits: dict, why: str, at: int) -> None:
        doc = {"patient": patient, "limits": limits, "by": client.principal.name, "why": why, "at": at}
        await self.producer.send_many(self.bus.topics.limits, [(patient.encode(), orjson.dumps(doc))])
        self.overrides.put(patient, limits)

    async def heartbeat(self) -> None:
        from websockets import broadcast

        while not self.stop.is_set():
            await asyncio.sleep(HEARTBEAT_S)
            frame = orjson.dumps({"type": "heartbeat", "seq": self.log.last_seq(), "server_time": now_ms(),
                                  "monitoring": self.watch.status.message()}).decode()
            broadcast([c.ws for c in self.feed.clients()], frame)

    # ---------------------------------------------------------------- HTTP

    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """/ws is the websocket handshake; every other request is answered by the Starlette app."""
        if urlsplit(request.path).path == "/ws" and request.method == "GET":
            return None
        return await web.answer(self.http, request, connection.remote_address)

    def health(self) -> tuple[bool, dict]:
        """Red whenever nurses could be missing something: alarms not consumed, a background task
        failing, detectors stopped, the store down, or actions not yet stored and published."""
        consuming = time.monotonic() - self._last_poll < 15
        store_ok = self.store.health.ok
        tasks_ok, tasks = self.supervisor.health()
        monitoring = self.watch.status
        outbox_ok = self._outbox_stuck_since is None or time.monotonic() - self._outbox_stuck_since < 10
        ok = consuming and store_ok and tasks_ok and monitoring.ok and outbox_ok
        return ok, {"ok": ok, "consuming": consuming, "store_ok": store_ok, "clients": len(self.feed.clients()),
                    "seq": self.log.last_seq(), "tasks": tasks, "monitoring": monitoring.message(),
                    "outbox": self.outbox.qsize(), "outbox_ok": outbox_ok}

    # ---------------------------------------------------------------- run

    async def run(self, host: str, port: int, ready: asyncio.Event | None = None) -> None:
        await self.bus.ensure_topics()
        await self.producer.start()
        for name, factory in (("registry", lambda: self.registry.follow(self.bus, self.stop, self.registry_ready)),
                              ("alarms", self.consume_alerts), ("vitals", self.consume_vitals),
                              ("escalation", self.escalate), ("fanout", lambda: self.feed.run(self.stop)),
                              ("heartbeat", self.heartbeat), ("outbox", self.drain_outbox),
                              ("detector-watch", self.watch_detectors), ("revocations", self.close_revoked)):
            self.supervisor.spawn(name, factory)
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
        await self.supervisor.stop()
        await self.producer.stop()


async def _send_error(ws, code: int, message: str) -> None:
    await ws.send(orjson.dumps({"type": "error", "code": code, "message": message}).decode())


def _unchanged(kind: str, state: AlertState) -> bool:
    return (kind == "ack" and state in (AlertState.acknowledged, AlertState.resolved)) or (
        kind == "resolve" and state is AlertState.resolved)
