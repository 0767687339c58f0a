"""The one batch protocol every detector follows (after River's one-detector-one-class design,
vectorised: a call handles a whole round of patients at once, not one reading).

* State is per patient and lives in numpy arrays whose first axis is the patient's row in the
  engine's patient table; a class lists them in ``ARRAYS`` (name -> (shape per row, dtype, fill)).
* ``update(rnd)`` takes one :class:`Round` (at most one new reading per patient and metric, as
  column arrays) and learns from it; alarm detectors append the events they raise or clear.
* Score detectors answer ``score(columns)`` on column arrays and keep no hidden state.
* Checkpoints are data, never code: ``checkpoint_arrays()`` names the arrays a state checkpoint
  saves, in binary, for all dirty rows at once (:mod:`detectors.state_records`); state kept
  outside arrays goes through ``extra_state(rows)`` / ``load_extra_state(row, doc)`` (JSON-able,
  per row). ``state_dict(row)`` / ``load_state(row, doc)`` read and write one patient's state as
  JSON (tests compare it; old JSON checkpoints load through it). ``row_arrays()`` lets the engine
  save and roll back a batch.

The engine only orders the detectors; see :mod:`detectors.engine`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def grow(a: np.ndarray, n: int, fill) -> np.ndarray:
    """``a`` with at least ``n`` rows, new rows set to ``fill``."""
    if a.shape[0] >= n:
        return a
    extra = np.full((n - a.shape[0],) + a.shape[1:], fill, dtype=a.dtype)
    return np.concatenate([a, extra])


class RowState:
    """Per-patient numpy state declared in ``ARRAYS``; resizing, checkpoints and rollback for free."""

    ARRAYS: dict[str, tuple[tuple, type, object]] = {}

    def __init__(self) -> None:
        for name, (shape, dtype, fill) in self.ARRAYS.items():
            setattr(self, name, np.full((0,) + self._shape(shape), fill, dtype=dtype))

    def _shape(self, shape: tuple) -> tuple:
        return shape

    def resize(self, n_rows: int) -> None:
        for name, (_, _, fill) in self.ARRAYS.items():
            setattr(self, name, grow(getattr(self, name), n_rows, fill))

    def row_arrays(self):
        """(owner, attribute) of every array indexed by patient row."""
        for name in self.ARRAYS:
            yield self, name

    def checkpoint_arrays(self):
        """(owner, attribute) of every array a state checkpoint saves: all row arrays unless a
        detector keeps one that is rebuilt from elsewhere (the limits, from the limits topic)."""
        yield from self.row_arrays()

    def layout_meaning(self) -> tuple:
        """What the array columns mean beyond their shapes (the limit rules' order): part of the
        checkpoint layout's fingerprint, so a record of another rule set is never read as this one."""
        return ()

    def extra_state(self, rows):
        """Per-row state that is not in arrays, JSON-able, or None when a detector has none."""
        return None

    def load_extra_state(self, row: int, doc) -> None:
        return None

    def state_dict(self, row: int) -> dict:
        return {name: getattr(self, name)[row].tolist() for name in self.ARRAYS}

    def load_state(self, row: int, doc: dict) -> None:
        for name in self.ARRAYS:
            if name in doc:
                arr = getattr(self, name)
                arr[row] = np.asarray(doc[name], dtype=arr.dtype) if arr.ndim > 1 else doc[name]


@dataclass
class Round:
    """One round of a batch as columns: at most one reading per (patient row, metric).

    ``off``, ``valid`` and ``clean`` are filled in by :class:`detectors.filters.SignalFilter`,
    which runs first; the alarm detectors read them."""

    rows: np.ndarray  # patient-table rows
    metrics: np.ndarray  # metric indices (wardwatch.metrics_catalog.METRICS)
    values: np.ndarray
    ts: np.ndarray  # reading time, epoch ms
    quality: np.ndarray  # device signal quality 0..1, NaN unknown
    ids: list[str]  # patient id of each table row
    off: np.ndarray = field(default=None)  # sensor off or disconnected
    valid: np.ndarray = field(default=None)  # neither off nor an artefact: drives alarms
    clean: np.ndarray = field(default=None)  # the value where valid, else NaN
    arrived: int | None = None  # the batch's arrival (wall clock, epoch ms); None: reading time alone
