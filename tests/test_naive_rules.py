"""The benchmarks' naive per-message rules and the pipeline's load (no servers)."""

from __future__ import annotations

import numpy as np
import orjson

from benchmarks.naive import PIPELINE, PatientRules, by_metric
from benchmarks.pipeline.load import Ward
from wardwatch.alarm_rules import DEFAULT_RULES


def test_a_limit_held_for_its_delay_raises_once_and_clears_when_back_inside():
    r = PatientRules()
    changes = [c for t in range(0, 20_001, 1000) for c in r.update(PIPELINE, "spo2", 85.0, t)]
    assert changes == ["raised:spo2_low"]  # at 15 s, once
    assert r.update(PIPELINE, "spo2", 97.0, 21_000) == ["cleared:spo2_low"]
    assert PatientRules.from_dict(r.to_dict()).to_dict() == r.to_dict()


def test_the_engines_rules_work_too():
    rules = by_metric(DEFAULT_RULES)
    r = PatientRules()
    raised = [c for t in range(0, 16_000, 1000) for c in r.update(rules, "spo2", 80.0, t)]
    assert raised == ["raised:spo2_critical", "raised:spo2_low"]  # 5 s, then 15 s


def test_the_pipeline_ward_raises_an_alarm_for_each_deteriorating_patient_and_no_other():
    ward = Ward(500, deteriorating=0.05, sick_window=(2.0, 20.0))
    state: dict[str, PatientRules] = {}
    raised = set()
    for s in range(45):
        for group in np.array_split(np.arange(ward.n), 10):
            for key, raw in ward.records(group, 1_000 * s, float(s)):
                d = orjson.loads(raw)
                for c in state.setdefault(d["patient"], PatientRules()).update(PIPELINE, d["metric"], d["value"], d["ts"]):
                    if c.startswith("raised"):
                        raised.add(d["patient"])
    assert raised == {p for p, sick in zip(ward.patients, ward.ward.sick) if sick} and raised
