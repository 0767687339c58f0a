"""The waveform cross-check: an ECG without beats raises asystole only when the pleth agrees.

Most false "asystole" and "extreme bradycardia" alarms in monitor studies come from a weak or
noisy ECG lead: the QRS detector loses the beats while the heart keeps pumping. The pleth sees
the pulse independently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wardwatch import alarm_texts
from wardwatch.models import AlertEvent, AlertEventType, AlertKind, Priority

from ..beats import ecg_beats, ppg_beats, ppg_quality, rate
from ..protocol import RowState, grow
from .events import make_event


MAX_MISSING = 0.1  # a larger share of missing ECG samples is no verdict on the heart


@dataclass(frozen=True)
class AsystoleVerdict:
    ecg_asystole: bool  # the ECG alone shows no beat for the asystole time
    ecg_longest_gap_s: float
    ppg_rate: float
    ppg_sqi: float
    alarm: bool  # WardWatch raises the asystole alarm
    technical: bool  # ... or a technical "ECG signal poor" alarm instead
    reason: str
    ecg_missing: float = 0.0  # the share of the chunk's ECG samples that are missing (NaN)


def verify_asystole(ecg: np.ndarray, ppg: np.ndarray | None, fs: float, asystole_s: float = 4.0,
                    min_sqi: float = 0.6) -> AsystoleVerdict:
    # Missing samples (leads off, as some monitors write it) say nothing about the heart: read as a
    # flat line they were an "asystole". Beyond a few, the ECG cannot be judged: a technical alarm.
    missing = float(np.isnan(ecg).mean()) if len(ecg) else 1.0
    if missing > MAX_MISSING:
        return AsystoleVerdict(True, len(ecg) / fs, float("nan"), 0.0, False, True,
                               f"{missing:.0%} of the ECG samples missing: check ECG leads", missing)
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


class WaveformCrossCheck(RowState):
    """Asystole from a short ECG (+ pleth) chunk, cross-checked against the pleth's pulse.

    An ECG without a beat (Pan and Tompkins 1985, see :mod:`detectors.beats`) for ``asystole_s``
    raises a high-priority ``asystole`` only when the pleth does not show a good-quality pulse in
    the same window; when it does, a low-priority technical ``ecg_signal_poor`` ("check the ECG
    leads") instead. The approach is that of the PhysioNet/CinC Challenge 2015 on reducing false
    arrhythmia alarms (Clifford et al., Comput Cardiol 2015).

    Each chunk is judged on its own; the alarm is per patient: raised once when the verdict becomes
    asystole (or a poor ECG), kept while the following chunks say the same, cleared by the first
    chunk with beats (or moved to the other condition). A chunk that is not newer than the last one
    of its patient (resent, or late) changes nothing.

    Works when: the pleth is on (finger or ear probe) and not itself in motion artefact. Does not
    work when: the pleth is off or poor (SQI below ``min_sqi``): then the ECG's verdict stands, as
    it must in a safety system (a missing cross-check never suppresses an alarm); pulseless
    electrical activity (ECG beats, no pulse) is a different alarm this check does not raise.

    The shipped a103l chunk, a monitor's asystole alarm that experts judged false::

        >>> import wfdb
        >>> from importlib.resources import files
        >>> r = wfdb.rdrecord(str(files("wardwatch") / "data" / "a103l-285s"))
        >>> check = WaveformCrossCheck()
        >>> check.resize(1)
        >>> [(e.alert.condition, e.alert.priority.value) for e in
        ...  check.update("p1", r.p_signal[:, 0], r.p_signal[:, 1], 250, 1_000_000)]
        [('ecg_signal_poor', 'low')]
        >>> [(e.alert.condition, e.type.value) for e in check.update("p1", r.p_signal[:, 0], None, 250, 1_010_000)]
        [('ecg_signal_poor', 'cleared'), ('asystole', 'raised')]
    """

    NONE, ASYSTOLE, ECG_POOR = 0, 1, 2
    # Per row: the condition raised, its onset, the newest chunk's end. Checkpointed as extra state
    # (only patients with waveforms have any), so the binary layout of the other arrays is unchanged.
    WAVE = (("wave_active", np.int8, 0), ("wave_onset", np.int64, -1), ("wave_end", np.int64, -1))

    def __init__(self, asystole_s: float = 4.0, min_sqi: float = 0.6) -> None:
        super().__init__()
        self.asystole_s, self.min_sqi = asystole_s, min_sqi
        for name, dtype, fill in self.WAVE:
            setattr(self, name, np.full(0, fill, dtype))

    def resize(self, n_rows: int) -> None:
        for name, _, fill in self.WAVE:
            setattr(self, name, grow(getattr(self, name), n_rows, fill))

    def row_arrays(self):
        for name, _, _ in self.WAVE:
            yield self, name

    def checkpoint_arrays(self):
        yield from ()

    def extra_state(self, rows):
        if not (self.wave_end[rows] >= 0).any():
            return None
        return [[int(getattr(self, name)[r]) for name, _, _ in self.WAVE] if self.wave_end[r] >= 0 else None
                for r in rows.tolist()]

    def load_extra_state(self, row: int, doc) -> None:
        for (name, _, _), x in zip(self.WAVE, doc):
            getattr(self, name)[row] = x

    def state_dict(self, row: int) -> dict:
        return {"wave": [int(getattr(self, name)[row]) for name, _, _ in self.WAVE]}

    def load_state(self, row: int, doc: dict) -> None:
        if "wave" in doc:
            self.load_extra_state(row, doc["wave"])

    def update(self, patient: str, ecg: np.ndarray, ppg: np.ndarray | None, fs: float,
               t_end_ms: int, row: int = 0) -> list[AlertEvent]:
        if t_end_ms <= self.wave_end[row]:
            return []
        self.wave_end[row] = t_end_ms
        v = verify_asystole(ecg, ppg, fs, self.asystole_s, self.min_sqi)
        verdict = self.NONE if not v.ecg_asystole else self.ASYSTOLE if v.alarm else self.ECG_POOR
        active = int(self.wave_active[row])
        if verdict == active:
            return []
        events = []
        onset = int(self.wave_onset[row])
        if active == self.ASYSTOLE:
            events.append(make_event(patient, "asystole", AlertKind.physiological, Priority.high, onset, t_end_ms,
                                     AlertEventType.cleared, alarm_texts.ecg_back(), {}))
        elif active == self.ECG_POOR:
            events.append(make_event(patient, "ecg_signal_poor", AlertKind.technical, Priority.low, onset, t_end_ms,
                                     AlertEventType.cleared, alarm_texts.ecg_back(), {}))
        onset = int(t_end_ms - v.ecg_longest_gap_s * 1000)
        if verdict == self.ASYSTOLE:
            events.append(make_event(patient, "asystole", AlertKind.physiological, Priority.high, onset, t_end_ms,
                                     AlertEventType.raised, alarm_texts.asystole(v.ecg_longest_gap_s, v.ppg_sqi),
                                     {"ecg_gap_s": v.ecg_longest_gap_s}))
        elif verdict == self.ECG_POOR:
            events.append(make_event(patient, "ecg_signal_poor", AlertKind.technical, Priority.low, onset, t_end_ms,
                                     AlertEventType.raised,
                                     alarm_texts.ecg_missing(v.ecg_missing) if v.ecg_missing > MAX_MISSING else
                                     alarm_texts.ecg_signal_poor(v.ecg_longest_gap_s, v.ppg_rate, v.ppg_sqi),
                                     {"pleth_rate": v.ppg_rate, "pleth_sqi": v.ppg_sqi}))
        self.wave_active[row], self.wave_onset[row] = verdict, onset
        return events
