"""Readings on the wrong partition, and where they belong.

A patient's state lives in the worker that holds the patient's partition: murmur2 of the patient id,
as every producer of ours (and Kafka's Java client, keyed by the patient) computes it. A Kafka client
that is not ours may key a reading by its device, by nothing (round robin), or choose a partition
itself. Its readings would then reach workers that do not hold the patient, and the patient's state
would split between them: trends on part of the data, an alarm raised by one worker and never cleared
by the other. Such a reading is therefore sent on, keyed by its patient (so to the patient's
partition), and not processed where it landed; the worker commits past it only once Kafka has the
copy, so it is never lost, and the copy is processed by the worker that holds the patient.

What is checked is the decoded reading's patient (its body), never the record's key: a reading goes
where its patient lives. A record the decoder rejects is dead-lettered with its reason wherever it
landed; a reading on the right partition under another key stays (its copies dedupe by id).
"""

from __future__ import annotations

from itertools import repeat
from typing import Sequence

import numpy as np

from wardwatch.kafka import partition_for


class Routes:
    """Each patient's partition (murmur2 of its id), cached: the same patients come back every second."""

    MAX_PATIENTS = 1_000_000  # beyond it (ids that are not patients) the cache starts again

    def __init__(self) -> None:
        self._home: dict[str, int] = {}
        self._partitions: tuple[int, ...] = ()

    def away(self, patients: np.ndarray, partition: int, partitions: Sequence[int]) -> np.ndarray:
        """A mask of the ``patients`` (one per reading, as received on ``partition``) whose partition is
        another: ``partitions``, the topic's partition ids."""
        partitions = tuple(partitions)
        if partitions != self._partitions or len(self._home) > self.MAX_PATIENTS:
            self._home, self._partitions = {}, partitions  # a new partition count is a new layout
        home = self._home
        where = np.fromiter(map(home.get, patients, repeat(-1)), np.int64, len(patients))
        for i in np.flatnonzero(where < 0).tolist():  # patients not seen yet
            p = patients[i]
            where[i] = home[p] = partitions[partition_for(p.encode(), len(partitions))]
        return where != partition

    def is_away(self, patient: str, partition: int, partitions: Sequence[int]) -> bool:
        return bool(self.away(np.array([patient], object), partition, partitions)[0])
