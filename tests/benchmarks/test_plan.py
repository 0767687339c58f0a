"""`wardwatch bench plan`: the sizing rows follow their formulas from the figures the benchmarks wrote,
and a missing figure is named instead of guessed."""

from __future__ import annotations

import argparse
import json
import math

from benchmarks import plan


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    plan.add_arguments(p)
    return p.parse_args(list(argv))


def _rows(a, f) -> dict[str, str]:
    return {name: value for name, _formula, value in plan.plan(a, f)}


def test_the_plan_sizes_from_the_measured_figures(tmp_path):
    (tmp_path / "latest.json").write_text(json.dumps({"wardwatch": {"readings_per_s": 40_000}, "setup": {"cpus": 2}}))
    (tmp_path / "detectors.json").write_text(json.dumps({"readings_per_s": 150_000}))
    (tmp_path / "ingest.json").write_text(json.dumps({"http_readings_per_s": 45_000, "raw_aiokafka_readings_per_s": 250_000}))
    (tmp_path / "alerts.json").write_text(json.dumps({"runs": [{"events_per_s": 500, "clients": 1000, "p99_ms": 80}]}))
    a = _args("--results", str(tmp_path), "--hospitals", "10", "--beds", "1000")
    found, missing = plan.figures(tmp_path)
    assert not missing
    rows = _rows(a, found)
    D = 10 * 1000 * a.vitals * a.headroom
    assert rows["design rate D"] == f"{D:,.0f}"
    assert rows["cores, whole stack"] == f"{math.ceil(D / (40_000 / 2)):,}"
    assert rows["detector processes"] == f"{max(2, math.ceil(D / 150_000)):,}"
    assert rows["InfluxDB field writes/s"] == f"{D * a.fields_per_reading:,.0f}"


def test_a_missing_figure_is_named_with_the_command_that_measures_it(tmp_path):
    found, missing = plan.figures(tmp_path)
    assert "engine_readings_per_s" in missing and "bench detectors" in missing["engine_readings_per_s"]
    rows = _rows(_args(), found)
    assert rows["detector processes"].startswith("needs engine_readings_per_s")
