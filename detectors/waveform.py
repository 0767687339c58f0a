"""The waveform path: beats from short ECG and PPG (pleth) chunks, a pulse rate, a signal-quality
index, and the cross-check that keeps a noisy ECG from raising a false asystole alarm.

Most false "asystole" and "extreme bradycardia" alarms in monitor studies come from a weak or
noisy ECG lead: the QRS detector loses the beats while the heart keeps pumping. The pleth sees
the pulse independently. So an ECG without beats for ``asystole_s`` raises asystole only when the
pleth does not show a good-quality pulse in the same window; when it does, WardWatch raises a
low-priority *technical* alarm (check the ECG leads) instead.

Works when: the pleth is on (finger or ear probe) and not itself in motion artefact. Does not work
when: the pleth is off or poor (SQI below ``min_sqi``): then the ECG's verdict stands, as it must
in a safety system (a missing cross-check never suppresses an alarm); pulseless electrical
activity (ECG beats, no pulse) is a different alarm this check does not raise.

Example on real data, the PhysioNet/CinC 2015 record a103l, a monitor's asystole alarm that experts
judged false::

    >>> import wfdb
    >>> from detectors.waveform import verify_asystole
    >>> r = wfdb.rdrecord("../shared/data/wfdb/a103l/a103l")
    >>> w = r.p_signal[285 * 250:301 * 250]
    >>> v = verify_asystole(w[:, 0], w[:, 2], fs=250)
    >>> v.ecg_asystole, v.alarm, round(v.ppg_rate)
    (True, False, 126)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, filtfilt, find_peaks


def _bandpass(x: np.ndarray, fs: float, lo: float, hi: float, order: int) -> np.ndarray:
    b, a = butter(order, [lo / (fs / 2), hi / (fs / 2)], "band")
    return filtfilt(b, a, np.nan_to_num(np.asarray(x, float)))


def ecg_beats(ecg: np.ndarray, fs: float) -> np.ndarray:
    """R-peak sample indices: a Pan-Tompkins-style energy detector with a window-relative threshold."""
    if len(ecg) < fs:
        return np.empty(0, int)
    energy = np.diff(_bandpass(ecg, fs, 5, 20, 3)) ** 2
    peaks, _ = find_peaks(energy, height=0.3 * np.percentile(energy, 99), distance=int(0.25 * fs))
    return peaks


def ppg_beats(ppg: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Pulse-peak indices and the filtered pleth they were found in."""
    if len(ppg) < 2 * fs or np.nanstd(ppg) == 0:
        return np.empty(0, int), np.zeros(len(ppg))
    y = _bandpass(ppg, fs, 0.5, 8, 2)
    peaks, _ = find_peaks(y, distance=int(0.33 * fs), prominence=0.6 * np.std(y))
    return peaks, y


def ppg_quality(y: np.ndarray, peaks: np.ndarray, fs: float) -> float:
    """Signal-quality index 0..1: how alike the beats are (mean correlation with the mean beat),
    times how regular their intervals are."""
    half = int(0.3 * fs)
    beats = np.array([y[p - half:p + half] for p in peaks if p - half >= 0 and p + half <= len(y)])
    if len(beats) < 3:
        return 0.0
    template = beats.mean(axis=0)
    corr = [np.corrcoef(b, template)[0, 1] for b in beats]
    intervals = np.diff(peaks) / fs
    regularity = 1.0 - min(1.0, float(np.std(intervals) / max(np.mean(intervals), 1e-6)))
    return float(np.clip(np.nanmean(corr), 0, 1) * regularity)


def rate(peaks: np.ndarray, fs: float) -> float:
    return float(60.0 / np.median(np.diff(peaks) / fs)) if len(peaks) >= 3 else float("nan")


@dataclass(frozen=True)
class AsystoleVerdict:
    ecg_asystole: bool  # the ECG alone shows no beat for the asystole time
    ecg_longest_gap_s: float
    ppg_rate: float
    ppg_sqi: float
    alarm: bool  # WardWatch raises the asystole alarm
    technical: bool  # ... or a technical "ECG signal poor" alarm instead
    reason: str


def verify_asystole(ecg: np.ndarray, ppg: np.ndarray | None, fs: float, asystole_s: float = 4.0,
                    min_sqi: float = 0.6) -> AsystoleVerdict:
    peaks = ecg_beats(ecg, fs)
    gaps = np.diff(np.r_[0, peaks, len(ecg)]) / fs
    longest = float(gaps.max()) if len(gaps) else len(ecg) / fs
    asystole = longest >= asystole_s
    p_rate, sqi = float("nan"), 0.0
    if ppg is not None:
        p_peaks, y = ppg_beats(ppg, fs)
        p_rate, sqi = rate(p_peaks, fs), ppg_quality(y, p_peaks, fs)
    pulse = sqi >= min_sqi and 30 <= p_rate <= 220
    if not asystole:
        return AsystoleVerdict(False, longest, p_rate, sqi, False, False, "ECG shows beats")
    if pulse:
        return AsystoleVerdict(True, longest, p_rate, sqi, False, True,
                               f"no ECG beat for {longest:.1f}s but pleth pulse {p_rate:.0f}/min (SQI {sqi:.2f}): check ECG leads")
    return AsystoleVerdict(True, longest, p_rate, sqi, True, False,
                           f"no ECG beat for {longest:.1f}s and no good pleth pulse (SQI {sqi:.2f})")
