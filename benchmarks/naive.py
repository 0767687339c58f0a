"""The naive per-message implementation every benchmark compares WardWatch with: one module, used by
``bench detectors`` (beside the vectorised engine) and by the pipeline's per-message and Quix peers.

A rule is a limit on one metric's side held for a delay in reading time: crossing it and staying
out for ``delay_ms`` raises one alarm; going back inside the limit by its hysteresis clears it.
State is plain dicts per patient, the obvious implementation. The rules are data: every benchmark
runs the engine's own table, ``wardwatch.alarm_rules.DEFAULT_RULES``, through :func:`by_metric`.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import NamedTuple


class Rule(NamedTuple):
    condition: str
    metric: str
    side: str  # "low" or "high"
    limit: float
    delay_ms: int
    hysteresis: float = 0.0  # back inside by this margin clears an active alarm


class Change(NamedTuple):
    """An alarm this reading raised or cleared; ``onset`` is the reading time its condition began
    (the alarm's identity, as in :func:`wardwatch.models.alert_id`)."""

    type: str  # "raised" or "cleared"
    rule: Rule
    onset: int
    value: float
    ts: int


def by_metric(rules) -> dict[str, tuple[Rule, ...]]:
    """metric -> its rules; accepts ``Rule`` or the engine's ``LimitRule`` (metric an enum)."""
    out: dict[str, list[Rule]] = defaultdict(list)
    for r in rules:
        metric = getattr(r.metric, "value", r.metric)
        out[metric].append(Rule(r.condition, metric, r.side, float(r.limit), int(r.delay_ms), float(r.hysteresis)))
    return {m: tuple(rs) for m, rs in out.items()}


class PatientRules:
    """One patient's alarm state, the obvious way: when each condition went out of its limit, and the
    active alarms with their onsets. The behaviour is the engine's limit alarms
    (:class:`detectors.alarms.limits.LimitAlarms`): out of the limit for the delay raises once, any
    reading back inside restarts the delay, back inside by the hysteresis margin clears."""

    __slots__ = ("onset", "active")

    def __init__(self) -> None:
        self.onset: dict[str, int] = {}  # condition -> reading time it went out of its limit
        self.active: dict[str, int] = {}  # condition -> onset of its raised alarm

    def to_dict(self) -> dict:
        return {"onset": self.onset, "active": self.active}

    @classmethod
    def from_dict(cls, d: dict | None) -> "PatientRules":
        r = cls()
        if d:
            r.onset = dict(d.get("onset", {}))
            r.active = dict(d.get("active", {}))
        return r

    def update(self, rules: dict[str, tuple[Rule, ...]], metric: str, value: float, ts: int) -> list[Change]:
        """The alarms this reading raises or clears."""
        changes: list[Change] = []
        for rule in rules.get(metric, ()):
            if rule.side == "low":
                outside, back_in = value < rule.limit, value >= rule.limit + rule.hysteresis
            else:
                outside, back_in = value > rule.limit, value <= rule.limit - rule.hysteresis
            c = rule.condition
            if outside:
                onset = self.onset.setdefault(c, ts)
                if c not in self.active and ts - onset >= rule.delay_ms:
                    self.active[c] = onset
                    changes.append(Change("raised", rule, onset, value, ts))
            else:
                self.onset.pop(c, None)
                if back_in and c in self.active:
                    changes.append(Change("cleared", rule, self.active.pop(c), value, ts))
        return changes


class NaivePatient:
    """What ``bench detectors``' naive worker keeps per patient: recent values, latest clean values, rules."""

    __slots__ = ("window", "latest", "rules")

    def __init__(self) -> None:
        self.window: dict[str, list[float]] = defaultdict(list)
        self.latest: dict[str, float] = {}
        self.rules = PatientRules()


def naive_process(raw: bytes, state: dict, rules: dict[str, tuple[Rule, ...]], out: list) -> None:
    """The detector worker's job for one message, the obvious way: pydantic validation, a median
    artefact filter over the last 7 values, the limit rules, NEWS2 of the latest values, a line of
    line protocol. ``rules`` is :func:`by_metric` of a rule set."""
    import numpy as np

    from detectors.scores.news2 import news2
    from wardwatch.lineprotocol import line
    from wardwatch.metrics_catalog import METRIC_INDEX, METRICS
    from wardwatch.models import Reading

    r = Reading.model_validate_json(raw)
    p = state.setdefault(r.patient, NaivePatient())
    m = r.metric.value
    w = p.window[m]
    med = statistics.median(w) if w else r.value
    mad = statistics.median([abs(x - med) for x in w]) * 1.4826 if w else 0
    artefact = len(w) >= 5 and abs(r.value - med) > 3.5 * max(mad, 1.0)
    w.append(r.value)
    if len(w) > 7:
        w.pop(0)
    fields = {"value": r.value}
    if not artefact and r.value != 0:
        fields["clean"] = r.value
        p.latest[m] = r.value
        out.extend(p.rules.update(rules, m, r.value, r.ts))
        latest = np.full((1, len(METRICS)), np.nan)
        for k, v in p.latest.items():
            latest[0, METRIC_INDEX[k]] = v
        news2(latest)
    out.append(line("vitals", {"patient": r.patient, "metric": m}, fields, r.ts))
