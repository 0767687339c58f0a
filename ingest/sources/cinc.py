"""CinC 2019 sepsis-challenge CSV (gzip or plain): one row per patient-hour; SepsisLabel is never read."""

from __future__ import annotations

import csv
import gzip
from collections import defaultdict
from pathlib import Path

import numpy as np

from wardwatch.metrics_catalog import Metric

from . import M, Track, column

COLUMNS = {"HR": Metric.heart_rate, "O2Sat": Metric.spo2, "Temp": Metric.temperature, "SBP": Metric.sbp,
           "MAP": Metric.map, "DBP": Metric.dbp, "Resp": Metric.resp_rate, "EtCO2": Metric.etco2}


def open_text(path: Path | str):
    path = Path(path)
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", newline="") if gz else open(path, newline="")


def read_rows(path: Path | str) -> dict[str, list[tuple[int, np.ndarray]]]:
    """patient -> [(ICULOS, values per metric)], in file order."""
    out: dict[str, list] = defaultdict(list)
    with open_text(path) as f:
        for row in csv.DictReader(f):
            v = np.full(M, np.nan)
            for name, metric in COLUMNS.items():
                cell = row.get(name, "")
                if cell not in ("", "NaN", "nan", None):
                    v[column(metric)] = float(cell)
            out[row["patient"]].append((int(float(row["ICULOS"])), v))
    return out


def tracks(path: Path | str, limit: int | None = None) -> list[Track]:
    result = []
    for patient, rows in read_rows(path).items():
        t = np.array([(r[0] - 1) * 3600.0 for r in rows])
        vals = np.array([r[1] for r in rows])
        # Charted vitals: carry the last value forward until the next charting, as a ward chart is
        # read, but not for more than four hours (older than that it is unknown, not normal).
        rows_i = np.arange(len(vals))
        for c in range(M):
            col = vals[:, c]
            last = np.where(~np.isnan(col), rows_i, -1)
            np.maximum.accumulate(last, out=last)
            fresh = (last >= 0) & (rows_i - last <= 4)
            vals[:, c] = np.where(fresh, col[np.maximum(last, 0)], np.nan)
        result.append(Track(patient=patient, device=f"chart-{patient}", t_s=t, values=vals))
        if limit and len(result) >= limit:
            break
    return result
