"""A device gateway's Kafka client: validate locally with the shared rules, batch, produce.

Batches are numpy columns, validated as a whole (range, time, registry) and serialised from a
template, so a gateway produces at the speed of Kafka rather than of per-reading validation.
Rejected readings go to the dead-letter topic like those of every other path.
"""

from __future__ import annotations

import time

import numpy as np

from wardwatch.bus import Bus, open_bus
from wardwatch.columns import ReadingColumns
from wardwatch.identifiers import REASON as BAD_IDENTIFIER, is_identifier
from wardwatch.metrics_catalog import CATALOG, METRICS
from wardwatch.models import RejectedInput
from wardwatch.settings import Settings

from .validate import Limits, rejected as make_rejected

_LOW = np.array([CATALOG[m].low for m in METRICS])
_HIGH = np.array([CATALOG[m].high for m in METRICS])
_UNITS = [CATALOG[m].unit for m in METRICS]
_NAMES = [m.value for m in METRICS]


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
        """A mask of the readings that pass, and a rejection for each that does not."""
        m = cols.metric.astype(np.int64)
        reasons = np.full(len(cols), "", dtype=object)
        reasons[cols.ts < now_ms - self.limits.max_age_ms] = "too_old"
        reasons[cols.ts > now_ms + self.limits.max_future_ms] = "future_timestamp"
        reasons[~np.isfinite(cols.value) | (cols.value < _LOW[m]) | (cols.value > _HIGH[m])] = "impossible_value"
        if self.registry is not None:
            known = {p: self.registry.is_admitted(p) for p in set(cols.patient.tolist())}
            reasons[[not known[p] for p in cols.patient.tolist()]] = "unknown_patient"
        for ids in (cols.id, cols.patient, cols.device):  # last: a bad id is the reason whatever else is wrong
            values = ids.tolist()
            bad = {v for v in set(values) if not is_identifier(v)}
            if bad:
                reasons[[v in bad for v in values]] = BAD_IDENTIFIER
        ok = reasons == ""
        rejected = [make_rejected(self.source, reasons[i], reasons[i].replace("_", " "),
                                  {"id": cols.id[i], "patient": cols.patient[i], "device": cols.device[i],
                                   "metric": _NAMES[m[i]], "value": float(cols.value[i]), "ts": int(cols.ts[i])}, int(i))
                    for i in np.flatnonzero(~ok)]
        return ok, rejected

    @staticmethod
    def encode(cols: ReadingColumns) -> list[tuple[bytes, bytes]]:
        """The readings topic's JSON, from a template (ids and names are validated strings)."""
        rx = int(time.time() * 1000)
        out = []
        for rid, p, d, m, v, t, q in zip(cols.id.tolist(), cols.patient.tolist(), cols.device.tolist(),
                                         cols.metric.tolist(), cols.value.tolist(), cols.ts.tolist(),
                                         cols.quality.astype(np.float64).tolist()):
            qs = "null" if q != q else repr(q)
            out.append((p.encode(), (f'{{"id":"{rid}","patient":"{p}","device":"{d}","metric":"{_NAMES[m]}",'
                                     f'"value":{v!r},"unit":"{_UNITS[m]}","ts":{t},"received":{rx},"quality":{qs}}}').encode()))
        return out

    async def send(self, cols: ReadingColumns) -> int:
        """Validate and produce one batch; returns how many were accepted (all acked by Kafka)."""
        ok, rejected = self.check(cols, int(time.time() * 1000))
        good = cols.take(ok) if not ok.all() else cols
        if len(good):
            await self.producer.send_many(self.bus.topics.readings, self.encode(good))
        if rejected:
            await self.producer.send_many(self.bus.topics.deadletter,
                                          [(self.source.encode(), r.model_dump_json().encode()) for r in rejected])
        self.sent += len(good)
        self.rejected += len(rejected)
        return len(good)
