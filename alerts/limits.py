"""Alarm limit changes and alarm disables, checked before they reach the detectors.

A limit outside the settable range of its metric (``ALARM_LIMIT_RANGE``), or one that is not a
finite number, is refused: switching an alarm off takes the explicit, audited, time-bounded
``disable_alarm``. What is published on the limits topic is the patient's whole override (the
engine replaces a patient's override with each message), with disables as
``{"disabled": {condition: until_ms}}`` (see ``wardwatch.alarm_rules.apply_override``).
"""

from __future__ import annotations

import math

from wardwatch.alarm_rules import DEFAULT_RULES
from wardwatch.metrics_catalog import ALARM_LIMIT_RANGE, Metric

from .guards import Refused

MAX_DISABLE_MS = 24 * 3600_000
MAX_WHY = 500
SIDES: dict[str, set[str]] = {}
for _r in DEFAULT_RULES:
    SIDES.setdefault(_r.metric.value, set()).add(_r.side)
CONDITIONS = frozenset(r.condition for r in DEFAULT_RULES)


def check_why(why) -> str:
    if not isinstance(why, str) or not why.strip() or len(why) > MAX_WHY:
        raise Refused(400, f"a reason (why) is required, at most {MAX_WHY} characters")
    return why.strip()


def check_limits(limits) -> dict:
    """The limits as given, or Refused(400) naming the first problem."""
    if not isinstance(limits, dict) or not limits:
        raise Refused(400, 'limits must be an object like {"spo2": {"low": 88}}')
    for metric, sides in limits.items():
        if metric not in SIDES:
            raise Refused(400, f"no alarm limit for {str(metric)[:30]!r}: one of {', '.join(sorted(SIDES))}")
        if not isinstance(sides, dict) or not sides or not set(sides) <= SIDES[metric]:
            raise Refused(400, f"{metric} takes {' and '.join(sorted(SIDES[metric]))}")
        lo, hi = ALARM_LIMIT_RANGE[Metric(metric)]
        for side, value in sides.items():
            if value is None:
                continue  # keeps the default
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise Refused(400, f"{metric}.{side} must be a finite number")
            if not lo <= value <= hi:
                raise Refused(400, f"{metric}.{side} must be within [{lo:g}, {hi:g}]")
        if sides.get("low") is not None and sides.get("high") is not None and sides["low"] >= sides["high"]:
            raise Refused(400, f"{metric}.low must be below {metric}.high")
    return limits


def check_disable(condition, until, now_ms: int) -> tuple[str, int]:
    if condition not in CONDITIONS:
        raise Refused(400, f"condition must be one of {', '.join(sorted(CONDITIONS))}")
    if isinstance(until, bool) or not isinstance(until, int) or not now_ms < until <= now_ms + MAX_DISABLE_MS:
        raise Refused(400, "until (epoch ms) must be in the future and at most 24 h ahead")
    return condition, until


def with_limits(current: dict, limits: dict, now_ms: int) -> dict:
    """A new limits doc for the patient that keeps the disables still running."""
    return limits | _running(current, now_ms)


def with_disable(current: dict, condition: str, until: int, now_ms: int) -> dict:
    running = _running(current, now_ms).get("disabled", {})
    return {k: v for k, v in current.items() if k != "disabled"} | {"disabled": running | {condition: until}}


def _running(current: dict, now_ms: int) -> dict:
    running = {c: u for c, u in (current.get("disabled") or {}).items() if u > now_ms}
    return {"disabled": running} if running else {}
