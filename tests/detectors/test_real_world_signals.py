"""Signals as probes and clocks really behave: a probe that reads 0 now and then, a capnography line
taken out while the scores' own probes stream on, a device whose clock runs ahead."""

from __future__ import annotations

from detectors.engine import DetectorEngine
from detectors.scores.news2 import News2Stage

from .helpers import columns

BASE = 1_700_000_000_000


def test_a_desaturation_is_alarmed_though_the_probe_reads_0_one_second_in_five():
    # SpO2 85 % (limit 90 %, 15 s delay) for 10 minutes, the probe slipping to 0 every fifth second:
    # each 0 used to restart the delay, and the valid readings between kept sensor-off from firing.
    engine = DetectorEngine(stages=[News2Stage(alarms=False)])
    events = []
    for s in range(600):
        spo2 = 0.0 if s % 5 == 4 else 85.0
        events += engine.process(columns(["p1", "p1"], ["spo2", "heart_rate"], [spo2, 80.0],
                                         [BASE + 1000 * s] * 2)).events
    raised = [(e.alert.condition, (e.at - BASE) // 1000) for e in events if e.type.value == "raised"]
    assert raised == [("spo2_low", 15)]  # once, after the delay, as without the zeros


def test_a_probe_back_after_minutes_off_counts_its_delay_afresh():
    engine = DetectorEngine(stages=[News2Stage(alarms=False)])
    events = []
    for s in range(400):  # low for 5 s, off for 5 minutes, then low again
        spo2 = 85.0 if s < 5 or s >= 305 else 0.0
        events += engine.process(columns(["p1", "p1"], ["spo2", "heart_rate"], [spo2, 80.0],
                                         [BASE + 1000 * s] * 2)).events
    low = [(e.type.value, (e.at - BASE) // 1000) for e in events if e.alert.condition == "spo2_low"]
    assert low == [("raised", 320)]  # 15 s after it came back, not at once


def test_a_probe_the_scores_do_not_read_does_not_hold_their_alarm():
    # NEWS2 >= 5 raised; the capnography line is taken out (its signal lost), and NEWS2's own five
    # probes are normal for minutes: the early warning clears, the EtCO2 alarm stays its own.
    engine = DetectorEngine(stages=[News2Stage()], stale_after_ms=60_000)
    events = []
    for s in range(400):
        t, sick = BASE + 1000 * s, s < 100
        rows = [("p1", "resp_rate", 26.0 if sick else 16.0, t), ("p1", "spo2", 91.0 if sick else 97.0, t),
                ("p1", "heart_rate", 80.0, t), ("p1", "sbp", 120.0, t), ("p1", "temperature", 37.0, t)]
        if s < 20:
            rows.append(("p1", "etco2", 35.0, t))
        events += engine.process(columns(*zip(*rows))).events
    assert engine.scores["news2"][0] == 0
    assert [(e.type.value, e.alert.condition, (e.at - BASE) // 1000) for e in events
            if e.alert.condition in ("early_warning", "signal_lost_etco2")] == [
        ("raised", "early_warning", 0), ("raised", "signal_lost_etco2", 80), ("cleared", "early_warning", 104)]


def test_one_reading_stamped_ahead_does_not_make_the_other_probes_look_lost():
    engine = DetectorEngine(stages=[News2Stage()], stale_after_ms=60_000)
    events = []
    for s in range(120):  # HR and SpO2 every second; one HR reading stamped 100 s ahead
        now = BASE + 1000 * s
        hr_ts = now + 100_000 if s == 30 else now
        events += engine.process(columns(["p1", "p1"], ["heart_rate", "spo2"], [80.0, 97.0], [hr_ts, now]),
                                 now_ms=now).events
    assert {e.alert.condition for e in events} == {"clock_ahead_heart_rate"}
