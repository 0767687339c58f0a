"""An alert-service instance's view of the shared alert log: every alarm event and every human
action, in sequence, and the audit trail.

The durable, shared log is the alert-log Kafka topic (alerts/alertlog.py); every instance folds
it, in its one order, into this SQLite view, so the seq of an event is the same everywhere: its
offset in that topic plus one. The view is both the resume log (a client that saw seq N gets
exactly the events after N, from whichever instance) and the audit log (who did what, when).
Events are unique by ``event_id``, so a detector replay after a crash, or an event copied twice,
is stored once, and the same one on every instance (the first in the shared order wins).
By default the view lives in memory and is rebuilt from the topic at start (``":memory:"``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable

import orjson

from wardwatch.models import Alert, AlertEvent, AlertEventType, AlertKind, AlertState, Priority


# A monitor's own report of its alarm (folded from the device-alarms topic), not a person's action
# on it: what the history shows as the monitor's alarms and alerts/monitor_history.py stores.
MONITOR_REPORT = "by IS NULL AND json_extract(body, '$.alert.kind')='device'"


class EventLog:
    def __init__(self, path: Path | str = ":memory:") -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript("""
            CREATE TABLE IF NOT EXISTS events (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT UNIQUE NOT NULL, alert_id TEXT NOT NULL,
                patient TEXT NOT NULL, ward TEXT NOT NULL, type TEXT NOT NULL, at INTEGER NOT NULL,
                by TEXT, logged REAL NOT NULL, body TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS events_ward ON events (ward, seq);
            CREATE INDEX IF NOT EXISTS events_patient ON events (patient, at);
            CREATE TABLE IF NOT EXISTS alarms (
                alert_id TEXT PRIMARY KEY, patient TEXT NOT NULL, ward TEXT NOT NULL, seen REAL NOT NULL,
                open INTEGER NOT NULL, body TEXT NOT NULL, state TEXT NOT NULL, level INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS alarms_due ON alarms (state, seen);
            CREATE TABLE IF NOT EXISTS audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, who TEXT NOT NULL, role TEXT NOT NULL,
                action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS audit_target ON audit (target);
            CREATE INDEX IF NOT EXISTS audit_patient ON audit (json_extract(detail, '$.patient'));
        """)
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- events and alarm state

    def append(self, event: AlertEvent, ward: str) -> AlertEvent | None:
        """Store an event and fold it into the alarm's state; None when the event_id is known already.

        Returns the event as clients see it: with ``seq`` and the alarm's state after the event.
        """
        return self.append_many([(event, ward)])[0]

    def append_many(self, items: list[tuple[AlertEvent, str]], seqs: list[int] | None = None,
                    seen: list[float] | None = None) -> list[AlertEvent | None]:
        """Many events in one transaction (one disk sync per Kafka batch, not per event).

        ``seqs`` are the events' places in the shared log (offset + 1) and ``seen`` the times the log
        took them (seconds): the same on every instance, so escalation times agree everywhere.
        Without them (a single log of its own) the next seq and the clock are used."""
        out: list[AlertEvent | None] = []
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for i, (event, ward) in enumerate(items):
                    if self._db.execute("SELECT 1 FROM events WHERE event_id=?", (event.event_id,)).fetchone():
                        out.append(None)
                        continue
                    cur = self._db.execute("SELECT body, seen FROM alarms WHERE alert_id=?", (event.alert.id,)).fetchone()
                    current = Alert.model_validate_json(cur[0]) if cur else None
                    if redundant(current, event):
                        out.append(None)
                        continue
                    alarm = fold(current, event)
                    seen_at = cur[1] if cur else (seen[i] if seen is not None else time.time())
                    seq = seqs[i] if seqs is not None else \
                        self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM events").fetchone()[0]
                    stored = event.model_copy(update={"alert": alarm, "seq": seq})
                    self._db.execute(
                        "INSERT INTO events (seq, event_id, alert_id, patient, ward, type, at, by, logged, body)"
                        " VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (seq, event.event_id, event.alert.id, event.alert.patient, ward, event.type.value, event.at,
                         event.by, time.time(), stored.model_dump_json()))
                    self._db.execute("INSERT OR REPLACE INTO alarms VALUES (?,?,?,?,?,?,?,?)",
                                     (alarm.id, alarm.patient, ward, seen_at, int(alarm.state is not AlertState.resolved),
                                      alarm.model_dump_json(), alarm.state.value, alarm.escalation_level))
                    out.append(stored)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return out

    def last_seq(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT MAX(seq) FROM events").fetchone()
        return row[0] or 0

    def since(self, seq: int, wards: set[str] | None, patients: set[str], limit: int = 5000,
              allowed: set[str] | None = None) -> list[dict] | None:
        """Events after ``seq`` for a scope (wards None = all; ``allowed``: the token's wards, None = all);
        None when more than ``limit`` (resync)."""
        with self._lock:
            rows = self._db.execute("SELECT body, ward, patient, type, json_extract(body, '$.alert.escalation_level')"
                                    " FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit + 1)).fetchall()
        if len(rows) > limit:
            return None
        return [orjson.loads(b) for b, w, p, t, level in rows if in_scope(w, p, wards, patients, t, bool(level), allowed)]

    def monitor_reports(self, patient: str, start_ms: int, stop_ms: int) -> list[dict]:
        """A patient's device-alarm events as its monitors reported them, ``start_ms <= at < stop_ms``,
        oldest first: the history's device alarms. People's actions on them are left out (the
        outbox writes those to InfluxDB with every other action), and so is what the alert log no
        longer holds (its retention)."""
        with self._lock:
            rows = self._db.execute(f"SELECT body FROM events WHERE patient=? AND at>=? AND at<? AND {MONITOR_REPORT}"
                                    " ORDER BY at, seq", (patient, start_ms, stop_ms)).fetchall()
        return [orjson.loads(b) for (b,) in rows]

    def monitor_events_between(self, after_seq: int, upto_seq: int, limit: int) -> list[tuple[int, str]]:
        """``(seq, body)`` of the device-alarm events as the monitors reported them (no actions),
        ``after_seq < seq <= upto_seq``, in seq order: what alerts/monitor_history.py stores."""
        with self._lock:
            return self._db.execute(f"SELECT seq, body FROM events WHERE seq > ? AND seq <= ? AND {MONITOR_REPORT}"
                                    " ORDER BY seq LIMIT ?", (after_seq, upto_seq, limit)).fetchall()

    def open_alarms(self, wards: set[str] | None, patients: set[str], allowed: set[str] | None = None,
                    ward_of: Callable[[str], str | None] = lambda patient: None) -> list[dict]:
        """Open alarms in a scope, each on its patient's ward now (``ward_of``; None: unknown, the ward
        of the alarm's last event): a patient moved since keeps their open alarms on the new ward."""
        with self._lock:
            rows = self._db.execute("SELECT body, ward, patient FROM alarms WHERE open=1").fetchall()
        out = []
        for body, stored, patient in rows:
            ward = ward_of(patient) or stored
            alarm = orjson.loads(body)
            if in_scope(ward, patient, wards, patients, "", allowed=allowed) or alarm.get("escalation_level", 0) > 0:
                out.append(alarm | {"ward": ward})
        return out

    def alarm(self, alert_id: str) -> tuple[Alert, str, float] | None:
        with self._lock:
            row = self._db.execute("SELECT body, ward, seen FROM alarms WHERE alert_id=?", (alert_id,)).fetchone()
        return (Alert.model_validate_json(row[0]), row[1], row[2]) if row else None

    def due_for_escalation(self, now: float, period_s: float, max_level: int) -> list[tuple[Alert, str, float]]:
        """Active (unacknowledged) alarms whose next escalation time has come: an indexed query, so
        the escalation timer costs nothing however many alarms are open."""
        with self._lock:
            rows = self._db.execute(
                "SELECT body, ward, seen FROM alarms WHERE state='active' AND level < ? AND seen + ? * (level + 1) <= ?"
                " AND json_extract(body, '$.kind') IS NOT 'device'",  # the monitor escalates its own
                (max_level, period_s, now)).fetchall()
        return [(Alert.model_validate_json(b), w, seen) for b, w, seen in rows]

    # ---------------------------------------------------------------- audit

    def audit(self, who: str, role: str, action: str, target: str, detail: dict, at: float | None = None) -> None:
        with self._lock:
            self._db.execute("INSERT INTO audit (at, who, role, action, target, detail) VALUES (?,?,?,?,?,?)",
                             (time.time() if at is None else at, who, role, action, target, orjson.dumps(detail).decode()))

    def audit_rows(self, limit: int = 1000, patient: str | None = None) -> list[dict]:
        """The latest rows, or the latest about one patient (theirs, or an action on their alarm)."""
        where, args = ("WHERE target = ? OR json_extract(detail, '$.patient') = ?", (patient, patient)) \
            if patient is not None else ("", ())
        with self._lock:
            rows = self._db.execute(f"SELECT at, who, role, action, target, detail FROM audit {where}"
                                    " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [dict(zip(("at", "who", "role", "action", "target", "detail"), r)) for r in rows]


def in_scope(ward: str, patient: str, wards: set[str] | None, patients: set[str], type_: str,
             escalated: bool = False, allowed: set[str] | None = None) -> bool:
    # Escalations go to a wider audience: everyone connected; and so does what follows on an
    # escalated alarm (its acknowledgement, its resolve), or it would stay shown there for ever.
    # A patient asked for by id counts only while on the token's wards (``allowed``, None = all).
    return (wards is None or ward in wards or (patient in patients and (allowed is None or ward in allowed))
            or type_ == AlertEventType.escalated.value or escalated)


def redundant(current: Alert | None, event: AlertEvent) -> bool:
    """An action that changes nothing, dropped like a repeat: two nurses (or instances) acting on
    one alarm at once, or an escalation written twice during a handover, is shown once."""
    if current is None:
        return False
    t = event.type
    if t is AlertEventType.acknowledged:
        return current.state in (AlertState.acknowledged, AlertState.resolved)
    if t in (AlertEventType.resolved, AlertEventType.audio_paused):  # a resolved alarm sounds no more
        return current.state is AlertState.resolved
    if t is AlertEventType.escalated:
        return current.state is not AlertState.active or current.escalation_level != event.alert.escalation_level
    return False


def fold(current: Alert | None, event: AlertEvent) -> Alert:
    """The alarm's state after one more event (IEC 60601-1-8 style: latching, acknowledge, pause)."""
    t = event.type
    if event.alert.kind is AlertKind.device and t in (AlertEventType.raised, AlertEventType.updated,
                                                      AlertEventType.cleared):
        return fold_device(current, event)
    a = (current or event.alert).model_copy()
    if t is AlertEventType.raised:
        # Alarms (alerts topic) and what was done about them (actions topic) are read together, in no
        # order across the two: a raise folded after its alarm's acknowledgement or resolve leaves it.
        a = current or event.alert.model_copy(update={"state": AlertState.active})
    elif t is AlertEventType.updated:
        a = a.model_copy(update={"priority": event.alert.priority, "message": event.alert.message,
                                 "values": event.alert.values, "updated_at": event.at})
    elif t is AlertEventType.cleared:
        # A latched (high-priority) alarm stays shown until a person acknowledges it. One a person
        # has resolved stays resolved: the detector's clear comes after the nurse closed it.
        if a.state is AlertState.resolved:
            a = a.model_copy(update={"updated_at": event.at})
        elif a.state is AlertState.acknowledged or not a.latched:
            a = a.model_copy(update={"state": AlertState.resolved, "updated_at": event.at})
        else:
            a = a.model_copy(update={"state": AlertState.cleared, "updated_at": event.at})
    elif t is AlertEventType.acknowledged:
        state = AlertState.resolved if a.state is AlertState.cleared else AlertState.acknowledged
        a = a.model_copy(update={"state": state, "acknowledged_by": event.by, "updated_at": event.at})
    elif t is AlertEventType.audio_paused:
        a = a.model_copy(update={"audio_paused_until": event.alert.audio_paused_until, "updated_at": event.at})
    elif t is AlertEventType.resolved:
        a = a.model_copy(update={"state": AlertState.resolved, "updated_at": event.at})
    elif t is AlertEventType.escalated:
        a = a.model_copy(update={"priority": Priority(a.priority).raised(), "escalation_level": a.escalation_level + 1,
                                 "updated_at": event.at})
    return a


def fold_device(current: Alert | None, event: AlertEvent) -> Alert:
    """A monitor's report (raised, updated or cleared) folded into its device alarm: the monitor's
    latest report, priority and text replace the old; what people did in WardWatch stays. A newer
    report of an alarm that is over in WardWatch starts it again (the monitor alarms again); an end leaves
    a latched (high-priority) one shown, as "ended", until someone acknowledges it here."""
    new = event.alert
    report = {"monitor": new.monitor, "priority": new.priority, "message": new.message, "values": new.values,
              "updated_at": event.at}
    if event.type is AlertEventType.cleared:
        if current is not None and current.state is AlertState.resolved:
            return current.model_copy(update={"monitor": new.monitor, "updated_at": event.at})
        base = current or new
        done = base.state is AlertState.acknowledged or not base.latched
        return base.model_copy(update=report | {"state": AlertState.resolved if done else AlertState.cleared})
    if current is None:
        return new.model_copy(update={"state": AlertState.active})
    if current.state is AlertState.resolved:
        # Nurses' actions (actions topic) and the monitor's reports are read in no order across the
        # two: only a report newer, by the monitor's clock, than the last one seen opens it again.
        if current.monitor is not None and new.monitor is not None and new.monitor.ts <= current.monitor.ts:
            return current
        return new.model_copy(update={"state": AlertState.active})
    state = AlertState.acknowledged if current.state is AlertState.acknowledged else AlertState.active
    return current.model_copy(update=report | {"state": state})
