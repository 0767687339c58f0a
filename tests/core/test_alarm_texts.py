"""Every alarm the detectors can raise has a clinical text in the one catalogue (wardwatch.alarm_texts).

The conditions are found where they are made, not typed again here: the limit rule table, the
sensor-off probe table, every string literal handed to ``make_event``/``technical_alarm`` in the
detectors' code, and the conditions the early-warning stages name (news2_alarm, the risk stage).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from detectors.alarms.early_warning import EarlyWarningAlarm
from detectors.alarms.limits import LimitAlarms
from detectors.alarms.sensor_off import SENSOR_OFF_ALARMS
from detectors.filters import SignalFilter
from detectors.protocol import Round
from detectors.scores.news2 import News2Stage, news2_alarm
from wardwatch import alarm_texts
from wardwatch.alarm_rules import DEFAULT_RULES
from wardwatch.metrics_catalog import METRIC_INDEX, METRICS, Metric

DETECTORS = Path(__file__).resolve().parents[2] / "detectors"
CODE_WORDS = re.compile(r"\b[a-z]+_[a-z_0-9]+\b")  # resp_rate, spo2_low, sensor_off_spo2: codes, not words


def conditions_in_code() -> set[str]:
    """String literals passed as the condition of make_event(patient, condition, ...) or
    technical_alarm(patient, condition, ...) anywhere in detectors/."""
    found = set()
    for path in DETECTORS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in (
                    "make_event", "technical_alarm") and len(node.args) >= 2:
                arg = node.args[1]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.add(arg.value)
                elif isinstance(arg, ast.JoinedStr):  # f"sensor_off_{name}": expanded from its table below
                    found.add(ast.unparse(arg))
    return found


def raised_conditions() -> set[str]:
    conds = {c for c in conditions_in_code() if not c.startswith("f")}
    assert any(c.startswith("f'sensor_off_") for c in conditions_in_code()), "sensor-off alarms moved: update this test"
    conds |= {f"sensor_off_{m.value}" for m, on in zip(METRICS, SENSOR_OFF_ALARMS) if on}
    conds |= {r.condition for r in DEFAULT_RULES}
    return conds


def early_warning_sources() -> set[str]:
    totals = np.arange(0, 21, dtype=float)
    parts = np.zeros((len(totals), 5))
    parts[:, 0] = 3  # one parameter scoring 3 makes the "single 3" band reachable
    _, cond = news2_alarm(totals, parts)
    risk_src = (DETECTORS / "scores" / "risk.py").read_text()
    return {c for c in cond if c} | set(re.findall(r'"(risk_[a-z]+)"', risk_src))


def test_the_detectors_raise_the_conditions_this_test_finds():
    conds = raised_conditions()
    assert {"spo2_low", "asystole", "early_warning", "device_silent", "processing_error", "sensor_off_spo2"} <= conds


@pytest.mark.parametrize("condition", sorted(raised_conditions()))
def test_every_raised_condition_has_a_clinical_title(condition):
    e = alarm_texts.entry(condition)
    assert e is not None, f"{condition} has no entry in wardwatch.alarm_texts"
    assert not CODE_WORDS.search(alarm_texts.title(condition)), alarm_texts.title(condition)


def test_every_early_warning_source_has_a_band_and_text():
    sources = early_warning_sources()
    assert sources == alarm_texts.EARLY_WARNING_SOURCES
    for s in sources:
        text = alarm_texts.early_warning(s, ["respiration +3", "pulse +2", "risk 0.15", "HR rising 22 over 6 h"])
        assert text.startswith("Early warning: ") and not CODE_WORDS.search(text), text


def test_the_risk_is_a_score_with_its_reasons_in_words():
    text = alarm_texts.early_warning("risk_medium", ["risk 0.15", "HR rising 22 over 6 h", "RR rising 6 over 6 h"])
    assert text == "Early warning: risk score 0.15 - heart rate up 22/min and respiration up 6/min over 6 h"
    assert "%" not in text


def test_the_news2_alarm_of_a_real_stage_reads_as_clinical_words():
    stage = News2Stage()
    latest = np.full((1, len(METRICS)), np.nan)
    for m, v in {Metric.resp_rate: 26, Metric.spo2: 91, Metric.sbp: 95, Metric.heart_rate: 125, Metric.temperature: 38.5}.items():
        latest[0, METRIC_INDEX[m]] = v
    res = stage.update(np.array([0]), latest, np.zeros(latest.shape, np.int64), 0)
    ew, events = EarlyWarningAlarm(), []
    ew.resize(1)
    ew.update(np.array([0]), res.alarm_level, res.alarm_condition, res.reasons, np.array([1000]), ["p1"], events)
    assert len(events) == 1
    text = events[0].alert.message
    total = int(res.scores["news2"][0])
    assert text.startswith(f"Early warning: NEWS2 {total}, high clinical risk - points for respiration 3"), text
    assert not CODE_WORDS.search(text), text


def test_a_limit_alarm_names_value_unit_duration_and_limit():
    c = METRIC_INDEX[Metric.spo2]
    filt, alarms = SignalFilter(), LimitAlarms(ids=["p1"], index={"p1": 0})
    for d in (filt, alarms):
        d.resize(1)
    events = []
    for i in range(30):
        rnd = filt.update(Round(np.array([0]), np.array([c]), np.array([86.0]), np.array([1000 * i]),
                                np.array([np.nan]), ["p1"]))
        alarms.update(rnd, events)
    assert [e.alert.message for e in events] == ["SpO₂ low: 86% for 15 s (alarm limit 90%)"]
