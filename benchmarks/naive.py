"""The naive per-message implementation every benchmark compares WardWatch with: one module, used by
``bench detectors`` (beside the vectorised engine) and by the pipeline's per-message and Quix peers.

A rule is a limit on one metric's side held for a delay in reading time: crossing it and staying
out for ``delay_ms`` raises one alarm; going back inside the limit clears it. State is plain dicts
and sets per patient, the obvious implementation. The rules are data: ``bench detectors`` runs the
engine's own ``wardwatch.alarm_rules.DEFAULT_RULES``; the pipeline runs ``PIPELINE_RULES``.
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


# The pipeline benchmark's rule set (a limit held for 15 s raises an alarm).
PIPELINE_RULES = (
    Rule("spo2_low", "spo2", "low", 90.0, 15_000),
    Rule("heart_rate_low", "heart_rate", "low", 40.0, 15_000),
    Rule("heart_rate_high", "heart_rate", "high", 130.0, 15_000),
    Rule("resp_rate_low", "resp_rate", "low", 8.0, 15_000),
    Rule("resp_rate_high", "resp_rate", "high", 24.0, 15_000),
)


def by_metric(rules) -> dict[str, tuple[Rule, ...]]:
    """metric -> its rules; accepts ``Rule`` or the engine's ``LimitRule`` (metric an enum)."""
    out: dict[str, list[Rule]] = defaultdict(list)
    for r in rules:
        metric = getattr(r.metric, "value", r.metric)
        out[metric].append(Rule(r.condition, metric, r.side, float(r.limit), int(r.delay_ms)))
    return {m: tuple(rs) for m, rs in out.items()}


PIPELINE = by_metric(PIPELINE_RULES)


class PatientRules:
    """One patient's alarm state: onset time per condition out of its limit, and the active conditions."""

    __slots__ = ("onset", "active")

    def __init__(self) -> None:
        self.onset: dict[str, int] = {}
        self.active: set[str] = set()

    def to_dict(self) -> dict:
        return {"onset": self.onset, "active": sorted(self.active)}

    @classmethod
    def from_dict(cls, d: dict | None) -> "PatientRules":
        r = cls()
        if d:
            r.onset = dict(d.get("onset", {}))
            r.active = set(d.get("active", []))
        return r

    def update(self, rules: dict[str, tuple[Rule, ...]], metric: str, value: float, ts: int) -> list[str]:
        """``"raised:<condition>"`` / ``"cleared:<condition>"`` for each alarm this reading changes
        (under ``PIPELINE_RULES``, one limit a side and every delay above zero, at most one)."""
        changes: list[str] = []
        for rule in rules.get(metric, ()):
            outside = value < rule.limit if rule.side == "low" else value > rule.limit
            if outside:
                onset = self.onset.setdefault(rule.condition, ts)
                if rule.condition not in self.active and ts - onset >= rule.delay_ms:
                    self.active.add(rule.condition)
                    changes.append(f"raised:{rule.condition}")
            else:
                self.onset.pop(rule.condition, None)
                if rule.condition in self.active:
                    self.active.discard(rule.condition)
                    changes.append(f"cleared:{rule.condition}")
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
