"""A Quix Streams sink for InfluxDB 2's write API (Quix Streams' own ``InfluxDB3Sink`` speaks only
InfluxDB 3), for the ``quixstreams_store`` peer of the pipeline benchmark.

Each record's value is a list of line-protocol lines. Quix Streams calls :meth:`flush` at every
checkpoint and commits the offsets only when every sink flushed: the peer stores what it consumed
before moving on, the guarantee WardWatch's worker gives. The writer *is* WardWatch's
(:class:`wardwatch.store.InfluxStore`), so the client settings and the batch size are the same by
construction: influxdb-client's synchronous write API, millisecond precision, no gzip, a 30 s
timeout, ``WARDWATCH_INFLUX_BATCH_SIZE`` lines a request. A failed write is backpressure: Quix
Streams drops the batch, pauses the partitions and replays them from the last commit, so a
reading is never lost (WardWatch retries its write; both keep the offsets until the points are stored).
"""

from __future__ import annotations

import logging

from quixstreams.sinks import BatchingSink, SinkBackpressureError, SinkBatch

from wardwatch.settings import Settings
from wardwatch.store import InfluxStore

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1.0


class InfluxLineSink(BatchingSink):
    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self.store: InfluxStore | None = None
        self.points_written = 0

    def setup(self) -> None:
        self.store = InfluxStore(self.settings)
        if not self.store.ping():
            raise ConnectionError(f"InfluxDB at {self.settings.influx_url} does not answer")
        self.store.ensure_bucket()

    def write(self, batch: SinkBatch) -> None:
        lines = [line for item in batch for line in item.value]
        if not lines:
            return
        try:
            self.store.write_lines_sync(lines)
        except Exception as exc:  # network errors, 5xx, timeouts: replayed from the last commit
            log.warning("InfluxDB write failed (%s): replaying from the last commit", type(exc).__name__)
            raise SinkBackpressureError(retry_after=RETRY_AFTER_S) from exc
        self.points_written += len(lines)
