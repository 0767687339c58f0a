"""A device gateway's Kafka client: validate locally with the shared rules, batch, produce.

Batches are numpy columns, validated as a whole (identifiers, range, time, registry) and serialised
by the one codec (``wardwatch.codec``), so a gateway produces at the speed of Kafka rather than of per-reading validation.
Rejected readings go to the dead-letter topic like those of every other path.
"""

from __future__ import annotations

import time

import numpy as np

from wardwatch.bus import Bus, open_bus
from wardwatch.codec import Limits, check_columns, column_rejections, encode_readings, row_dict
from wardwatch.columns import ReadingColumns
from wardwatch.models import RejectedInput
from wardwatch.settings import Settings


class GatewayClient:
    def __init__(self, settings: Settings, bus: Bus | None = None, registry_view=None, source: str = "gateway") -> None:
        self.settings = settings
        self.bus = bus or open_bus(settings)
        self.producer = self.bus.producer()
        self.registry = registry_view if settings.enforce_registry else None
        self.limits = Limits.from_settings(settings)
        self.source = source
        self.sent = 0
        self.rejected = 0

    async def start(self) -> None:
        await self.bus.ensure_topics()
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    def check(self, cols: ReadingColumns, now_ms: int) -> tuple[np.ndarray, list[RejectedInput]]:
        """A mask of the readings that pass, and a rejection for each that does not (``wardwatch.codec``)."""
        reasons = check_columns(cols, now_ms, self.limits, self.registry)
        return reasons == "", column_rejections(reasons, self.source, lambda j: row_dict(cols, j))

    @staticmethod
    def encode(cols: ReadingColumns, checked: bool = False) -> list[tuple[bytes, bytes]]:
        """The readings topic's JSON (``wardwatch.codec.encode_readings``), received now."""
        return encode_readings(cols, received=int(time.time() * 1000), checked=checked)

    async def send(self, cols: ReadingColumns) -> int:
        """Validate and produce one batch; returns how many were accepted (all acked by Kafka)."""
        ok, rejected = self.check(cols, int(time.time() * 1000))
        good = cols.take(ok) if not ok.all() else cols
        if len(good):
            await self.producer.send_many(self.bus.topics.readings, self.encode(good, checked=True))
        if rejected:
            await self.producer.send_many(self.bus.topics.deadletter,
                                          [(self.source.encode(), r.model_dump_json().encode()) for r in rejected])
        self.sent += len(good)
        self.rejected += len(rejected)
        return len(good)
