"""The peers' limit alarms as the alert service reads them: the engine's rule table
(``wardwatch.alarm_rules.DEFAULT_RULES``) run per message by :class:`benchmarks.naive.PatientRules`,
each change made into the same ``AlertEvent`` the detectors publish (same ids, priority, message,
values), so the same alert service and websocket probe time every build's alarms."""

from __future__ import annotations

from wardwatch import alarm_texts
from wardwatch.alarm_rules import DEFAULT_RULES
from wardwatch.models import AlertEvent, AlertEventType, AlertKind

from detectors.alarms.events import make_event

from ..naive import Change, by_metric

RULES = by_metric(DEFAULT_RULES)
_LIMIT_RULES = {r.condition: r for r in DEFAULT_RULES}


def alert_event(patient: str, change: Change) -> AlertEvent:
    """The detectors' event for a raised or cleared limit alarm (see ``detectors.alarms.limits``)."""
    rule = _LIMIT_RULES[change.rule.condition]
    metric = rule.metric.value
    if change.type == "raised":
        return make_event(patient, rule.condition, AlertKind.physiological, rule.priority, change.onset, change.ts,
                          AlertEventType.raised, alarm_texts.limit_raised(rule, change.value, change.rule.limit),
                          {metric: change.value, "limit": change.rule.limit})
    return make_event(patient, rule.condition, AlertKind.physiological, rule.priority, change.onset, change.ts,
                      AlertEventType.cleared, alarm_texts.limit_cleared(rule, change.value),
                      {metric: change.value})
