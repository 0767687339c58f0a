"""Beats from short ECG and PPG (pleth) chunks: R peaks, pulse peaks, a pulse rate and a pleth
signal-quality index, for the waveform cross-check (:mod:`detectors.alarms.asystole`).

The ECG beat detector follows Pan and Tompkins (IEEE Trans Biomed Eng 1985;32(3):230-236): a 5-20 Hz
band-pass, the squared derivative as QRS energy, and peaks over a threshold with a refractory time
(250 ms). Unlike the original, the threshold is relative to the chunk (30 % of its 99th energy
percentile) rather than adaptive, since chunks are a few seconds long.

Works when: a lead with visible QRS complexes, chunks of 1 s or more. Does not work when: the lead
is noisy or detached (the beats are lost: the very false asystole the cross-check exists for), or
in very broad or low-amplitude QRS; the pleth detector needs 2 s and a pulsatile signal.

On the shipped 16 s of PhysioNet/CinC 2015 record a103l, whose ECG loses its beats while the pleth
keeps beating::

    >>> import wfdb
    >>> from importlib.resources import files
    >>> r = wfdb.rdrecord(str(files("wardwatch") / "data" / "a103l-285s"))
    >>> ecg, ppg = r.p_signal[:, 0], r.p_signal[:, 1]
    >>> peaks, y = ppg_beats(ppg, 250)
    >>> len(ecg_beats(ecg, 250)), len(peaks), round(rate(peaks, 250)), round(ppg_quality(y, peaks, 250), 2)
    (9, 33, 126, 0.84)
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, filtfilt, find_peaks


def _bandpass(x: np.ndarray, fs: float, lo: float, hi: float, order: int) -> np.ndarray:
    b, a = butter(order, [lo / (fs / 2), hi / (fs / 2)], "band")
    return filtfilt(b, a, np.nan_to_num(np.asarray(x, float)))


# The least QRS energy (squared 5-20 Hz derivative, (mV/sample)^2 at 250 Hz; scaled by the square
# of the sample interval at other rates) that can be a beat: a relative threshold alone finds "beats" in any flat line's baseline noise or rounding,
# the very asystole this must see. Measured at 250 Hz: 50 uV of noise peaks at 2e-4; a103l's QRS
# (about 2.5 mV) at 0.07-0.15, a low-voltage QRS of 0.3 mV at about 1e-3. ECG in mV (as PhysioNet).
MIN_QRS_ENERGY = 5e-4


def ecg_beats(ecg: np.ndarray, fs: float) -> np.ndarray:
    """R-peak sample indices: a Pan-Tompkins-style energy detector with a window-relative threshold
    and an absolute floor (:data:`MIN_QRS_ENERGY`)."""
    if len(ecg) < fs:
        return np.empty(0, int)
    energy = np.diff(_bandpass(ecg, fs, 5, 20, 3)) ** 2
    height = max(0.3 * np.percentile(energy, 99), MIN_QRS_ENERGY * (250.0 / fs) ** 2)
    peaks, _ = find_peaks(energy, height=height, distance=int(0.25 * fs))
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
