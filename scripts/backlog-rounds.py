"""How long the engine takes on one patient's flushed backlog (docs/detectors.md, "A flushed
backlog"): each distinct reading time is a round. One call on the whole backlog, then the parts the
worker computes it in (DetectorEngine.split_rounds, detectors.worker.MAX_ROUNDS rounds each), of
which the longest is how long the worker's loop waits at most for its turn.
Usage: .venv/bin/python scripts/backlog-rounds.py"""
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detectors.engine import DetectorEngine  # noqa: E402
from detectors.worker import MAX_ROUNDS  # noqa: E402
from tests.detectors.helpers import columns  # noqa: E402

T0 = 1_700_000_000_000


def ward() -> DetectorEngine:
    engine = DetectorEngine(stale_after_ms=60_000)
    engine.process(columns([f"w{i}" for i in range(1000)], "spo2", np.full(1000, 97.0), np.full(1000, T0)))
    return engine


for k in (2_000, 20_000):
    ts = T0 + 1000 * np.arange(k) + 10_000_000 * k
    backlog = columns("backlog", "heart_rate", np.full(k, 80.0), ts)
    engine = ward()
    t = time.perf_counter()
    engine.process(backlog)
    dt = time.perf_counter() - t
    engine, longest = ward(), 0.0
    parts = engine.split_rounds(backlog, MAX_ROUNDS)
    for part, rows in parts:
        t = time.perf_counter()
        engine.process(part, rows=rows)
        longest = max(longest, time.perf_counter() - t)
    print(f"{k:>6,} readings of one patient: one engine call {dt:.2f} s ({dt / k * 1e3:.2f} ms a round); "
          f"in {len(parts)} parts of {MAX_ROUNDS} rounds, the longest {longest * 1e3:.0f} ms")
