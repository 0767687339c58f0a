"""Persistence: batched, idempotent writes to InfluxDB with retry and back-off; reads through Flux.

Writes are idempotent because a point is identified by measurement + tag set + timestamp: writing
the same reading twice overwrites it. The synchronous influxdb-client runs in a worker thread so the
event loop never blocks on the network.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Sequence

from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from .settings import Settings

log = logging.getLogger(__name__)


@dataclass
class StoreHealth:
    ok: bool = True
    last_error: str | None = None
    failing_since: float | None = None
    points_written: int = 0
    write_errors: int = 0
    retries: int = 0


class InfluxStore:
    """One InfluxDB bucket. ``write_lines`` retries until the points are stored or ``max_attempts`` ends."""

    def __init__(self, settings: Settings, *, timeout_ms: int = 30_000) -> None:
        self.settings = settings
        self.bucket = settings.influx_bucket
        self.org = settings.influx_org
        self.client = InfluxDBClient(url=settings.influx_url, token=settings.influx_token, org=settings.influx_org,
                                     timeout=timeout_ms, enable_gzip=False)
        self._write = self.client.write_api(write_options=SYNCHRONOUS)
        self._query = self.client.query_api()
        self.health = StoreHealth()

    def close(self) -> None:
        self.client.close()

    def ensure_bucket(self) -> None:
        """Create the database (InfluxDB 1.8) or bucket (2.x) if missing."""
        db, _, _rp = self.bucket.partition("/")
        if _rp:  # 1.x compatibility naming "database/retention"
            data = urllib.parse.urlencode({"q": f'CREATE DATABASE "{db}"'}).encode()
            req = urllib.request.Request(f"{self.settings.influx_url.rstrip('/')}/query", data=data)
            user, _, pw = self.settings.influx_token.partition(":")
            q = urllib.parse.urlencode({"u": user, "p": pw})
            req.full_url = req.full_url + "?" + q
            urllib.request.urlopen(req, timeout=10).read()
            return
        api = self.client.buckets_api()
        if api.find_bucket_by_name(self.bucket) is None:
            api.create_bucket(bucket_name=self.bucket, org=self.org)

    def write_lines_sync(self, lines: Sequence[str]) -> None:
        size = self.settings.influx_batch_size
        for i in range(0, len(lines), size):
            self._write.write(bucket=self.bucket, org=self.org, record="\n".join(lines[i:i + size]),
                              write_precision=WritePrecision.MS)
        self.health.points_written += len(lines)

    async def write_lines(self, lines: Sequence[str], *, max_attempts: int | None = None,
                          base_delay: float = 0.2, max_delay: float = 10.0) -> None:
        """Write, retrying with exponential back-off and jitter. ``max_attempts=None`` retries forever
        (the worker's choice: it must not commit offsets for points that are not stored)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                await asyncio.to_thread(self.write_lines_sync, lines)
                if not self.health.ok:
                    log.warning("InfluxDB writes recovered after %.1fs", time.monotonic() - (self.health.failing_since or 0))
                self.health.ok, self.health.last_error, self.health.failing_since = True, None, None
                return
            except Exception as exc:  # network errors, 5xx, timeouts: all retried the same way
                self.health.write_errors += 1
                self.health.ok = False
                self.health.last_error = type(exc).__name__
                self.health.failing_since = self.health.failing_since or time.monotonic()
                if max_attempts is not None and attempt >= max_attempts:
                    raise
                self.health.retries += 1
                delay = min(max_delay, base_delay * 2 ** min(attempt - 1, 10)) * (0.5 + random.random())
                log.warning("InfluxDB write failed (%s), retry %d in %.1fs", type(exc).__name__, attempt, delay)
                await asyncio.sleep(delay)

    def query_sync(self, flux: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        tables = self._query.query(flux, org=self.org, params=params)
        return [rec.values for table in tables for rec in table.records]

    async def query(self, flux: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.query_sync, flux, params)

    async def query_series(self, measurement: str, patient: str, start_ms: int, stop_ms: int,
                           every_ms: int | None = None, fields: Sequence[str] | None = None,
                           tags: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Rows ``{"time": ms, "field", "value", **tags}`` sorted by time; see :func:`series_flux`."""
        rows = await self.query(series_flux(self.bucket, measurement, patient, start_ms, stop_ms, every_ms, fields, tags))
        out = []
        for r in rows:
            extra = {k: v for k, v in r.items() if not k.startswith("_") and k not in ("result", "table")}
            out.append({"time": int(r["_time"].timestamp() * 1000), "field": r["_field"], "value": r["_value"], **extra})
        out.sort(key=lambda row: row["time"])
        return out

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except Exception:
            return False


def _rfc3339(ms: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def series_flux(bucket: str, measurement: str, patient: str, start_ms: int, stop_ms: int,
                every_ms: int | None = None, fields: Sequence[str] | None = None,
                tags: dict[str, str] | None = None) -> str:
    """The one Flux query history reads use: a patient's points of one measurement in a time range,
    optionally downsampled by InfluxDB itself (aggregateWindow, mean) to what a chart needs."""
    conds = [f"r._measurement == {flux_string(measurement)}", f"r.patient == {flux_string(patient)}"]
    conds += [f"r[{flux_string(k)}] == {flux_string(v)}" for k, v in (tags or {}).items()]
    q = (f"from(bucket: {flux_string(bucket)})"
         f" |> range(start: {_rfc3339(start_ms)}, stop: {_rfc3339(stop_ms)})"
         f" |> filter(fn: (r) => {' and '.join(conds)})")
    if fields:
        q += " |> filter(fn: (r) => " + " or ".join(f"r._field == {flux_string(f)}" for f in fields) + ")"
    if every_ms:
        q += f" |> aggregateWindow(every: {int(every_ms)}ms, fn: mean, createEmpty: false)"
    return q


def flux_string(value: str) -> str:
    """Quote a value for a Flux string literal (ids come from users: never paste them raw).

    ``${`` starts interpolation in Flux (``"${r.patient}"`` would match every patient), so it is
    escaped too (as ``\\${``: Flux has no escape for a lone ``$``)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${") + '"'
