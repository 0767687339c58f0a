"""One ingest pipeline for every HTTP format: validate each item, hand the good ones to Kafka and the
rejected ones, with their reasons, to the dead-letter topic; answer item by item.

Accounting is exact: every item of a request is either accepted or rejected, and both kinds are
acknowledged by Kafka (acks=all) before the gateway hears "accepted". If Kafka cannot take the
batch, nothing is acknowledged: the gateway resends, and stable reading ids make the resend
harmless downstream.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel

from wardwatch.bus import Bus, BusProducer
from wardwatch.codec import Invalid, Limits, Retracted, reading_from_mapping, rejected, retraction_from_mapping
from wardwatch.models import DeviceAlarm, RejectedInput, Reading, Retraction

from .formats.hl7v2_alarms import AlarmItem, device_alarm_from_mapping


class ItemResult(BaseModel):
    index: int
    status: str  # "accepted" or "rejected"
    id: str | None = None
    reason: str | None = None
    detail: str | None = None


class IngestResult(BaseModel):
    received: int
    accepted: int
    rejected: int
    items: list[ItemResult]


class Backpressure(Exception):
    """Kafka is slow or away: answer 429/503 with Retry-After rather than buffer without bound."""

    def __init__(self, status: int, retry_after: int, message: str) -> None:
        super().__init__(message)
        self.status, self.retry_after, self.message = status, retry_after, message


@dataclass
class Batch:
    """Items of one request as they are validated: (index, reading) or (index, rejection)."""

    source: str
    raw: bytes = b""  # the request body: the payload of a rejection that has no narrower one
    accepted: list[tuple[int, Reading]] = field(default_factory=list)
    rejected: list[RejectedInput] = field(default_factory=list)
    alarms: list[tuple[int, DeviceAlarm]] = field(default_factory=list)  # monitors' own alarms (PCD-04)
    retractions: list[tuple[int, Retraction]] = field(default_factory=list)  # results their senders withdrew

    def reject(self, index: int, reason: str, detail: str, payload: Any) -> None:
        self.rejected.append(rejected(self.source, reason, detail, self.raw if payload is None else payload,
                                      index, whole=self.raw))

    def add(self, index: int, item: Any, now_ms: int, limits: Limits, registry) -> None:
        """A parsed reading mapping (or the Invalid its parser made), validated by the core codec; an
        :class:`AlarmItem` goes to :meth:`add_alarm`, a :class:`Retracted` one to the retractions."""
        if isinstance(item, AlarmItem):
            self.add_alarm(index, item.mapping, now_ms, limits, registry)
        elif isinstance(item, Retracted):
            self._validate(self.retractions, retraction_from_mapping, index, item.mapping, now_ms, limits, registry)
        else:
            self._validate(self.accepted, reading_from_mapping, index, item, now_ms, limits, registry)

    def add_alarm(self, index: int, item: Any, now_ms: int, limits: Limits, registry) -> None:
        """A parsed device alarm (ingest/formats/hl7v2_alarms.py), validated like a reading."""
        self._validate(self.alarms, device_alarm_from_mapping, index, item, now_ms, limits, registry)

    def _validate(self, into: list, validate, index: int, item: Any, now_ms: int, limits: Limits, registry) -> None:
        if isinstance(item, Invalid):
            self.reject(index, item.reason, item.detail, item.payload)
            return
        try:
            into.append((index, validate(item, now_ms, limits, registry)))
        except Invalid as exc:
            self.reject(index, exc.reason, exc.detail, item)

    def dedupe(self) -> None:
        seen: set[str] = set()
        keep = []
        for index, r in self.accepted:
            if r.id in seen:
                self.reject(index, "duplicate_in_batch", "the same reading id appears earlier in the batch",
                            r.model_dump())
            else:
                seen.add(r.id)
                keep.append((index, r))
        self.accepted = keep


class Ingestor:
    def __init__(self, bus: Bus, producer: BusProducer, max_backlog: int, send_timeout_s: float = 15.0) -> None:
        self.bus, self.producer = bus, producer
        self.max_backlog = max_backlog
        self.send_timeout_s = send_timeout_s
        self.in_flight = 0

    async def commit(self, batch: Batch, received: int) -> IngestResult:
        batch.dedupe()
        n = len(batch.accepted) + len(batch.rejected) + len(batch.alarms) + len(batch.retractions)
        if self.in_flight + n > self.max_backlog:
            raise Backpressure(429, 1, "ingest backlog is full; retry shortly")
        self.in_flight += n
        try:
            sends = []
            # A withdrawal goes behind the readings of its patient (same topic, same key), so the
            # worker stores it after the reading it names if both came in one request.
            readings = [r for _, r in batch.accepted] + [r for _, r in batch.retractions]
            if readings:
                sends.append(self.producer.send_many(self.bus.topics.readings,
                                                     [(r.patient.encode(), r.model_dump_json().encode())
                                                      for r in readings]))
            if batch.alarms:
                sends.append(self.producer.send_many(self.bus.topics.device_alarms,
                                                     [(a.patient.encode(), a.model_dump_json().encode())
                                                      for _, a in batch.alarms]))
            if batch.rejected:
                sends.append(self.producer.send_many(self.bus.topics.deadletter,
                                                     [(batch.source.encode(), r.model_dump_json().encode())
                                                      for r in batch.rejected]))
            await asyncio.wait_for(asyncio.gather(*sends), self.send_timeout_s)
        except asyncio.TimeoutError:
            raise Backpressure(503, 5, "Kafka did not acknowledge in time; nothing was accepted, resend") from None
        except Exception as exc:
            raise Backpressure(503, 5, f"Kafka unavailable ({type(exc).__name__}); nothing was accepted, resend") from None
        finally:
            self.in_flight -= n
        items = [ItemResult(index=i, status="accepted", id=r.id) for i, r in batch.accepted]
        items += [ItemResult(index=i, status="accepted", id=a.event_id) for i, a in batch.alarms]
        items += [ItemResult(index=i, status="accepted", detail="withdrawn: left out of the history")
                  for i, _ in batch.retractions]
        items += [ItemResult(index=r.index if r.index is not None else -1, status="rejected", reason=r.reason,
                             detail=r.detail) for r in batch.rejected]
        items.sort(key=lambda it: it.index)
        return IngestResult(received=received, accepted=len(batch.accepted) + len(batch.alarms) + len(batch.retractions), rejected=len(batch.rejected), items=items)


def loads(raw: bytes) -> Any:
    """A JSON body. orjson refuses the NaN and Infinity literals that Python's json.dumps writes; such a
    body is read again with them as NaN, so that only the readings holding one are rejected (their
    value is no possible one), not every reading beside them."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw, parse_constant=lambda _: float("nan"), parse_int=_int)
    except (ValueError, RecursionError):  # also JSON nested deeper than the parser's limit
        raise Invalid("malformed_json", "the body is not valid JSON") from None


def _int(text: str) -> int | float:
    """An integer as orjson reads it: a float beyond 64 bits (inf beyond a float; never an int that
    ``float()`` cannot convert)."""
    n = int(text)
    return n if -(1 << 63) <= n < (1 << 64) else float(text)


def now_ms() -> int:
    return int(time.time() * 1000)
