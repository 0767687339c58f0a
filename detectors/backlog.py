"""The rows of a flushed backlog that the worker has not computed yet (detectors/worker.py).

A gateway that flushes hours of one patient's readings makes thousands of rounds (one per reading
time, about half a millisecond each), and a fetch is computed in parts of ``MAX_ROUNDS`` rounds
(:meth:`~detectors.engine.DetectorEngine.split_rounds`). The worker computes parts for
``PART_BUDGET_S`` and then fetches again, keeping the rest here: the next fetch's rows of the
patients held here join them behind their own (a patient's order is kept), everyone else's are
computed at once, so the other patients' alarms do not wait for the backlog.

The offsets of the partitions whose rows are held wait here too (a later fetch's offset of such a
partition as well: committing it would cover the held rows), so a commit never covers a row not yet
computed; the other partitions' offsets move on, and checkpoints go on being taken. A checkpoint
taken meanwhile saves the held patients' state ahead of their committed offsets: a worker restarted
from it replays those rows, which the engine then finds already applied (a reading not after the
patient's last one of its metric is late and changes nothing), so nothing is applied twice
(tests/detectors/test_worker_stateful.py runs its sequences with a backlog held after every part)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wardwatch.columns import ReadingColumns

# Compute a backlog's parts for this long, then fetch again (at least one part a fetch).
PART_BUDGET_S = 0.2


@dataclass
class Backlog:
    cols: ReadingColumns
    offsets: dict = field(default_factory=dict)  # the held fetches' ends, partition -> offset
    patients: np.ndarray = field(init=False)  # whose rows are held (sorted ids), kept with the rows

    def __post_init__(self) -> None:
        self.patients = np.unique(self.cols.patient.astype(str))

    def keep(self, cols: ReadingColumns, offsets: dict) -> None:
        """Hold more rows (already in the patients' order) and the offsets that must wait for them."""
        if len(cols):
            self.cols = ReadingColumns.concat([self.cols, cols])
            self.patients = np.union1d(self.patients, cols.patient.astype(str))
        for tp, end in offsets.items():
            self.offsets[tp] = max(end, self.offsets.get(tp, end))

    def hold(self, cols: ReadingColumns, tp, offsets: dict) -> ReadingColumns:
        """Take one partition's new rows of the patients held here (behind theirs), and that
        partition's offset out of ``offsets`` if it has rows held; the other rows are returned, to be
        computed now."""
        held = np.isin(cols.patient.astype(str), self.patients)
        if held.any() or tp in self.offsets:
            self.keep(cols.take(held), {tp: offsets.pop(tp)} if tp in offsets else {})
        return cols.take(~held) if held.any() else cols
