"""The alarm state machine as the view folds it (alerts/eventlog.py): a detector alarm a person
resolved stays resolved whatever the detector or anyone sends after (a new raise is a new alarm id);
the monitor's own alarms open again only on a report newer than the last one (fold_device)."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from alerts.eventlog import EventLog
from wardwatch.models import AlertEvent, AlertEventType, AlertState, Priority

from .conftest import raised

TYPES = list(AlertEventType)


def step(base: AlertEvent, type_: AlertEventType, at: int) -> AlertEvent:
    alert = base.alert
    if type_ is AlertEventType.escalated:  # as the timer writes it: the level it escalates from
        alert = alert.model_copy(update={"escalation_level": 0})
    return AlertEvent(event_id=AlertEvent.make_id(alert.id, type_, at), type=type_, alert=alert, at=at,
                      by=None if type_ in (AlertEventType.raised, AlertEventType.updated, AlertEventType.cleared) else "n1")


def states_after_each(log: EventLog, events: list[AlertEvent]) -> list[AlertState]:
    out = []
    for e in events:
        stored = log.append(e, "w7")
        out.append(stored.alert.state if stored is not None else out[-1] if out else None)
    return out


def test_a_clear_after_a_resolve_leaves_a_latched_alarm_resolved():
    base = raised("p1", priority=Priority.high)
    assert base.alert.latched
    log = EventLog()
    states = states_after_each(log, [base, step(base, AlertEventType.resolved, 20_000),
                                     step(base, AlertEventType.cleared, 21_000)])
    assert states == [AlertState.active, AlertState.resolved, AlertState.resolved]
    assert log.alarm(base.alert.id)[0].state is AlertState.resolved
    assert log.open_alarms(None, set()) == []


@settings(max_examples=150, deadline=None)
@given(st.booleans(), st.lists(st.tuples(st.sampled_from(TYPES), st.integers(20_000, 20_050)), max_size=30))
def test_a_resolved_detector_alarm_never_leaves_resolved(latched, steps):
    base = raised("p1", priority=Priority.high if latched else Priority.medium)
    log = EventLog()
    states = [s for s in states_after_each(log, [base] + [step(base, t, at) for t, at in steps]) if s is not None]
    if AlertState.resolved in states:
        first = states.index(AlertState.resolved)
        assert set(states[first:]) == {AlertState.resolved}, states
    # And the state machine's other rule: only a person resolves a latched alarm, by ack or resolve.
    people = {AlertEventType.acknowledged, AlertEventType.resolved}
    if latched and AlertState.resolved in states:
        assert any(t in people for t, _ in steps)


def test_a_pause_folded_after_a_resolve_is_dropped_like_a_repeat():
    # Two nurses, one resolving and one pausing the same alarm at once: the pause comes second in the log.
    base = raised("p1", priority=Priority.high)
    log = EventLog()
    log.append(base, "w7")
    assert log.append(step(base, AlertEventType.resolved, 20_000), "w7") is not None
    assert log.append(step(base, AlertEventType.audio_paused, 20_001), "w7") is None
    assert log.alarm(base.alert.id)[0].state is AlertState.resolved
