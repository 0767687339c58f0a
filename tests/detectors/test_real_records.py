"""Filters and alarm rules on real records from ../shared/data."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import wfdb

from detectors.engine import DetectorEngine
from detectors.filters import Hampel, median_smooth, resample_mean
from detectors.alarms.asystole import verify_asystole
from detectors.beats import ppg_beats, rate

from .helpers import columns

FS = 250


@pytest.fixture(scope="module")
def a103l(shared_data):
    return wfdb.rdrecord(str(shared_data / "wfdb" / "a103l" / "a103l"))


def test_a103l_false_asystole_is_not_raised_because_the_pleth_keeps_beating(a103l):
    assert "False alarm" in a103l.comments
    w = a103l.p_signal[285 * FS:301 * FS]  # the 16 s before the monitor's alarm
    v = verify_asystole(w[:, 0], w[:, 2], fs=FS)
    assert v.ecg_asystole, "the ECG alone loses the beats: an ECG-only rule would alarm here"
    assert not v.alarm and v.technical
    assert 110 < v.ppg_rate < 140 and v.ppg_sqi > 0.6


def test_engine_turns_the_a103l_chunk_into_a_technical_alarm_not_asystole(a103l):
    w = a103l.p_signal[285 * FS:301 * FS]
    events = DetectorEngine().waveform("p1", w[:, 0], w[:, 2], FS, t_end_ms=1_700_000_016_000)
    assert [(e.alert.condition, e.alert.kind.value, e.alert.priority.value) for e in events] == [
        ("ecg_signal_poor", "technical", "low")]
    assert "the pleth shows a pulse of 12" in events[0].alert.message and "check the ECG leads" in events[0].alert.message


def test_without_a_pulse_on_the_pleth_the_same_ecg_raises_asystole(a103l):
    w = a103l.p_signal[285 * FS:301 * FS]
    flat_pleth = np.full(len(w), w[0, 2])
    v = verify_asystole(w[:, 0], flat_pleth, fs=FS)
    assert v.alarm and not v.technical
    assert verify_asystole(w[:, 0], None, fs=FS).alarm, "no pleth: the ECG's verdict stands"


def test_a103l_ecg_and_pleth_agree_while_the_heart_is_steady(a103l):
    w = a103l.p_signal[200 * FS:216 * FS]
    v = verify_asystole(w[:, 0], w[:, 2], fs=FS)
    assert not v.ecg_asystole and not v.alarm
    peaks, _ = ppg_beats(w[:, 2], FS)
    assert rate(peaks, FS) == pytest.approx(126, abs=5)


def mimic_columns(record, patient="m1", spacing_ms=60_000):
    names = {"HR": "heart_rate", "SpO2": "spo2", "RESP": "resp_rate", "PULSE": "pulse_rate", "ABPSys": "sbp"}
    ps, ms, vs, ts = [], [], [], []
    for i, row in enumerate(record.p_signal):
        for j, n in enumerate(record.sig_name):
            if n in names and not np.isnan(row[j]):
                ps.append(patient), ms.append(names[n]), vs.append(float(row[j])), ts.append(1_700_000_000_000 + spacing_ms * i)
    return columns(ps, ms, vs, ts)


def test_mimic_sensor_off_periods_raise_technical_not_physiological_alarms(shared_data):
    rec = wfdb.rdrecord(str(shared_data / "wfdb" / "s00001" / "s00001-2896-10-10-00-31n"))
    spo2 = rec.p_signal[:, rec.sig_name.index("SpO2")]
    assert (spo2 == 0).sum() > 20, "the record has sensor-off stretches (zeros)"
    out = DetectorEngine(stale_after_ms=10**12).process(mimic_columns(rec))
    raised = Counter((e.alert.kind.value, e.alert.condition) for e in out.events if e.type.value == "raised")
    assert raised[("technical", "sensor_off_spo2")] >= 5
    physiological = {c for (k, c) in raised if k == "physiological"}
    # Zeros never read as desaturation or asystole: no SpO2 or HR-low alarm from the sensor-off stretches.
    assert not physiological & {"spo2_low", "spo2_critical", "hr_low"}


def test_mimic_desaturation_raises_a_high_priority_alarm_that_says_why(shared_data):
    rec = wfdb.rdrecord(str(shared_data / "wfdb" / "s25047" / "s25047-2704-05-04-10-44n"))
    out = DetectorEngine(stale_after_ms=10**12).process(mimic_columns(rec))
    spo2 = [e for e in out.events if e.alert.condition == "spo2_low" and e.type.value == "raised"]
    assert spo2 and spo2[0].alert.priority.value == "high"
    assert spo2[0].alert.message.startswith("SpO₂ low: ") and "for 15 s (alarm limit 90%)" in spo2[0].alert.message
    assert spo2[0].alert.values["spo2"] < 90


def test_hampel_flags_an_isolated_spike_on_real_heart_rate_but_not_the_trend(shared_data):
    rec = wfdb.rdrecord(str(shared_data / "wfdb" / "s00001" / "s00001-2896-10-10-00-31n"))
    hr = rec.p_signal[:, rec.sig_name.index("HR")]
    hr = hr[(hr > 0) & ~np.isnan(hr)][:300].copy()
    hr[150] = hr[150] + 60  # a motion artefact
    h = Hampel(n_rows=1, n_cols=1, window=7, min_scale=3.0)
    flags = np.array([h.step(np.array([0]), np.array([0]), np.array([v]))[0] for v in hr])
    assert flags[150]
    assert flags.sum() <= 3, "a real signal is not shredded"


def test_smoothing_and_resampling_keep_the_level():
    t = np.arange(0, 600_000, 1000)
    v = 80 + np.where(np.arange(len(t)) == 30, 50, 0)
    assert median_smooth(v)[30] == 80
    grid, means = resample_mean(t, v.astype(float), 60_000)
    assert len(grid) == 10 and means[1] == pytest.approx(80)


def test_late_duplicate_and_out_of_order_readings_are_stored_but_do_not_drive_alarms():
    e = DetectorEngine(stale_after_ms=10**12)
    base = 1_700_000_000_000
    first = e.process(columns("p", "spo2", [97] * 20, [base + 1000 * i for i in range(20)]))
    assert first.late == 0 and len(first.vitals_lines) == 20
    # A late desaturation from the past, a duplicate, and the same time twice in one batch.
    late = e.process(columns("p", "spo2", [80] * 20 + [97, 97], [base + 1000 * i for i in range(20)] + [base + 30_000] * 2))
    # Every one is stored; the two readings of one time are one point (patient-time), its last value.
    assert late.late == 21 and len(late.vitals_lines) == 21
    assert all(ln.split(" ")[1].startswith("spo2=80.0,") for ln in late.vitals_lines[:20])
    assert late.vitals_lines[20].split(" ")[1].startswith("spo2=97.0,")
    assert not late.events


def test_condition_delay_hysteresis_and_latching():
    e = DetectorEngine(stale_after_ms=10**12)
    base = 1_700_000_000_000
    # SpO2 88 % for 10 s then back to 95: shorter than the 15 s delay, so no alarm.
    short = e.process(columns("p", "spo2", [96] * 10 + [88] * 10 + [95] * 10, [base + 1000 * i for i in range(30)]))
    assert not [x for x in short.events if x.alert.condition == "spo2_low"]
    # 88 % for 30 s raises once; 90.5 % is inside the limit but not by the 2 % hysteresis: still active.
    t0 = base + 30_000
    vals = [88] * 30 + [90.5] * 10 + [95] * 5
    out = e.process(columns("p", "spo2", vals, [t0 + 1000 * i for i in range(len(vals))]))
    types = [(x.type.value, x.at - t0) for x in out.events if x.alert.condition == "spo2_low"]
    # The step is confirmed by the Hampel filter after 4 readings (half its window), then the 15 s
    # delay runs: raised 19 s after the fall; the recovery is confirmed the same way.
    assert types == [("raised", 19_000), ("cleared", 44_000)]
    assert out.events[0].alert.latched, "a high-priority alarm latches until acknowledged"


def test_each_patient_snapshot_carries_its_own_scores_whatever_the_batch_holds():
    e = DetectorEngine(stale_after_ms=10**12)
    base = 1_700_000_000_000
    # Patient a has three reading times in the batch, patient b one: b's tile must still show b's NEWS2.
    out = e.process(columns(["a"] * 6 + ["b"] * 2, ["spo2", "resp_rate"] * 3 + ["spo2", "resp_rate"],
                            [97, 16, 97, 16, 97, 16, 91, 26], [base, base, base + 1000, base + 1000, base + 2000,
                                                                base + 2000, base, base]))
    snaps = {s.patient: s.model() for s in out.snapshots}
    assert snaps["a"].news2 == 0
    assert snaps["b"].news2 == 6  # SpO2 91 % (+3) and RR 26 (+3)
    assert snaps["b"].values == {"spo2": 91.0, "resp_rate": 26.0}
