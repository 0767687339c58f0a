"""Score a CinC 2019 file offline through the live worker's detector engine (``wardwatch score``).

Writes one row per input row: ``patient, ICULOS, risk, news2, alert, priority, no_data``; ``alert`` is 1
while a medium- or high-priority physiological alarm is active for that patient at that hour. Every
row has a risk: before a patient's first vital sign it is the prior (the training patients' base
rate at that hour of stay) and ``no_data`` is 1, so a reader shows "no data", never "low risk". The
SepsisLabel column, if present, is never read.
"""

from __future__ import annotations

import csv
import time

import numpy as np


def score_frame(df):
    from detectors.early_warning.replay import replay
    from detectors.engine import DetectorEngine

    # The worker's engine with the worker's default stages: NEWS2 shown, the learned risk alarms.
    engine = DetectorEngine(stale_after_ms=10**15)
    return replay(df, engine)


def score_file(input: str, output: str) -> int:
    from detectors.early_warning.replay import read_cinc

    t0 = time.time()
    res = score_frame(read_cinc(input))
    with open(output, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["patient", "ICULOS", "risk", "news2", "alert", "priority", "no_data"])
        for row in zip(res.patient, res.iculos, res.risk, res.news2, res.alert, res.priority, res.no_data):
            p, h, r, n, a, pr, nd = row
            w.writerow([p, int(h), "" if np.isnan(r) else f"{r:.4f}", "" if np.isnan(n) else int(n), int(a), pr, int(nd)])
    print(f"scored {len(res.patient)} rows of {len(set(res.patient.tolist()))} patients in {time.time() - t0:.0f}s")
    return 0
