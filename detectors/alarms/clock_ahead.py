"""Clock-ahead technical alarms: a metric's readings are not judged because an earlier one was
stamped in the future."""

from __future__ import annotations

import numpy as np

from wardwatch import alarm_texts
from wardwatch.models import AlertEventType, AlertKind, Priority

from ..protocol import RowState
from .events import make_event
from .sensor_off import METRIC_NAMES, M

SLACK_MS = 5_000  # a reading stamped this far ahead of its arrival is a wrong clock, not network jitter


class ClockAhead(RowState):
    """A medium-priority technical ``clock_ahead_<metric>`` alarm while a metric's readings go
    unjudged because the newest judged one was stamped ahead of the server's clock.

    The detectors judge a metric's readings in time order and take a reading no newer than the last
    one judged as late (a resend, or out of order): stored, never judged. A device clock that jumps
    ahead for one reading (ingest accepts device times up to 120 s ahead, for devices whose clock
    runs fast) therefore left that metric's correctly timed readings unjudged until the clock caught
    up, silently: an SpO2 of 80 % raised nothing for up to two minutes. Now that case says so, from
    the first such reading until the metric's readings are judged again (the alarm then clears).

    Judged on arrival time (the worker's clock, ``now_ms``): the alarm is raised when a reading
    stamped no later than ``SLACK_MS`` after its arrival is not judged because the metric's last
    judged reading lies more than ``SLACK_MS`` after that arrival.

    Works when: the worker's clock is right (NTP) and a device's clock jumps, or is set back after
    running fast. Does not work when: processing offline (``wardwatch score``, no arrival time); a
    device whose clock runs fast steadily is judged normally (each reading is newer than the last)
    and raises nothing, which is correct, and a device whose clock runs slow is judged on its own
    times too.

        >>> from wardwatch.metrics_catalog import METRIC_INDEX, Metric
        >>> spo2 = METRIC_INDEX[Metric.spo2]
        >>> ahead = ClockAhead()
        >>> ahead.resize(1)
        >>> events = []
        >>> now = 1_700_000_000_000
        >>> # SpO2 judged up to 100 s ahead (a clock that jumped); the next reading, stamped right, is not judged
        >>> ahead.not_judged(np.array([0]), np.array([spo2]), np.array([now + 100_000]), now + 1_000, ["p1"], events)
        >>> ahead.judged(np.array([0]), np.array([spo2]), np.array([now + 101_000]), ["p1"], events)
        >>> [(e.type.value, e.alert.condition, e.alert.kind.value) for e in events]
        [('raised', 'clock_ahead_spo2', 'technical'), ('cleared', 'clock_ahead_spo2', 'technical')]
    """

    ARRAYS = {"ahead_active": ((M,), np.bool_, False), "ahead_onset": ((M,), np.int64, -1)}

    def not_judged(self, rows: np.ndarray, metrics: np.ndarray, last_ts: np.ndarray, now_ms: int, ids,
                   events: list) -> None:
        """Readings (row, metric) left unjudged behind ``last_ts``, the metric's last judged time,
        which lies ahead of ``now_ms``: raise once per (row, metric)."""
        if not len(rows):
            return
        pairs, first = np.unique(rows * M + metrics, return_index=True)
        for pair, i in zip(pairs.tolist(), first.tolist()):
            r, c = divmod(pair, M)
            if self.ahead_active[r, c]:
                continue
            self.ahead_active[r, c] = True
            self.ahead_onset[r, c] = now_ms
            text = alarm_texts.clock_ahead(METRIC_NAMES[c], int(last_ts[i]) - now_ms)
            events.append(make_event(ids[r], f"clock_ahead_{METRIC_NAMES[c]}", AlertKind.technical, Priority.medium,
                                     now_ms, now_ms, AlertEventType.raised, text, {}))

    def judged(self, rows: np.ndarray, metrics: np.ndarray, ts: np.ndarray, ids, events: list) -> None:
        """Readings judged (in time order again): their metric's alarm, if any, clears."""
        if not len(rows) or not self.ahead_active.any():
            return
        for i in np.flatnonzero(self.ahead_active[rows, metrics]):
            r, c = int(rows[i]), int(metrics[i])
            if not self.ahead_active[r, c]:
                continue  # a second reading of the same metric in this batch
            self.ahead_active[r, c] = False
            events.append(make_event(ids[r], f"clock_ahead_{METRIC_NAMES[c]}", AlertKind.technical, Priority.medium,
                                     int(self.ahead_onset[r, c]), int(ts[i]), AlertEventType.cleared,
                                     alarm_texts.clock_back(METRIC_NAMES[c]), {}))
