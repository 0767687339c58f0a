"""Alarm events with deterministic ids: alert id = hash(patient, condition, onset); event id adds
the event type and time, so a replayed stretch of readings gives the very same events."""

from __future__ import annotations

from wardwatch.models import Alert, AlertEvent, AlertEventType, AlertKind, AlertState, Priority, alert_id


def make_event(patient: str, condition: str, kind: AlertKind, priority: Priority, onset: int, at: int,
               type_: AlertEventType, message: str, values: dict) -> AlertEvent:
    """One raised, updated or cleared alarm event (high priority latches).

    >>> e = make_event("p1", "spo2_low", AlertKind.physiological, Priority.high, 1000, 16000,
    ...                AlertEventType.raised, "SpO2 low", {"spo2": 85.0})
    >>> e.alert.id == alert_id("p1", "spo2_low", 1000), e.alert.state.value, e.alert.latched
    (True, 'active', True)
    """
    aid = alert_id(patient, condition, onset)
    alert = Alert(id=aid, patient=patient, kind=kind, priority=priority, condition=condition, message=message,
                  values=values, onset=onset, raised_at=at if type_ is AlertEventType.raised else onset,
                  updated_at=at, state=AlertState.cleared if type_ is AlertEventType.cleared else AlertState.active,
                  latched=priority is Priority.high)
    return AlertEvent(event_id=AlertEvent.make_id(aid, type_, at), type=type_, alert=alert, at=at)
