"""Every instance copies every alarm into the alert log (alerts/alertlog.py), so the log holds each
record several times, in any interleaving: the view folds the first copy and drops the others
(unparsed when byte-identical), ending exactly where a log without copies ends (hypothesis)."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord
from hypothesis import given, settings as hsettings, strategies as st

from alerts.alertlog import event_record
from alerts.service import AlertService
from wardwatch.models import AlertEvent, AlertEventType
from wardwatch.settings import Settings

from .conftest import raised

ALARMS = [raised(f"p{i}", onset=i) for i in range(3)]
TYPES = (None, AlertEventType.acknowledged, AlertEventType.cleared, AlertEventType.resolved, AlertEventType.updated)


def event(alarm: int, kind: int, at: int) -> AlertEvent:
    base = ALARMS[alarm]
    if TYPES[kind] is None:
        return base
    return AlertEvent(event_id=AlertEvent.make_id(base.alert.id, TYPES[kind], at), type=TYPES[kind], alert=base.alert,
                      at=at, by="n1")


def as_log(values: list[bytes]) -> list[ConsumerRecord]:
    return [ConsumerRecord("alert-log", 0, i, 1_000, 0, b"k", v, None, 1, len(v), ()) for i, v in enumerate(values)]


def view(tmp, values: list[bytes]) -> tuple[list, list]:
    svc = AlertService(Settings(backend="embedded", data_dir=tmp))
    for i in range(0, len(values), 4):  # in batches, as the follower reads them
        svc.fold(as_log(values)[i:i + 4])
    events = [(e["event_id"], e["alert"]["state"]) for e in svc.log.since(0, None, set(), limit=10_000)]
    alarms = sorted((a["id"], a["state"]) for a in svc.log.open_alarms(None, set()))
    return events, alarms


@hsettings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 4), st.integers(20_000, 20_003)), min_size=1, max_size=20),
       st.lists(st.integers(0, 1000), max_size=40), st.data())
def test_a_log_with_copies_folds_to_the_view_of_the_log_without(tmp_path_factory, recs, lags, data):
    once = [event_record(event(*r))[1] for r in recs]
    copied = list(once)
    for i, lag in enumerate(lags):  # a second instance's copy of record i, somewhere later
        if i < len(once):
            at = data.draw(st.integers(copied.index(once[i]) + 1, len(copied)))
            copied.insert(at, once[i])
    assert view(tmp_path_factory.mktemp("a"), copied) == view(tmp_path_factory.mktemp("b"), once)
