"""Two instances folding the same alert log, in the same order, end with the same view: repeats
and actions that change nothing are dropped the same way everywhere (hypothesis: any sequence)."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from alerts.eventlog import EventLog
from wardwatch.models import AlertEvent, AlertEventType

from .conftest import raised

ALARMS = [raised(f"p{i}", onset=i) for i in range(3)]
ACTIONS = (AlertEventType.acknowledged, AlertEventType.resolved, AlertEventType.escalated, AlertEventType.cleared)


def event(alarm: int, kind: int, at: int) -> AlertEvent:
    base = ALARMS[alarm]
    if kind == 0:
        return base
    type_ = ACTIONS[kind - 1]
    return AlertEvent(event_id=AlertEvent.make_id(base.alert.id, type_, at), type=type_, alert=base.alert, at=at,
                      by="nurse-1")


records = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 4), st.integers(20_000, 20_005)), max_size=40)


@settings(max_examples=60, deadline=None)
@given(records)
def test_two_views_of_one_log_are_equal_and_show_each_acknowledgement_once(recs):
    log = [event(*r) for r in recs]
    views = [EventLog(), EventLog()]
    for view, batch in zip(views, (1, 7)):  # the same log, read in batches of different sizes
        for i in range(0, len(log), batch):
            chunk = log[i:i + batch]
            view.append_many([(e, "w7") for e in chunk], list(range(i + 1, i + 1 + len(chunk))), [1.0] * len(chunk))
    a, b = (v.since(0, None, set(), limit=1000) for v in views)
    assert a == b
    assert len({e["event_id"] for e in a}) == len(a)
    for alarm in ALARMS:
        shown = [e["type"] for e in a if e["alert"]["id"] == alarm.alert.id]
        assert shown.count("raised") <= 1
        for before, after in zip(shown, shown[1:]):  # nothing shown that changed nothing
            assert not (after == "acknowledged" and before in ("acknowledged", "resolved"))
            assert not (after == "resolved" and before == "resolved")
