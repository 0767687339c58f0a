"""The ``quixstreams_store`` peer's InfluxDB sink against the real InfluxDB: what it is given at a
checkpoint is stored, in requests of WardWatch's batch size, and a failed write is backpressure
(Quix Streams then replays from the last commit), never a lost point."""

from __future__ import annotations

import pytest
from quixstreams.sinks import SinkBackpressureError

from benchmarks.pipeline.influx_sink import InfluxLineSink
from wardwatch.lineprotocol import score_line, vitals_line
from wardwatch.models import now_ms
from wardwatch.store import InfluxStore


def _add(sink: InfluxLineSink, offset: int, lines: list[str], partition: int = 0) -> None:
    sink.add(value=lines, key=b"k", timestamp=0, headers=[], topic="readings", partition=partition, offset=offset)


def test_a_flush_stores_every_reading_and_score_it_was_given(settings):
    settings = settings.model_copy(update={"influx_batch_size": 7})  # several requests per partition
    sink = InfluxLineSink(settings)
    sink.setup()
    t0 = now_ms() - 60_000
    for i in range(20):
        lines = [vitals_line("p1", "spo2", 90.0 + i % 5, "ox-1", 90.0 + i % 5, None, t0 + 1000 * i)]
        if i % 10 == 0:
            lines.append(score_line("p1", "news2", float(i % 4), True, "spo2 +1", t0 + 1000 * i))
        _add(sink, i, lines, partition=i % 2)
    sink.flush()
    store = InfluxStore(settings)
    try:
        vitals = store.query_sync(f'from(bucket: "{settings.influx_bucket}") |> range(start: -5m)'
                                  ' |> filter(fn: (r) => r._measurement == "vitals" and r._field == "spo2")')
        scores = store.query_sync(f'from(bucket: "{settings.influx_bucket}") |> range(start: -5m)'
                                  ' |> filter(fn: (r) => r._measurement == "scores" and r._field == "value")')
    finally:
        store.close()
    assert sorted((int(r["_time"].timestamp() * 1000) - t0, r["_value"]) for r in vitals) == \
        [(1000 * i, 90.0 + i % 5) for i in range(20)]
    assert sorted(r["_value"] for r in scores) == [0.0, 2.0]
    assert sink.points_written == 22


def test_a_write_that_fails_is_backpressure(settings):
    from devservices import free_port

    dead = settings.model_copy(update={"influx_url": f"http://127.0.0.1:{free_port()}"})
    sink = InfluxLineSink(dead)
    with pytest.raises(ConnectionError):
        sink.setup()  # fails loud at start
    sink.store = InfluxStore(dead, timeout_ms=2_000)
    _add(sink, 0, [vitals_line("p1", "spo2", 97.0, "ox-1", 97.0, None, now_ms())])
    with pytest.raises(SinkBackpressureError):
        sink.flush()
    assert sink.points_written == 0
