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
from dataclasses import dataclass, field
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

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except Exception:
            return False


def flux_string(value: str) -> str:
    """Quote a value for a Flux string literal (ids come from users: never paste them raw)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
