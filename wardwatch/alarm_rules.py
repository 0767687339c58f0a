"""Default alarm conditions (limit rules) and per-patient limit overrides, the table both the detectors
(:mod:`detectors.alarms.limits`) and the alert service (limit changes) read.

Defaults follow common adult ward practice and IEC 60601-1-8 alarm behaviour: a condition must
persist for its delay (in reading time) before it alarms, and clears only when the value is back
inside the limit by the hysteresis margin. Clinicians override limits per patient (a COPD patient's
SpO2 target, say); each change carries who and why.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

from .metrics_catalog import METRIC_INDEX, Metric
from .models import Priority


@dataclass(frozen=True)
class LimitRule:
    condition: str  # stable name, part of the alert id
    metric: Metric
    side: str  # "low" or "high"
    limit: float
    priority: Priority
    delay_ms: int
    hysteresis: float

    @property
    def column(self) -> int:
        return METRIC_INDEX[self.metric]


# Ordered: the index of a rule is its column in the limit alarms' condition arrays.
# Priorities are one alarm budget with the learned risk (docs/early-warning.md, "Alarm policy"):
# the limits a nurse must answer at once stay medium or high (SpO2 < 90 and < 85 %, HR < 40,
# RR < 8, SBP < 90); tachycardia, tachypnoea, hypertension and hypothermia are shown at low priority
# (an information signal, IEC 60601-1-8), since on tune patients they cost more false alerts than
# the learned risk, which sees the same vitals, earns.
DEFAULT_RULES: tuple[LimitRule, ...] = (
    LimitRule("spo2_low", Metric.spo2, "low", 90, Priority.high, 15_000, 2),
    LimitRule("spo2_critical", Metric.spo2, "low", 85, Priority.high, 5_000, 2),
    LimitRule("hr_high", Metric.heart_rate, "high", 130, Priority.low, 20_000, 5),
    LimitRule("hr_low", Metric.heart_rate, "low", 40, Priority.high, 10_000, 3),
    LimitRule("rr_high", Metric.resp_rate, "high", 24, Priority.low, 30_000, 2),
    LimitRule("rr_low", Metric.resp_rate, "low", 8, Priority.high, 15_000, 1),
    LimitRule("sbp_low", Metric.sbp, "low", 90, Priority.medium, 10_000, 5),
    LimitRule("sbp_high", Metric.sbp, "high", 220, Priority.low, 10_000, 10),
    LimitRule("temp_high", Metric.temperature, "high", 39.0, Priority.low, 0, 0.3),
    LimitRule("temp_low", Metric.temperature, "low", 35.0, Priority.low, 0, 0.3),
)


def disabled_until(limits: dict, now_ms: int | None = None) -> dict[str, int]:
    """Conditions a clinician switched off (``{"disabled": {"spo2_low": until_ms}}``) that are off now.

    The engine re-applies a patient's limits at ``min(disabled_until(...).values())`` so that an
    alarm comes back on by itself when its disable ends.
    """
    now = int(time.time() * 1000) if now_ms is None else now_ms
    off = limits.get("disabled") or {}
    return {c: int(u) for c, u in off.items() if isinstance(u, (int, float)) and not isinstance(u, bool) and u > now}


def apply_override(rules: tuple[LimitRule, ...], limits: dict, now_ms: int | None = None) -> tuple[LimitRule, ...]:
    """Per-patient limits as published on the limits topic: ``{"spo2": {"low": 88, "high": null}}``.

    A low/high given for a metric replaces the limit of that side's rules (the critical SpO2 rule
    keeps its distance below the main one); ``null`` keeps the default. A condition disabled until
    a time after ``now_ms`` gets a limit no value can cross, which also clears it if active.
    """
    off = disabled_until(limits, now_ms)
    out = []
    for r in rules:
        side = (limits.get(r.metric.value) or {}).get(r.side)
        if r.condition in off:
            out.append(replace(r, limit=-math.inf if r.side == "low" else math.inf))
        elif isinstance(side, (int, float)) and not isinstance(side, bool):
            if r.condition == "spo2_critical":
                out.append(replace(r, limit=min(r.limit, float(side) - 3)))
            else:
                out.append(replace(r, limit=float(side)))
        else:
            out.append(r)
    return tuple(out)
