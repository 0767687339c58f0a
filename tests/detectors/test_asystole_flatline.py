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
