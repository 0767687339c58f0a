"""A real asystole is a flat ECG with its baseline noise (tens of microvolts) or an offset, not exact
zeros: the beat detector's chunk-relative threshold must not take that noise for beats."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.alarms.asystole import verify_asystole
from detectors.beats import ecg_beats

FS = 250


@pytest.mark.parametrize("name,ecg", [
    ("zeros", np.zeros(5 * FS)),
    ("an offset of 0.5 mV", np.full(5 * FS, 0.5)),
    ("10 uV of noise", 0.01 * np.random.default_rng(0).standard_normal(5 * FS)),
    ("50 uV of noise on an offset", 0.3 + 0.05 * np.random.default_rng(1).standard_normal(5 * FS)),
])
def test_a_flat_ecg_with_baseline_noise_or_an_offset_raises_asystole(name, ecg):
    verdict = verify_asystole(ecg, None, FS)
    assert verdict.ecg_asystole and verdict.alarm, name


@pytest.mark.parametrize("fs", [125, 250, 500, 1000])
def test_a_low_voltage_ecg_still_shows_its_beats_and_its_flat_line_does_not(fs):
    # QRS of 0.3 mV (a low-voltage ECG) at 75/min over 20 uV of noise, at the monitor's sampling rate
    t = np.arange(5 * fs) / fs
    noise = 0.02 * np.random.default_rng(2).standard_normal(len(t))
    qrs = sum(0.3 * np.exp(-((t - b) / 0.012) ** 2) for b in np.arange(0.3, 5, 0.8))
    assert len(ecg_beats(qrs + noise, fs)) >= 5
    assert not verify_asystole(qrs + noise, None, fs).ecg_asystole
    assert verify_asystole(noise, None, fs).alarm


def test_an_ecg_whose_samples_are_missing_is_a_technical_alarm_to_check_the_leads_not_an_asystole():
    """Leads off, as some monitors write it: NaN samples (Python's json.dumps writes them as NaN)."""
    from detectors.alarms.asystole import WaveformCrossCheck

    t = np.arange(10 * FS) / FS
    beating = sum(1.5 * np.exp(-((t - b) / 0.012) ** 2) for b in np.arange(0.3, 10, 0.8))
    leads_off = beating.copy()
    leads_off[2 * FS:] = np.nan  # the leads came off after 2 s
    verdict = verify_asystole(leads_off, None, FS)
    assert not verdict.alarm and verdict.technical and "leads" in verdict.reason

    check = WaveformCrossCheck()
    check.resize(1)
    events = check.update("p1", leads_off, None, FS, 1_000_000)
    assert [(e.alert.condition, e.alert.kind.value, e.type.value) for e in events] == [
        ("ecg_signal_poor", "technical", "raised")]
    assert "missing" in events[0].alert.message
    # A few missing samples in a beating ECG are no alarm at all.
    few = beating.copy()
    few[::50] = np.nan
    assert not verify_asystole(few, None, FS).ecg_asystole
