"""Device silence: a technical alarm when a patient's readings stop arriving."""

from __future__ import annotations

import numpy as np

from wardwatch import alarm_texts
from wardwatch.models import AlertEventType, AlertKind, Priority

from ..protocol import Round, RowState
from .events import make_event


class DeviceSilence(RowState):
    """A medium-priority technical ``device_silent`` alarm when no reading has come from a patient for
    ``stale_after_ms`` (wall-clock time, checked by :meth:`tick`), cleared by the next reading.
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

    def update(self, rnd: Round) -> None:
        """Readings arrived: the newest reading time of each patient moves on."""
        self.ids = rnd.ids
        np.maximum.at(self.last_seen, rnd.rows, rnd.ts)

    def clear(self, rows: np.ndarray, ids: list[str]) -> list:
        """Readings from a device that had gone silent clear its alarm (once per batch, after its
        rounds). ``rows``: the rows that had readings in the batch. Only a reading newer than the
        last one before the silence means the device is back: a late one (a gateway forwarding an
        hour-old reading of another metric) leaves the alarm raised."""
        events = []
        back = self.silent_active[rows] & (self.last_seen[rows] > self.silent_onset[rows] - self.stale_after_ms)
        for r in rows[back]:
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
        seen = self.last_seen[:n]
        silent = (seen >= 0) & (now_ms - seen > self.stale_after_ms) & ~self.silent_active[:n]
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
