"""Run the alert service (``wardwatch alerts``): websocket feed, nurse page, history API.

One port: the ``websockets`` server answers the socket (``/ws``) itself and hands every other
request to the Starlette app of ``alerts/web.py`` in-process (the pages, the history API,
``/healthz``, ``/metrics``); docs/alerts.md says why the feed stays on websockets.

Run as many instances as you like with the same settings (docs/scaling.md): they share one alert
log (alerts/alertlog.py), into which the detectors' alarms (alerts topic) and the monitors' own
(device-alarms topic, shown as alarms of kind ``device``) are copied, and nurses' actions,
escalations and audit rows are written; every instance folds it in the same order into its view
(alerts/eventlog.py), so seq, alarm states and the audit trail are the same on each, and a client
resumes on any of them. Tokens come from the tokens topic (wardwatch/token_sync.py); vitals
snapshots (vitals topic) and the patient registry are read by each instance.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from urllib.parse import urlsplit

import orjson
from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from wardwatch import access, alarm_texts, heap
from wardwatch.auth import AuthError, Expired, Forbidden, Principal, TokenStore
from wardwatch.bus import Bus, open_bus
from wardwatch.embedded_store import open_store
from wardwatch.lineprotocol import alert_event_line
from wardwatch.models import (UNASSIGNED, Alert, AlertEvent, AlertEventType, AlertKind, AlertState, DeviceAlarm,
                              DeviceAlarmState, Priority, VitalsSnapshot, now_ms)
from wardwatch.registry import RegistryView
from wardwatch.settings import Settings
from wardwatch.supervisor import Supervisor
from wardwatch.token_sync import follow_tokens

from . import limits as limit_checks
from . import web
from .alertlog import AUDIT, DEVICE, EVENT, FETCH_WAIT_MS, Ownership, audit_record, copy_inputs, event_record, hold_ownership
from .eventlog import EventLog
from .monitor_history import MonitorHistory
from .monitoring import DetectorWatch
from .feed import Client, Feed, SharedDeflateFactory
from .guards import REPLAY_MAX, Refused
from .overrides import Overrides

UNKNOWN_ALARM = "unknown alarm, or not on your wards"  # one answer for both (AlertService.act)
log = logging.getLogger("wardwatch.alerts")
HEARTBEAT_S = 5.0
LOG_TIMEOUT_S = 10.0  # an action not in the shared log by then is refused (503), not silently late
SINCE_WAIT_S = 2.0  # how long a subscribe waits for this view to reach a seq another instance showed
REVOKE_CHECK_S = 1.0  # a revoked or expired token's sockets close within this plus one query
MAX_ESCALATION = 2
FOLDED_MAX = 50_000  # stored records remembered by their bytes' digest: minutes of alarms at any plausible rate


VITALS_SLICE = 500  # snapshots published between two turns of the loop


def _digest(value: bytes) -> bytes:
    # 16 bytes a record however long it is (a collision is a 2**-128 chance), so the memory is bounded.
    return hashlib.blake2b(value, digest_size=16).digest()


def device_alert_id(da: DeviceAlarm) -> str:
    """The WardWatch alarm of a monitor's report: the monitor's alarm id *and* the patient. A monitor
    names its alarm, not whose it is, and is moved from bed to bed (or a gateway that is not ours
    reuses ids): the same id reported for another patient is another patient's alarm, shown on their
    ward, never folded into the first patient's."""
    return f"{da.id}-" + hashlib.blake2b(da.patient.encode(), digest_size=4).hexdigest()


class AlertService:
    def __init__(self, settings: Settings, bus: Bus | None = None, store=None) -> None:
        self.settings = settings
        self.bus = bus or open_bus(settings)
        self.store = store or open_store(settings)
        self.tokens = TokenStore(settings.tokens_path, cache_size=settings.token_cache_size)
        self.log = EventLog()  # this instance's view of the shared alert log, rebuilt from it at start
        self.log_ready = asyncio.Event()
        self._log_next = 0  # offset of the next alert-log record to fold
        self._waiting: dict[str, asyncio.Future] = {}  # event id -> what record_action waits for
        self._mine: set[str] = set()  # event ids written here: to the outbox once folded
        # Every instance copies every alarm into the log (alerts/alertlog.py), so most records arrive
        # again byte for byte: a copy of a stored record is dropped unparsed (its id is stored already).
        self._folded: OrderedDict[bytes, None] = OrderedDict()
        self.ownership = Ownership(self.bus.topics.alerts, changed=self._owner_changed)
        self.feed = Feed(timed=lambda seconds: self.m_fanout.observe(seconds))
        self.registry = RegistryView()
        self.producer = self.bus.producer()
        # Actions and audit rows wait on nothing else (never behind the outbox's retries).
        self.log_producer = self.bus.producer(linger_ms=0)
        self.stop = asyncio.Event()
        self.registry_ready = asyncio.Event()
        self._last_poll = time.monotonic()
        self.supervisor = Supervisor(stop=self.stop)
        self.watch = DetectorWatch(settings.monitor_stall_s, settings.monitor_behind_s)
        # Actions wait here to be stored and published: escalation and acks never wait on InfluxDB.
        self.outbox: asyncio.Queue[tuple[str, AlertEvent]] = asyncio.Queue()
        self._outbox_stuck_since: float | None = None
        self.overrides = Overrides(settings.data_dir / "limits.sqlite3")
        # The monitors' alarms into InfluxDB, by the instance that runs the timers (alerts/monitor_history.py).
        self.monitor_history = MonitorHistory(self.bus, self.store, self.log, folded=lambda: self._log_next,
                                              owns=lambda: self.ownership.escalates)
        self.connections: set[Client] = set()  # authenticated sockets, subscribed or not
        self._closing: set[asyncio.Task] = set()
        self.metrics = CollectorRegistry()
        self.m_events = Counter("wardwatch_alerts_events_total", "alarm events stored", ["type"], registry=self.metrics)
        self.m_clients = Gauge("wardwatch_alerts_clients", "connected websocket clients", registry=self.metrics)
        self.m_dupes = Counter("wardwatch_alerts_duplicates_total", "events dropped as repeats", registry=self.metrics)
        self.m_gc = Histogram("wardwatch_alerts_gc_pause_seconds", "one garbage collection's pause, by generation",
                              ["generation"], registry=self.metrics, buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25))
        self.m_fanout = Histogram("wardwatch_alerts_fanout_seconds", "how long one frame's fan-out to its clients "
                                  "held the event loop", registry=self.metrics,
                                  buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1))
        self.gc_pauses = heap.GcPauses(lambda gen, s: self.m_gc.labels(str(gen)).observe(s))
        self.http = web.create_app(self)  # every route but /ws (alerts/web.py)

    def _owner_changed(self, escalates: bool) -> None:
        log.info("this instance %s the escalation timers", "runs" if escalates else "no longer runs")

    def ward_of(self, patient: str) -> str:
        return self.registry.ward_of(patient) or UNASSIGNED

    # ---------------------------------------------------------------- inputs

    async def follow_log(self) -> None:
        """Fold the shared alert log into this instance's view, in its one order (alerts/alertlog.py).
        A restarted follower resumes where the view stops; ``log_ready`` once it has caught up with
        the log as it was at start, so a client is never told a seq this instance has not reached."""
        topic = self.bus.topics.alert_log
        tp = TopicPartition(topic, 0)
        consumer = self.bus.consumer(topic, group_id=None, auto_offset_reset="earliest", fetch_max_wait_ms=FETCH_WAIT_MS)
        await consumer.start()
        try:
            consumer.seek(tp, self._log_next)
            end = (await consumer.end_offsets([tp]))[tp]
            while not self.stop.is_set():
                if self._log_next >= end:
                    self.log_ready.set()
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                self._last_poll = time.monotonic()
                for msgs in batches.values():
                    self.fold(msgs)
        finally:
            await consumer.stop()

    def fold(self, records) -> None:
        """One batch of alert-log records into the view and out to the clients. Audit rows first, so a
        row exists by the time anyone sees the event it explains."""
        events, seqs, seen, keys = [], [], [], []
        for m in records:
            key = _digest(m.value or b"")
            if key in self._folded:
                self.m_dupes.inc()
                continue
            kind, body = m.value[:1], m.value[1:]
            try:
                if kind == AUDIT:
                    row = orjson.loads(body)
                    self.log.audit(row["who"], row["role"], row["action"], row["target"], row["detail"], row["at"])
                    continue
                ev = (self.device_event(DeviceAlarm.model_validate_json(body), events) if kind == DEVICE
                      else AlertEvent.from_json(body) if kind == EVENT else None)
            except Exception:
                ev = None
            if ev is None and kind not in (DEVICE, AUDIT):
                log.warning("ignored a malformed alert-log record at offset %d", m.offset)
            if ev is not None:
                events.append(ev)
                seqs.append(m.offset + 1)
                seen.append(m.timestamp / 1000)
                keys.append(key)
        if records:
            self._log_next = records[-1].offset + 1
        if events:
            for key, doc in zip(keys, self.ingest_many(events, seqs, seen)):
                if doc is not None:
                    self._folded[key] = None
            while len(self._folded) > FOLDED_MAX:
                self._folded.popitem(last=False)

    def device_event(self, da: DeviceAlarm, pending: list[AlertEvent] = ()) -> AlertEvent | None:
        """A monitor's report of its own alarm as an event of a ``device`` alarm, kept apart from the
        detectors' by its kind and its id (``da-...``). None for a repeat: the same report again, or a
        "continue" that changes nothing the nurse sees (priority, state, inactivation, text)."""
        ended = da.state is DeviceAlarmState.ended
        alert_id = device_alert_id(da)
        if not ended:
            current = next((e.alert for e in reversed(pending) if e.alert.id == alert_id), None)
            if current is None:
                found = self.log.alarm(alert_id)
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
        alert = Alert(id=alert_id, patient=da.patient, kind=AlertKind.device, priority=da.priority,
                      condition=f"device:{da.event}"[:80], message=alarm_texts.device_alarm(what)[:300],
                      values={da.source_metric or da.source or "value": da.source_value} if da.source_value is not None else {},
                      onset=da.ts, raised_at=da.ts, updated_at=da.ts, latched=da.priority is Priority.high,
                      monitor=da)
        return AlertEvent(event_id=f"{alert_id}:{da.event_id}", type=type_, alert=alert, at=da.ts,
                          note="the monitor's own alarm")

    def ingest_many(self, events: list[AlertEvent], seqs: list[int] | None = None,
                    seen: list[float] | None = None) -> list[dict | None]:
        """Store (dedupe by event_id), then show to every client whose scope covers the patient.
        What this instance wrote itself goes to the outbox once it is in the view."""
        wards = [self.ward_of(e.alert.patient) for e in events]
        out: list[dict | None] = []
        for event, stored, ward in zip(events, self.log.append_many(list(zip(events, wards)), seqs, seen), wards):
            waiter = self._waiting.pop(event.event_id, None)
            if stored is None:
                self.m_dupes.inc()
                out.append(None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
                continue
            doc = stored.model_dump(mode="json")
            doc["ward"] = ward
            # Once escalated, an alarm is shown to everyone (open_alarms), so all its events go to everyone.
            self.feed.publish_event(doc, ward, everyone=stored.type is AlertEventType.escalated
                                    or stored.alert.escalation_level > 0)
            self.m_events.labels(stored.type.value).inc()
            if event.event_id in self._mine:
                self._mine.discard(event.event_id)
                self.outbox.put_nowait((alert_event_line(event, doc["alert"]["state"]), event))
            if waiter is not None and not waiter.done():
                waiter.set_result(doc)
            out.append(doc)
        return out

    async def follow_limits(self) -> None:
        """Every patient's limits as last published by any instance: a change made on another
        instance is the base this one merges the next change into."""
        consumer = self.bus.consumer(self.bus.topics.limits, group_id=None, auto_offset_reset="earliest")
        await consumer.start()
        try:
            while not self.stop.is_set():
                for msgs in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                    for m in msgs:
                        try:
                            doc = orjson.loads(m.value)
                            self.overrides.put(str(doc["patient"]), doc["limits"])
                        except Exception:
                            log.warning("ignored a malformed limits record at offset %d", m.offset)
        finally:
            await consumer.stop()

    async def consume_vitals(self) -> None:
        consumer = self.bus.consumer(self.bus.topics.vitals, group_id=None, auto_offset_reset="latest")
        await consumer.start()
        try:
            while not self.stop.is_set():
                # A tile shows a patient's newest snapshot only, so a fetch costs one validation per
                # patient, not per record: a burst (every patient due at once, or what piled up while
                # the loop was busy) would otherwise hold the loop, and the alarms behind it, for
                # a validation a record. Alarms get the loop between slices of it.
                newest: dict = {}
                for tp, msgs in (await consumer.getmany(timeout_ms=200, max_records=20000)).items():
                    for m in msgs:  # keyed by patient: a patient's snapshots are in order on one partition
                        newest[m.key if m.key is not None else (tp, m.offset)] = m.value
                for i, value in enumerate(newest.values(), 1):
                    try:
                        snap = VitalsSnapshot.model_validate_json(value)
                    except Exception:
                        continue
                    self.feed.publish_vitals(snap, self.ward_of(snap.patient))
                    if i % VITALS_SLICE == 0:
                        await asyncio.sleep(0)
        finally:
            await consumer.stop()

    async def escalate(self) -> None:
        """Unacknowledged alarms move up a priority and out to everyone, once per escalation period.
        Only the instance holding the alerts topic's partition 0 in the copier group runs the timers;
        the event id is made of the alarm, the level and the shared log's time, so even two owners
        for a moment (a rebalance) write the same event, which the log keeps once."""
        period = self.settings.escalate_after_s
        while not self.stop.is_set():
            if self.ownership.escalates and self.log_ready.is_set():
                for alarm, ward, seen in self.log.due_for_escalation(time.time(), period, MAX_ESCALATION):
                    level = alarm.escalation_level
                    at = int((seen + period * (level + 1)) * 1000)
                    ev = AlertEvent(event_id=AlertEvent.make_id(alarm.id, AlertEventType.escalated, at),
                                    type=AlertEventType.escalated, alert=alarm, at=at,
                                    note=f"not acknowledged within {int(period * (level + 1))}s")
                    try:
                        await self.record_action(ev)
                    except Refused:
                        break  # the log is unreachable: the next round tries again
            await asyncio.sleep(min(1.0, max(0.05, period / 10)))

    async def record_action(self, ev: AlertEvent, audit: tuple[Client, dict] | None = None) -> dict | None:
        """Into the shared alert log (after its audit row, when a person did it), then back once this
        instance has folded it: the event as clients see it, or None when it changed nothing. From
        the view it goes to the actions topic and InfluxDB through the outbox, so an InfluxDB outage
        delays neither an acknowledgement nor an escalation. Refused (503) when the log cannot take it."""
        records = []
        if audit is not None:
            client, detail = audit
            records.append(audit_record(client.principal.name, client.principal.role.value, ev.type.value,
                                        ev.alert.id, detail, time.time()))
        records.append(event_record(ev))
        waiter = self._waiting.setdefault(ev.event_id, asyncio.get_running_loop().create_future())
        self._mine.add(ev.event_id)
        try:
            await asyncio.wait_for(self.log_producer.send_many(self.bus.topics.alert_log, records), LOG_TIMEOUT_S)
            return await asyncio.wait_for(asyncio.shield(waiter), LOG_TIMEOUT_S)
        except Exception as exc:
            self._waiting.pop(ev.event_id, None)
            self._mine.discard(ev.event_id)
            log.error("an action could not be recorded in the alert log (%s)", type(exc).__name__)
            raise Refused(503, "not recorded: the alert log is unreachable; try again") from exc

    async def drain_outbox(self) -> None:
        """Actions to the actions topic (for readers outside the alert service; the copier brings them
        back to the log, where they are dropped as repeats) and to InfluxDB, retried until both have
        them, in order."""
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
                (log.info if status.ok else log.error)("monitoring %s: %s", status.state.upper(),
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
                                    # When the token stops opening this feed (None: never), so a station
                                    # screen says so a day ahead instead of falling back to its login.
                                    "expires_at": None if principal.expires is None else int(principal.expires * 1000),
                                    "monitoring": self.watch.status.message()}).decode())
        self.m_clients.inc()
        self.connections.add(client)
        try:
            async for raw in ws:
                if client not in self.connections:  # token revoked: the close is under way, and a client
                    break  # that ignores it must not go on acting until the close times out
                try:
                    try:
                        msg = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        raise Refused(400, "not JSON: a message is an object like {\"type\": \"ping\"}") from None
                    if not isinstance(msg, dict):
                        raise Refused(400, "a message is an object like {\"type\": \"ping\"}")
                    await self.on_message(client, msg)
                except AuthError as exc:
                    await _send_error(ws, exc.status, exc.message)
                except Refused as exc:
                    await _send_error(ws, exc.code, exc.message)
                except Exception as exc:  # one bad message never drops the connection
                    log.error("a socket message failed (%s)", type(exc).__name__)  # its text may name a patient
                    await _send_error(ws, 500, f"the message could not be handled ({type(exc).__name__})")
        except ConnectionClosed:
            pass
        finally:
            self.connections.discard(client)
            self.feed.remove(client)
            self.m_clients.dec()

    async def close_revoked(self) -> None:
        """Re-check connected clients' tokens against the token table; close revoked and expired ones
        (4401, as at auth), saying which, so that the page can tell its user to ask for a new token."""
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
                    task = asyncio.create_task(c.ws.close(4401, _gone(c.principal, self.tokens.clock())))
                    self._closing.add(task)
                    task.add_done_callback(self._closing.discard)

    async def on_message(self, client: Client, msg: dict) -> None:
        kind = msg.get("type")
        if kind == "auth":
            raise Refused(400, "already authenticated")
        if not isinstance(kind, str) or kind not in access.SOCKET_MESSAGES:
            raise Refused(400, f"unknown message type {str(kind)[:30]!r}")
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
        if not all(isinstance(msg.get(k) or [], list) for k in ("wards", "patients")):
            raise Refused(400, "wards and patients are lists of ids")
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
        since = msg.get("since")
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            since = None
        elif since > self.log.last_seq():
            # Seqs are the shared log's: a client coming from an instance a moment ahead waits (out of
            # the feed) for this view to get there. One it never reaches (a log rebuilt, another
            # deployment, a number beyond any) gets a snapshot: an empty replay would leave the client
            # ahead of every event to come.
            deadline = time.monotonic() + SINCE_WAIT_S
            while self.log.last_seq() < since and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self.log.last_seq() < since:
                since = None
            if client not in self.connections:  # its token was revoked meanwhile: it rejoins nothing
                return
        client.wards, client.patients, client.needs_resync = want, patients, False
        # No await between reading the log and joining the feed: nothing can fall in between.
        replay = self.log.since(since, want, patients, REPLAY_MAX, allowed or None) if since is not None else None
        if replay is not None:
            reply = {"type": "replay", "events": replay, "seq": self.log.last_seq()}
        else:
            reply = {"type": "snapshot", "seq": self.log.last_seq(),
                     "alarms": self.log.open_alarms(want, patients, allowed or None, self.registry.ward_of),
                     "vitals": self.feed.vitals_for(client, self.registry.ward_of),
                     "patients": [r.model_dump() | {"ward": r.ward} for r in self.registry.patients.values()
                                  if client.sees(r.ward, r.patient)]}
        self.feed.add(client)
        await client.ws.send(orjson.dumps(reply).decode())

    async def act(self, client: Client, kind: str, alert_id: str) -> None:
        access.require_role(client.principal, kind)  # its answer does not depend on the alarm
        found = self.log.alarm(alert_id)
        if found is not None:  # the patient's ward now, not when the alarm last changed: they may have moved
            found = (found[0], self.registry.ward_of(found[0].patient) or found[1], found[2])
        try:
            cross_ward = found is not None and access.authorize(client.principal, kind, found[1],
                                                                 escalated=found[0].escalation_level > 0)
        except Forbidden:
            # Another ward's alarm is answered as an unknown one: ids are made of patient, condition and
            # onset, so a 403 would confirm to a guesser that such an alarm exists.
            found = None
        if found is None:
            raise Refused(404, UNKNOWN_ALARM)
        alarm, ward, _ = found
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
        # The audit row says whether it crossed wards; it goes into the log just before the event.
        detail = {"patient": alarm.patient, "cross_ward": cross_ward}
        if device:
            detail |= {"device_alarm": True, "device": alarm.monitor.device if alarm.monitor else None,
                       "note": "recorded in WardWatch only; the monitor's alarm at the bedside is not silenced"}
        await self.record_action(ev, (client, detail))

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
        # Audited first: a change the audit trail cannot take is refused, never applied unrecorded.
        await self.audit(client, "set_limits", patient, {"limits": limits, "why": why})
        await self._publish_limits(client, patient, limit_checks.with_limits(self.overrides.get(patient), limits, at),
                                   why, at)
        await client.ws.send(orjson.dumps({"type": "limits_set", "patient": patient}).decode())

    async def disable_alarm(self, client: Client, msg: dict) -> None:
        patient = self._admitted(client, "disable_alarm", msg.get("patient"))
        at = now_ms()
        condition, until = limit_checks.check_disable(msg.get("condition"), msg.get("until"), at)
        why = limit_checks.check_why(msg.get("why"))
        await self.audit(client, "disable_alarm", patient, {"condition": condition, "until": until, "why": why})
        await self._publish_limits(client, patient,
                                   limit_checks.with_disable(self.overrides.get(patient), condition, until, at), why, at)
        await client.ws.send(orjson.dumps({"type": "alarm_disabled", "patient": patient, "condition": condition,
                                           "until": until}).decode())

    async def audit(self, client: Client, action: str, target: str, detail: dict) -> None:
        """A row of the one audit trail: into the shared alert log, which every instance folds."""
        record = audit_record(client.principal.name, client.principal.role.value, action, target, detail, time.time())
        try:
            await asyncio.wait_for(self.log_producer.send_many(self.bus.topics.alert_log, [record]), LOG_TIMEOUT_S)
        except Exception as exc:
            log.error("an audit row could not be recorded in the alert log (%s)", type(exc).__name__)
            raise Refused(503, "not recorded: the alert log is unreachable; try again") from exc

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
        ok = consuming and store_ok and tasks_ok and monitoring.ok and outbox_ok and self.monitor_history.ok
        return ok, {"ok": ok, "consuming": consuming, "store_ok": store_ok, "clients": len(self.feed.clients()),
                    "seq": self.log.last_seq(), "copying": len(self.ownership.owned),
                    "escalates": self.ownership.escalates, "tasks": tasks, "monitoring": monitoring.message(),
                    "outbox": self.outbox.qsize(), "outbox_ok": outbox_ok,
                    "monitor_history": self.monitor_history.status()}

    # ---------------------------------------------------------------- run

    async def run(self, host: str, port: int, ready: asyncio.Event | None = None) -> None:
        await self.bus.ensure_topics()
        await self.producer.start()
        await self.log_producer.start()
        for name, factory in (("registry", lambda: self.registry.follow(self.bus, self.stop, self.registry_ready)),
                              ("alert-log", self.follow_log),
                              ("copier", lambda: copy_inputs(self.bus, self.log_producer, self.stop)),
                              ("ownership", lambda: hold_ownership(self.bus, self.ownership, self.stop)),
                              ("tokens", lambda: follow_tokens(self.bus, self.tokens, self.stop)),
                              ("limits", self.follow_limits), ("vitals", self.consume_vitals),
                              ("escalation", self.escalate), ("fanout", lambda: self.feed.run(self.stop)),
                              ("heartbeat", self.heartbeat), ("outbox", self.drain_outbox),
                              ("monitor-history", lambda: self.monitor_history.run(self.stop)),
                              ("detector-watch", self.watch_detectors), ("revocations", self.close_revoked)):
            self.supervisor.spawn(name, factory)
        try:
            await asyncio.wait_for(self.registry_ready.wait(), 30)
        except asyncio.TimeoutError:
            log.warning("registry not read within 30s; patients show as unassigned until it is")
        try:  # clients are let in once the view has caught up with the shared log
            await asyncio.wait_for(self.log_ready.wait(), 120)
        except asyncio.TimeoutError:
            log.error("the alert log was not read within 120s; serving a view that is behind")
        async with serve(self.handle, host, port, process_request=self.process_request, ping_interval=10,
                         ping_timeout=20, max_size=1 << 20, max_queue=64, compression=None,
                         extensions=[SharedDeflateFactory()]) as server:  # one deflate per frame (alerts/feed.py)
            self.server = server
            log.info("alert service on http://%s:%d/", host, port)
            self.gc_pauses.install()
            if ready is not None:
                ready.set()
            await self.stop.wait()
        self.gc_pauses.remove()
        await self.supervisor.stop()
        await self.producer.stop()
        await self.log_producer.stop()


def _gone(principal: Principal, now: float) -> str:
    """Why an open socket's token no longer holds: the same words as a refused auth would give."""
    if principal.expires is not None and principal.expires <= now:
        return Expired(principal.expires).message
    return "token revoked"


async def _send_error(ws, code: int, message: str) -> None:
    await ws.send(orjson.dumps({"type": "error", "code": code, "message": message}).decode())


def _unchanged(kind: str, state: AlertState) -> bool:
    # A resolved alarm sounds no more: pausing its audio changes nothing either.
    return (kind == "ack" and state in (AlertState.acknowledged, AlertState.resolved)) or (
        kind in ("resolve", "pause") and state is AlertState.resolved)
