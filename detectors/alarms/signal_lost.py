"""Signal-lost technical alarms: one probe stops while the patient's other readings go on."""

from __future__ import annotations

import numpy as np

from wardwatch import alarm_texts
from wardwatch.models import AlertEventType, AlertKind, Priority

from ..protocol import Round, RowState
from .clock_ahead import SLACK_MS
from .events import make_event
from .sensor_off import METRIC_NAMES, SENSOR_OFF_ALARMS, M


class SignalLost(RowState):
    """A medium-priority technical ``signal_lost_<metric>`` alarm when a probe that was streaming
    (its last two readings at most ``stale_after_ms / 2`` apart) has sent nothing for ``stale_after_ms``
    of the patient's own reading time while other readings of the patient go on; the probe's next
    reading clears it. One alarm per probe, as for sensor off. IEC 60601-1-8 technical alarm condition
    ("loss of signal").

    Without it, a probe that falls silent on a patient whose other device keeps sending raised
    nothing: device silence (:class:`detectors.alarms.device_silence.DeviceSilence`) needs every
    reading of the patient to stop, and the scores kept the probe's last value for hours.

    Works when: probes stream (every second or every few seconds) and another of the patient's
    probes keeps sending. Does not work when: values are charted minutes or hours apart (no stream to
    lose; such a patient has no alarm for it); every probe stops at once (that is device silence);
    judged on reading time, so a probe whose readings arrive late is lost until they arrive.

        >>> from wardwatch.metrics_catalog import METRIC_INDEX, Metric
        >>> hr, spo2 = METRIC_INDEX[Metric.heart_rate], METRIC_INDEX[Metric.spo2]
        >>> lost = SignalLost(stale_after_ms=60_000)
        >>> lost.resize(1)
        >>> events = []
        >>> for s in range(150):  # HR every second for 150 s; the SpO2 probe stops after 30 s
        ...     metrics = [hr, spo2] if s < 30 else [hr]
        ...     lost.update(Round(np.zeros(len(metrics), np.int64), np.array(metrics), np.full(len(metrics), 80.0),
        ...                       np.full(len(metrics), 1000 * s), np.full(len(metrics), np.nan), ["p1"]), events)
        >>> [(e.type.value, e.alert.condition, e.alert.onset // 1000, e.at // 1000) for e in events]
        [('raised', 'signal_lost_spo2', 89, 90)]
    """

    ARRAYS = {"sig_last": ((M,), np.int64, -1), "sig_every": ((M,), np.int64, -1),
              "lost_active": ((M,), np.bool_, False), "lost_onset": ((M,), np.int64, -1)}

    def __init__(self, stale_after_ms: int) -> None:
        super().__init__()
        self.stale_after_ms = stale_after_ms

    def update(self, rnd: Round, events: list) -> None:
        rr, cc, t = rnd.rows, rnd.metrics, rnd.ts
        newer = t > self.sig_last[rr, cc]  # a late reading is no news of the probe
        r, c, tn = rr[newer], cc[newer], t[newer]
        prev = self.sig_last[r, c]
        self.sig_every[r, c] = np.where(prev >= 0, tn - prev, -1)
        self.sig_last[r, c] = tn
        for i in np.flatnonzero(self.lost_active[r, c]):
            self._event(rnd.ids, int(r[i]), int(c[i]), int(tn[i]), AlertEventType.cleared, events)
            self.lost_active[r[i], c[i]] = False
        # The patient's other probes go on: is any streaming one behind them by the timeout?
        rows = np.unique(rr)
        now = self.sig_last[rows].max(axis=1)
        if rnd.arrived is not None:
            # A reading stamped ahead of the clock (ClockAhead's alarm) is not the patient's "now":
            # taken as such, it made every other probe look lost, raised and cleared every second.
            now = np.minimum(now, rnd.arrived + SLACK_MS)
        last = self.sig_last[rows]
        every = self.sig_every[rows]
        lost = (SENSOR_OFF_ALARMS & (last >= 0) & (every > 0) & (every <= self.stale_after_ms // 2)
                & (now[:, None] - last > self.stale_after_ms) & ~self.lost_active[rows])
        for i, c in zip(*np.nonzero(lost)):
            r = int(rows[i])
            self.lost_active[r, c] = True
            self.lost_onset[r, c] = int(last[i, c]) + self.stale_after_ms
            self._event(rnd.ids, r, int(c), int(now[i]), AlertEventType.raised, events)

    def _event(self, ids, r: int, c: int, at: int, kind: AlertEventType, events: list) -> None:
        name = METRIC_NAMES[c]
        text = alarm_texts.signal_lost(name, self.stale_after_ms) if kind is AlertEventType.raised else \
            alarm_texts.sensor_back(name)
        events.append(
            make_event(ids[r], f"signal_lost_{name}", AlertKind.technical, Priority.medium, int(self.lost_onset[r, c]),
                       at, kind, text, {}))
