"""What the chart is drawn from: normal ranges that are NEWS2's score-0 bands, alarm episodes,
the raw points the filters did not pass, and the limits in force."""

from __future__ import annotations

import numpy as np
from hypothesis import given, strategies as st

from alerts.history import NORMAL_RANGE, episodes, limits_view, split_marks
from detectors.scores.news2 import news2
from wardwatch.metrics_catalog import METRIC_INDEX, METRICS, Metric

NEWS_PARAM = {Metric.resp_rate.value: 0, Metric.spo2.value: 1, Metric.sbp.value: 2, Metric.heart_rate.value: 3,
              Metric.temperature.value: 4}


def points(metric: str, value: float) -> float:
    latest = np.full((1, len(METRICS)), np.nan)
    latest[0, METRIC_INDEX[Metric(metric)]] = value
    return news2(latest)[2][0, NEWS_PARAM[metric]]


def test_the_normal_ranges_are_the_news2_score_0_bands():
    for metric, (lo, hi) in NORMAL_RANGE.items():
        if metric not in NEWS_PARAM:
            continue
        assert points(metric, lo) == 0 and points(metric, hi) == 0, metric
        step = 0.1 if metric == Metric.temperature.value else 1
        assert points(metric, lo - step) > 0, metric
        if metric != Metric.spo2.value:  # SpO2 scores 0 up to 100 %
            assert points(metric, hi + step) > 0, metric


def test_an_episode_runs_from_raise_to_clear_at_its_highest_priority():
    rows = [{"time": 1000, "alert_id": "a", "condition": "spo2_low", "event": "raised", "priority": "medium", "message": "m"},
            {"time": 5000, "alert_id": "a", "condition": "spo2_low", "event": "escalated", "priority": "high"},
            {"time": 9000, "alert_id": "a", "condition": "spo2_low", "event": "cleared", "priority": "high"},
            {"time": 7000, "alert_id": "b", "condition": "sensor_off_spo2", "event": "raised", "priority": "medium"}]
    eps = episodes(rows)
    assert [(e["alert_id"], e["start"], e["end"], e["priority"], e["title"]) for e in eps] == [
        ("a", 1000, 9000, "high", "SpO₂ low"), ("b", 7000, None, "medium", "SpO₂ probe off")]


@given(st.lists(st.tuples(st.integers(0, 10**6), st.booleans()), unique_by=lambda p: p[0], max_size=50))
def test_marks_are_exactly_the_raw_points_without_a_clean_value(readings):
    raw = sorted([[t, float(t % 97)] for t, _ in readings])
    clean = [[t, v] for (t, v), (_, passed) in zip(raw, sorted(readings)) if passed]
    marks = split_marks(raw, clean)
    assert sorted(marks + clean) == raw


def test_the_limits_in_force_show_the_override_and_the_default():
    rows = {r["condition"]: r for r in limits_view({"spo2": {"low": 88}, "disabled": {"hr_high": 4_102_444_800_000}})}
    assert rows["spo2_low"]["value"] == 88 and rows["spo2_low"]["default"] == 90
    assert rows["spo2_critical"]["value"] == 85  # keeps its distance below the main limit: min(85, 88 - 3)
    assert rows["hr_high"]["value"] is None and rows["hr_high"]["disabled_until"] == 4_102_444_800_000
    assert rows["rr_low"]["value"] == rows["rr_low"]["default"] == 8


def test_the_vendored_files_are_the_pinned_releases_named_in_their_checksums():
    import hashlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for folder, first in ((root / "alerts" / "static" / "vendor", "uPlot.iife.min.js"), (Path(__file__).parent / "vendor", "axe.min.js")):
        sums = dict(reversed(line.split()) for line in (folder / "SHA256SUMS").read_text().splitlines())
        assert first in sums
        for name, digest in sums.items():
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
        version = (folder / "VERSION").read_text().split()[1]
        assert f"v{version}" in (folder / first).read_text()[:200], (first, version)


async def test_the_chart_reads_raw_and_clean_series_as_the_engine_writes_them():
    """read_vitals on points written by the engine's own line builder (one point per patient-time):
    the sensor-off zero and the artefact stay raw marks, never a clean value, and a window averages
    the clean field on its own."""
    import numpy as np

    from alerts.history import read_vitals
    from wardwatch.embedded_store import EmbeddedStore
    from wardwatch.lineprotocol import VitalsLines
    from wardwatch.metrics_catalog import METRICS

    names = [m.value for m in METRICS]
    readings = [(1000, "heart_rate", 72.0, 72.0), (1000, "spo2", 0.0, None), (2000, "heart_rate", 250.0, None),
                (2000, "spo2", 97.0, 97.0)]
    nan = float("nan")
    lines = VitalsLines().build(np.array(["p1"] * 4, object), np.array([names.index(m) for _, m, _, _ in readings]),
                                np.array([v for _, _, v, _ in readings]), np.array([nan if c is None else c for *_, c in readings]),
                                np.full(4, 0.9), np.array(["mon-1"] * 4, object), np.array([t for t, *_ in readings]))
    assert len(lines) == 2, "one point per patient-time"
    store = EmbeddedStore()
    store.write_lines_sync(lines)
    got = await read_vitals(store, "p1", 0, 60_000, None)
    assert got["spo2"] == {"raw": [[1000, 0.0], [2000, 97.0]], "clean": [[2000, 97.0]]}
    assert got["heart_rate"] == {"raw": [[1000, 72.0], [2000, 250.0]], "clean": [[1000, 72.0]]}
    windowed = await read_vitals(store, "p1", 0, 60_000, 10_000)
    assert [v for _, v in windowed["spo2"]["clean"]] == [97.0]
