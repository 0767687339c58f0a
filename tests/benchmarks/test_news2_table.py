"""The Quix Streams peer's per-patient NEWS2 gives exactly what the engine's vectorised ``news2`` gives."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from benchmarks.pipeline import news2_table
from detectors.scores.news2 import LazyReasons, news2
from wardwatch.metrics_catalog import CATALOG, METRIC_INDEX, METRICS, Metric

SCORED = (Metric.heart_rate, Metric.pulse_rate, Metric.spo2, Metric.resp_rate, Metric.temperature, Metric.sbp)


def value(m: Metric):
    info = CATALOG[m]
    return st.integers(int(info.low * 10), int(info.high * 10)).map(lambda i: i / 10)


LATEST = st.fixed_dictionaries({}, optional={m.value: value(m) for m in SCORED})


@settings(max_examples=300, deadline=None)
@given(LATEST)
def test_a_patients_score_and_reasons_are_the_vectorised_ones(latest):
    row = np.full((1, len(METRICS)), np.nan)
    for metric, v in latest.items():
        row[0, METRIC_INDEX[Metric(metric)]] = v
    total, partial, parts = news2(row)
    got_total, got_partial, got_parts = news2_table.score(latest)
    assert (got_total, got_partial) == (float(total[0]), bool(partial[0]))
    assert news2_table.reasons(got_parts) == LazyReasons(parts)[0]


def test_a_desaturated_tachypnoeic_patient_scores_six():
    total, _, parts = news2_table.score({"heart_rate": 80.0, "spo2": 85.0, "resp_rate": 25.0})
    assert total == 6.0  # SpO2 <= 91: 3, RR >= 25: 3, pulse 80: 0
    assert news2_table.reasons(parts) == ["respiration +3", "spo2 +3", "missing: systolic_bp, temperature"]
