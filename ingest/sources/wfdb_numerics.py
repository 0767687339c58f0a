"""MIMIC-II bedside-monitor numerics in WFDB format (read with the ``wfdb`` package), 1 sample/min.

A value of 0 (or NaN) means the sensor was off: it is replayed as such, a technical condition.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import wfdb

from wardwatch.metrics_catalog import Metric

from . import M, Track, column

SIGNALS = {"HR": Metric.heart_rate, "PULSE": Metric.pulse_rate, "SpO2": Metric.spo2, "RESP": Metric.resp_rate,
           "ABPSys": Metric.sbp, "ABPDias": Metric.dbp, "ABPMean": Metric.map}
NBP = {"NBPSys": Metric.sbp, "NBPDias": Metric.dbp, "NBPMean": Metric.map}


def track(record_path: Path | str, patient: str, device: str | None = None) -> Track:
    rec = wfdb.rdrecord(str(record_path))
    n = rec.p_signal.shape[0]
    vals = np.full((n, M), np.nan)
    names = list(rec.sig_name)
    for name, metric in SIGNALS.items():
        if name in names:
            vals[:, column(metric)] = rec.p_signal[:, names.index(name)]
    for name, metric in NBP.items():  # cuff pressure where there is no arterial line
        if name in names and np.isnan(vals[:, column(metric)]).all():
            vals[:, column(metric)] = rec.p_signal[:, names.index(name)]
    t = np.arange(n) * (1.0 / float(rec.fs))
    return Track(patient=patient, device=device or f"monitor-{patient}", t_s=t, values=vals)
