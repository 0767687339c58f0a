"""Device silence: a technical alarm when a patient's readings stop arriving."""

from __future__ import annotations

import numpy as np

from wardwatch import alarm_texts
from wardwatch.models import AlertEventType, AlertKind, Priority

from ..protocol import Round, RowState, grow
from .events import make_event


class DeviceSilence(RowState):
    """A medium-priority technical ``device_silent`` alarm when no new reading has come from a patient
    for ``stale_after_ms`` (wall-clock time of arrival, checked by :meth:`tick`), cleared by the next
    new one.
    Keeps each patient's newest reading time (``last_seen``), which the engine's scores and
    snapshots run on. IEC 60601-1-8 technical alarm ("loss of monitoring"); the timeout is
    WardWatch's ``WARDWATCH_STALE_AFTER_S``.

    Works when: devices report at a steady rate (1 Hz or each minute). Does not work when: vitals
    are charted hours apart (set the timeout above the charting interval, or every patient is
    "silent"); a device that keeps sending zeros or garbage is not silent (that is the sensor-off
    alarm); it never calls a silent patient calm. Never raised for a patient not yet seen.

    The shipped CinC 2019 demo slice, replayed at one row per hour and checked three hours after
    each patient's last row::

        >>> import numpy as np, pandas as pd
        >>> from importlib.resources import files
        >>> df = pd.read_csv(files("wardwatch") / "data" / "cinc2019_demo.csv.gz")
        >>> last_hour = df.groupby("patient")["ICULOS"].max().to_numpy()
        >>> ids = list(df["patient"].unique())
        >>> silence = DeviceSilence(stale_after_ms=2 * 3600_000)
        >>> silence.resize(len(ids))
        >>> rows = np.arange(len(ids))
        >>> silence.update(Round(rows, np.zeros(len(ids), int), np.zeros(len(ids)), last_hour * 3600_000,
        ...                      np.full(len(ids), np.nan), ids))
        >>> len(silence.tick(int(np.median(last_hour) + 3) * 3600_000)), len(ids)
        (8, 16)
    """

    ARRAYS = {"last_seen": ((), np.int64, -1), "silent_active": ((), np.bool_, False),
              "silent_onset": ((), np.int64, -1)}

    def __init__(self, stale_after_ms: int = 60_000) -> None:
        super().__init__()
        self.stale_after_ms = stale_after_ms
        self.ids: list[str] = []
        # Per row, the wall-clock time new data last arrived: not checkpointed (a wall-clock time of
        # this process; after a restore the reading time stands for it until new data arrives).
        self.last_arrival = np.empty(0, np.int64)

    def resize(self, n_rows: int) -> None:
        super().resize(n_rows)
        self.last_arrival = grow(self.last_arrival, n_rows, -1)

    def row_arrays(self):
        yield from super().row_arrays()
        yield self, "last_arrival"

    def checkpoint_arrays(self):
        yield from super().row_arrays()

    def update(self, rnd: Round) -> None:
        """Readings arrived: the newest reading time of each patient moves on."""
        self.ids = rnd.ids
        np.maximum.at(self.last_seen, rnd.rows, rnd.ts)

    def clear(self, rows: np.ndarray, before: np.ndarray, ids: list[str], now_ms: int | None = None) -> list:
        """After a batch's rounds: the rows whose newest reading time moved past ``before`` (what it was
        before the batch) had new data, which arrived at wall-clock ``now_ms`` (None: the engine runs
        on reading time alone, e.g. offline, and the reading time stands for it), and a device that
        had gone silent is back. A late reading (older than the newest one) is no news from the monitor."""
        new = rows[self.last_seen[rows] > before]
        self.last_arrival[new] = self.last_seen[new] if now_ms is None else now_ms
        events = []
        for r in new[self.silent_active[new]]:
            t = int(self.last_seen[r])
            events.append(make_event(ids[r], "device_silent", AlertKind.technical, Priority.medium,
                                     int(self.silent_onset[r]), t, AlertEventType.cleared, alarm_texts.device_back(),
                                     {}))
            self.silent_active[r] = False
        return events

    def tick(self, now_ms: int, ids: list[str] | None = None) -> list:
        """Devices silent for longer than ``stale_after_ms`` at wall-clock ``now_ms`` raise."""
        ids = self.ids if ids is None else ids
        n = len(ids)
        # Silent: no new data arrived (wall clock) for the timeout, so that a monitor whose clock is
        # behind is not "silent"; the reading time for a patient whose arrival is not known. The
        # onset stays on reading time, so a replay raises the very same alert.
        seen = self.last_seen[:n]
        arrived = np.where(self.last_arrival[:n] >= 0, self.last_arrival[:n], seen)
        silent = (seen >= 0) & (now_ms - arrived > self.stale_after_ms) & ~self.silent_active[:n]
        events = []
        for r in np.flatnonzero(silent):
            onset = int(seen[r] + self.stale_after_ms)
            self.silent_active[r] = True
            self.silent_onset[r] = onset
            events.append(make_event(ids[r], "device_silent", AlertKind.technical, Priority.medium, onset, onset,
                                     AlertEventType.raised,
                                     alarm_texts.device_silent(self.stale_after_ms),
                                     {}))
        return events
