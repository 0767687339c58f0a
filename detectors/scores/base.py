"""The protocol of score stages (NEWS2, learned risk) inside the detector engine: the rows of a round
and their latest clean values in, a :class:`StageScores` of column arrays out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass
class StageScores:
    rows: np.ndarray  # patient-table rows scored in this call
    scores: dict[str, np.ndarray]  # score name -> float per row (NaN = not scored)
    partial: dict[str, np.ndarray]  # score name -> bool per row (parameters missing)
    alarm_level: np.ndarray  # int8 per row: 0 none, 1 low, 2 medium, 3 high
    alarm_condition: np.ndarray  # object per row: condition name or ""
    reasons: list[list[str]] = field(default_factory=list)  # per row, in words
    # None: scored afresh every round (stored at most every 10 s); else the rows scored afresh in this
    # call (the others repeat their last value): those are stored now, and only those.
    fresh: np.ndarray | None = None


class ScoreStage(Protocol):
    name: str
    reads: tuple  # the metrics it scores from: their probes off or lost hold its alarm (the engine)

    def update(self, rows: np.ndarray, latest: np.ndarray, latest_ts: np.ndarray,
               now_ms: int | np.ndarray) -> StageScores:
        """Score ``rows`` from their latest clean values (rows x METRICS, NaN missing) and times;
        ``now_ms``: per row, the patient's newest reading time (the engine's), or one time for all."""

    def resize(self, n_rows: int) -> None: ...

    def state_dict(self, rows: np.ndarray) -> dict: ...

    def load_state(self, rows: np.ndarray, state: dict) -> None: ...
