"""The pipeline bench's table says how each lag was counted."""

from benchmarks.pipeline import _table


def _row(**kw) -> dict:
    return {"readings_per_s": 100_000, "sustained_readings_per_s": 29_000, "offered_readings_per_s": 30_000,
            "lag_at_end": 1_234, "p50_ms": 50.0, "p99_ms": 200.0, "p999_ms": 300.0, "max_ms": 310.0,
            "samples": 300, "latency_at": "websocket", **kw}


def test_a_lag_counted_by_the_workers_is_not_marked():
    table = _table({"wardwatch": _row(lag_counted_by="workers"), "quixstreams": _row()})
    assert "*" not in table


def test_a_wardwatch_lag_that_fell_back_to_the_committed_one_is_marked_and_explained():
    table = _table({"wardwatch": _row(lag_counted_by="committed"), "quixstreams": _row()})
    line = next(r for r in table.splitlines() if r.startswith("wardwatch"))
    assert "1,234* " in line
    assert table.splitlines()[-1].startswith("*: a worker did not answer")
    # The columns stay where the header puts them.
    assert len(line) == len(next(r for r in table.splitlines() if r.startswith("quixstreams")))
