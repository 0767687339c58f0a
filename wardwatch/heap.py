"""The garbage collector of a long-running batch worker (issue #17): settle the heap after start-up,
and measure each collection's pause.

Why: CPython starts a young collection every 700 net container allocations, and every 10th/100th of
those walks the older generations too. A detector worker holds every imported module's objects
(aiokafka, pydantic, numpy, the engine's tables) and allocates tens of thousands of containers per
batch (aiokafka's ConsumerRecord objects, the snapshots' dicts and lists), so collections came
hundreds of times per batch and the full ones walked the whole start-up heap: about a third of the
bench loop's CPU time. None of that heap is garbage, so

* ``settle()`` freezes it (``gc.freeze``: moved to the permanent generation, never walked again),
* and raises the young threshold so that a batch's short-lived allocations are walked a few
  times per batch rather than hundreds. Cycles are still collected; a pause grows to a few ms
  (young) or tens of ms (older), next to a batch that takes hundreds of ms.

``GcPauses`` times every collection through ``gc.callbacks`` (wall-clock, per generation), for the
worker's /metrics.
"""

from __future__ import annotations

import gc
import time
from typing import Callable

YOUNG_THRESHOLD = 10_000  # container allocations between young collections (CPython's default: 700)


def settle(young_threshold: int = YOUNG_THRESHOLD) -> None:
    """Collect once, freeze what is left (it lives as long as the process) and raise the young
    threshold. Call it once start-up is done; calling it again freezes what came since."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(max(young_threshold, 1), older, oldest)


class GcPauses:
    """Calls ``observe(generation, seconds)`` after every collection while installed."""

    def __init__(self, observe: Callable[[int, float], None]) -> None:
        self.observe = observe
        self._start = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.observe(info["generation"], time.perf_counter() - self._start)

    def install(self) -> "GcPauses":
        if self not in gc.callbacks:
            gc.callbacks.append(self)
        return self

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)
