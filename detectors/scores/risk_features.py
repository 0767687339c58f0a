"""What the learned risk sees: the six vitals it follows, its history length and the names of its 76
features, in the order of the feature matrix (the model artefact's manifest must list the same)."""

from __future__ import annotations

import numpy as np

from wardwatch.metrics_catalog import METRIC_INDEX, Metric

VITALS = (Metric.heart_rate, Metric.spo2, Metric.temperature, Metric.sbp, Metric.map, Metric.resp_rate)
VCOLS = np.array([METRIC_INDEX[m] for m in VITALS])
H = 12  # hours of history
HOUR_MS = 3_600_000
STALE_MS = 4 * HOUR_MS


def feature_names() -> list[str]:
    v = [m.value for m in VITALS]
    names = [f"{x}" for x in v] + [f"{x}_d1" for x in v] + [f"{x}_d3" for x in v] + [f"{x}_d6" for x in v]
    names += [f"{x}_{s}6" for s in ("mean", "std", "min", "max") for x in v] + [f"{x}_mean12" for x in v]
    names += [f"{x}_count12" for x in v] + ["hours", "news2", "news2_rr", "news2_spo2", "news2_sbp", "news2_pulse",
                                            "news2_temp", "shock_index"]
    names += [f"{x}_z" for x in v] + ["iforest", "trend"]
    return names


BASELINE_H = 6  # a patient's own baseline: the first hours of monitoring
Z_FLOOR = np.array([5.0, 1.0, 0.3, 8.0, 6.0, 2.0])  # smallest spread per vital, so a calm start is not "all anomalies"
