"""The history's device alarms come from the alert service's view of the alert log: a patient's
monitor reports in the asked range, oldest first, without people's actions (InfluxDB has those) and
without other patients' alarms or the detectors' own."""

from __future__ import annotations

from alerts.eventlog import EventLog
from alerts.history import episodes, monitor_alarm_rows
from wardwatch.models import Alert, AlertEvent, AlertEventType, AlertKind, Priority

from .conftest import raised


def report(patient: str, type_: AlertEventType, at: int, by: str | None = None, aid: str = "da-1") -> AlertEvent:
    alert = Alert(id=aid, patient=patient, kind=AlertKind.device, priority=Priority.medium, condition="device:MDC_EVT_LO",
                  message="Monitor: Low SpO2", onset=10_000, raised_at=10_000, updated_at=at, latched=False)
    return AlertEvent(event_id=AlertEvent.make_id(aid + patient, type_, at), type=type_, alert=alert, at=at, by=by)


def test_a_patients_monitor_reports_in_range_without_actions_or_other_alarms():
    log = EventLog()
    for e, ward in [(report("p1", AlertEventType.raised, 10_000), "w7"),
                    (raised("p1", onset=11_000), "w7"),  # the detectors': InfluxDB has it
                    (report("p1", AlertEventType.acknowledged, 12_000, by="nurse-1"), "w7"),  # an action
                    (report("p2", AlertEventType.raised, 13_000), "w8"),  # another patient
                    (report("p1", AlertEventType.cleared, 20_000), "w7"),
                    (report("p1", AlertEventType.raised, 90_000, aid="da-2"), "w7")]:  # after the range
        log.append(e, ward)
    got = log.monitor_reports("p1", 0, 60_000)
    assert [(e["type"], e["at"]) for e in got] == [("raised", 10_000), ("cleared", 20_000)]
    rows = monitor_alarm_rows(got)
    assert [(r["kind"], r["alert_id"], r["event"], r["condition"]) for r in rows] == [
        ("device", "da-1", "raised", "device:MDC_EVT_LO"), ("device", "da-1", "cleared", "device:MDC_EVT_LO")]
    (ep,) = episodes(rows)
    assert (ep["start"], ep["end"], ep["title"], ep["kind"]) == (10_000, 20_000, "Monitor: Low SpO2", "device")


def test_the_range_is_half_open_as_for_every_history_series():
    log = EventLog()
    log.append(report("p1", AlertEventType.raised, 10_000), "w7")
    assert log.monitor_reports("p1", 10_000, 10_001) and not log.monitor_reports("p1", 9_000, 10_000)
