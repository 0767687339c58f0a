"""Sensor-off technical alarms: a probe that gives no valid signal for 10 s."""

from __future__ import annotations

import numpy as np

from wardwatch import alarm_texts
from wardwatch.metrics_catalog import METRICS, Metric
from wardwatch.models import AlertEventType, AlertKind, Priority

from ..protocol import Round, RowState
from .events import make_event

M = len(METRICS)
METRIC_NAMES = [m.value for m in METRICS]
SENSOR_OFF_DELAY_MS = 10_000
# One technical alarm per probe: diastolic and mean pressure share the systolic's cuff or line, and
# the oximeter's pulse rate its SpO2 probe, so they do not alarm on their own.
SENSOR_OFF_ALARMS = np.array([m in (Metric.heart_rate, Metric.spo2, Metric.resp_rate, Metric.sbp, Metric.temperature,
                                    Metric.etco2) for m in METRICS])


class SensorOffAlarms(RowState):
    """A medium-priority technical ``sensor_off_<metric>`` alarm when a probe has read "off" (0 where
    0 means disconnected, the MIMIC-II convention, or device quality below 0.2; decided by
    :class:`detectors.filters.SignalFilter`) for :data:`SENSOR_OFF_DELAY_MS`; the next valid
    reading clears it. One alarm per probe (:data:`SENSOR_OFF_ALARMS`). IEC 60601-1-8 technical
    alarm condition; the 0-means-off convention is that of MIMIC-II numerics (Saeed et al., Crit
    Care Med 2011).

    Works when: MIMIC-style numerics where a disconnected probe sends 0 or a low quality. Does not
    work when: a probe that sends nothing at all (that is device silence,
    :class:`detectors.alarms.device_silence.DeviceSilence`); a true zero (asystole) is reported as a
    sensor off too, and the waveform cross-check decides.

    The shipped MIMIC-II record s00001 (1/min), whose SpO2 probe is off at times::

        >>> import numpy as np, wfdb
        >>> from importlib.resources import files
        >>> from detectors.filters import SignalFilter
        >>> from detectors.protocol import Round
        >>> from wardwatch.metrics_catalog import METRIC_INDEX, Metric
        >>> rec = wfdb.rdrecord(str(files("wardwatch") / "data" / "s00001-2896-10-10-00-31n"))
        >>> spo2 = np.nan_to_num(rec.p_signal[:, rec.sig_name.index("SpO2")])
        >>> c = METRIC_INDEX[Metric.spo2]
        >>> filt, off = SignalFilter(), SensorOffAlarms()
        >>> for d in (filt, off):
        ...     d.resize(1)
        >>> events = []
        >>> for i, v in enumerate(spo2):
        ...     off.update(filt.update(Round(np.array([0]), np.array([c]), np.array([v]), np.array([60_000 * i]),
        ...                                  np.array([np.nan]), ["s00001"])), events)
        >>> [(e.type.value, e.alert.condition, e.at // 60_000) for e in events][:4]
        [('raised', 'sensor_off_spo2', 1), ('cleared', 'sensor_off_spo2', 14), ('raised', 'sensor_off_spo2', 16), ('cleared', 'sensor_off_spo2', 52)]
    """

    ARRAYS = {"off_onset": ((M,), np.int64, -1), "off_active": ((M,), np.bool_, False),
              "off_alert_onset": ((M,), np.int64, -1)}

    def update(self, rnd: Round, events: list) -> None:
        rr, cc, v, t, off, valid = rnd.rows, rnd.metrics, rnd.values, rnd.ts, rnd.off, rnd.valid
        onset = self.off_onset[rr, cc]
        start = off & (onset < 0)
        self.off_onset[rr[start], cc[start]] = t[start]
        onset = self.off_onset[rr, cc]
        raise_ = off & ~self.off_active[rr, cc] & (t - onset >= SENSOR_OFF_DELAY_MS) & SENSOR_OFF_ALARMS[cc]
        for i in np.flatnonzero(raise_):
            r, c = rr[i], cc[i]
            self.off_active[r, c] = True
            self.off_alert_onset[r, c] = onset[i]
            name = METRIC_NAMES[c]
            events.append(make_event(rnd.ids[r], f"sensor_off_{name}", AlertKind.technical, Priority.medium,
                                     int(onset[i]), int(t[i]), AlertEventType.raised,
                                     alarm_texts.sensor_off(name, int(t[i] - onset[i])), {name: float(v[i])}))
        back = valid & (self.off_onset[rr, cc] >= 0)
        for i in np.flatnonzero(back & self.off_active[rr, cc]):
            r, c = rr[i], cc[i]
            name = METRIC_NAMES[c]
            events.append(make_event(rnd.ids[r], f"sensor_off_{name}", AlertKind.technical, Priority.medium,
                                     int(self.off_alert_onset[r, c]), int(t[i]), AlertEventType.cleared,
                                     alarm_texts.sensor_back(name), {name: float(v[i])}))
            self.off_active[r, c] = False
        self.off_onset[rr[back], cc[back]] = -1

    def stale(self, row: int) -> list[str]:
        """The metrics whose sensor-off alarm is active for a row."""
        return [METRIC_NAMES[c] for c in range(M) if self.off_active[row, c]]
