"""``wardwatch bench detectors`` times each build several times and reports the best, beside the median."""

import argparse
import json

from benchmarks import detectors


def test_the_bench_reports_each_builds_best_of_its_repeats_and_the_median_beside_it(capsys):
    args = argparse.Namespace(patients=200, seconds=3, naive_messages=600, repeat=3, json=True)
    assert detectors.run(args) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["repeat"] == 3 and 0 < res["readings"] <= 200 * 3 * 3  # 3 vitals, 3 s (a few dropped)
    assert res["readings_per_s"] >= res["median_readings_per_s"] > 0
    assert res["naive_readings_per_s"] >= res["median_naive_readings_per_s"] > 0
    assert res["speedup"] == round(res["readings_per_s"] / res["naive_readings_per_s"], 1)


def test_every_repeat_starts_from_a_fresh_engine_so_each_does_the_same_work():
    batches = detectors.messages(100, 5)
    _, _, first = detectors.time_engine(batches)
    _, _, second = detectors.time_engine(batches)
    # Each repeat's engine is new (one that kept the last one's state would take every reading as a
    # repeat, stored but not driving alarms: less work, a flattering time).
    assert first is not second and len(first.table) == len(second.table) == 100
