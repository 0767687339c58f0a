"""The benchmarks' naive per-message rules and the pipeline's load (no servers)."""

from __future__ import annotations

import numpy as np
import orjson

from benchmarks.naive import PatientRules
from benchmarks.pipeline.alarms import RULES
from benchmarks.pipeline.load import Ward


def test_a_limit_held_for_its_delay_raises_once_and_clears_when_back_inside_by_the_hysteresis():
    r = PatientRules()
    changes = [c for t in range(0, 20_001, 1000) for c in r.update(RULES, "spo2", 88.0, t)]
    assert [(c.type, c.rule.condition, c.onset, c.ts) for c in changes] == [("raised", "spo2_low", 0, 15_000)]
    assert r.update(RULES, "spo2", 91.0, 21_000) == []  # inside the limit, not by the 2 % hysteresis
    [cleared] = r.update(RULES, "spo2", 92.0, 22_000)
    assert (cleared.type, cleared.onset) == ("cleared", 0)
    assert PatientRules.from_dict(orjson.loads(orjson.dumps(r.to_dict()))).to_dict() == r.to_dict()


def test_a_reading_back_inside_restarts_the_delay():
    r = PatientRules()
    seq = [88.0] * 10 + [90.5] + [88.0] * 16  # one reading inside the limit at 10 s
    changes = [c for t, v in enumerate(seq) for c in r.update(RULES, "spo2", v, 1000 * t)]
    assert [(c.onset, c.ts) for c in changes] == [(11_000, 26_000)]


def test_the_critical_rule_raises_first_then_the_low_one():
    r = PatientRules()
    raised = [c.rule.condition for t in range(0, 16_000, 1000) for c in r.update(RULES, "spo2", 80.0, t)]
    assert raised == ["spo2_critical", "spo2_low"]  # 5 s, then 15 s


def test_the_pipeline_ward_raises_an_alarm_for_each_deteriorating_patient_and_no_other():
    ward = Ward(500, deteriorating=0.05, sick_window=(2.0, 20.0))
    state: dict[str, PatientRules] = {}
    raised = set()
    for s in range(45):
        for group in np.array_split(np.arange(ward.n), 10):
            for key, raw in ward.records(group, 1_000 * s, float(s)):
                d = orjson.loads(raw)
                for c in state.setdefault(d["patient"], PatientRules()).update(RULES, d["metric"], d["value"], d["ts"]):
                    if c.type == "raised":
                        raised.add(d["patient"])
    assert raised == {p for p, sick in zip(ward.patients, ward.ward.sick) if sick} and raised


def test_the_pipeline_load_is_byte_for_byte_what_the_gateway_client_encodes():
    """The load skips the hash in its ids and writes from templates; what reaches the readings topic
    must still be the gateway client's own template (the worker's decoding of it is what is timed)."""
    from wardwatch.codec import decode_readings, encode_readings

    ward = Ward(50, deteriorating=0.2, sick_window=(0.0, 3.0))
    idx = np.arange(3, 40)
    now = 1_796_000_000_123
    records = ward.records(idx, now, 5.0)
    cols, rejected = decode_readings([v for _, v in records], now)
    assert not rejected and len(cols) == 3 * len(idx)
    assert encode_readings(cols, received=now, checked=True) == records
    assert len(set(cols.id.tolist())) == len(cols)  # one id per reading
