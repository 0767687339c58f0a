"""How long one engine call takes on one patient's flushed backlog (docs/detectors.md, "A flushed
backlog"): each distinct reading time is a round. Usage: .venv/bin/python scripts/backlog-rounds.py"""
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detectors.engine import DetectorEngine  # noqa: E402
from tests.detectors.helpers import columns  # noqa: E402

T0 = 1_700_000_000_000
engine = DetectorEngine(stale_after_ms=60_000)
engine.process(columns([f"w{i}" for i in range(1000)], "spo2", np.full(1000, 97.0), np.full(1000, T0)))  # a ward
for k in (2_000, 20_000):
    ts = T0 + 1000 * np.arange(k) + 10_000_000 * k
    t = time.perf_counter()
    engine.process(columns("backlog", "heart_rate", np.full(k, 80.0), ts))
    dt = time.perf_counter() - t
    print(f"{k:>6,} readings of one patient in one engine call: {dt:.2f} s ({dt / k * 1e3:.2f} ms a round)")
