"""The message bus the services talk to: Apache Kafka, or an in-process bus for the embedded demo.

Services are written once against this small surface:

* ``bus.producer()`` -> ``send_many(topic, [(key, value), ...])`` returns when every record is
  acknowledged (acks=all on Kafka), batched per partition;
* ``bus.consumer(*topics, group_id=..., listener=...)`` -> the subset of ``AIOKafkaConsumer`` the
  services use (``start``, ``stop``, ``getmany``, ``commit``, ``committed``, ``assignment``,
  ``seek``, ``position``, ``end_offsets``, ``seek_to_beginning``). On Kafka it *is* an
  AIOKafkaConsumer; the memory bus imitates it, with every partition of a group on its one consumer.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from typing import Awaitable, Iterable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata, TopicPartition

from .kafka import (ensure_topics, make_admin, make_consumer, make_producer, partition_for, partitions_of, enqueue_batch,
                    topics_for)
from .settings import Settings


class BusProducer:
    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def send_many(self, topic: str, items: Sequence[tuple[bytes, bytes]]) -> int:
        raise NotImplementedError

    async def enqueue_many(self, topic: str, items: Sequence[tuple[bytes, bytes]]) -> Awaitable[int]:
        """Queue ``items`` in order and return at once with what completes when they are acknowledged:
        the next batch can be queued (and fetched) while this one is on its way."""
        done = asyncio.get_running_loop().create_future()
        done.set_result(await self.send_many(topic, items))
        return done


class KafkaBusProducer(BusProducer):
    def __init__(self, settings: Settings, **overrides) -> None:
        self.raw = make_producer(settings, **overrides)
        self._partitions: dict[str, list[int]] = {}

    async def start(self) -> None:
        await self.raw.start()

    async def stop(self) -> None:
        await self.raw.stop()

    async def send_many(self, topic: str, items: Sequence[tuple[bytes, bytes]]) -> int:
        return await (await self.enqueue_many(topic, items))

    async def enqueue_many(self, topic: str, items: Sequence[tuple[bytes, bytes]]) -> Awaitable[int]:
        parts = self._partitions.get(topic)
        if parts is None:
            parts = self._partitions[topic] = sorted(await self.raw.partitions_for(topic))
        return await enqueue_batch(self.raw, topic, items, parts)


class Bus:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = topics_for(settings)

    async def ensure_topics(self) -> None: ...

    def producer(self, **overrides) -> BusProducer:
        raise NotImplementedError

    def consumer(self, *topics: str, group_id: str | None = None,
                 listener: ConsumerRebalanceListener | None = None, **overrides):
        raise NotImplementedError

    async def group_progress(self, group: str, topic: str) -> dict[int, tuple[int | None, int]]:
        """Partition -> (the group's committed offset or None, the end offset): what a consumer group
        has done and what waits for it (the alert service watches the detector group with it)."""
        raise NotImplementedError

    async def assigned_consumer(self, *topics: str, group_id: str, **overrides):
        """A started consumer of every partition of ``topics`` by assignment: no group membership, so
        no rebalance ever pauses it, but its offsets are committed under (and resumed from) ``group_id``."""
        raise NotImplementedError


class KafkaBus(Bus):
    async def ensure_topics(self) -> None:
        await ensure_topics(self.settings)

    async def group_progress(self, group: str, topic: str) -> dict[int, tuple[int | None, int]]:
        admin = make_admin(self.settings)
        reader = make_consumer(self.settings, group_id=None)
        await admin.start()
        await reader.start()
        try:
            committed = await admin.list_consumer_group_offsets(group)
            tps = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())]
            if not tps:
                await reader._client.force_metadata_update()
                tps = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())]
            ends = await reader.end_offsets(tps) if tps else {}
        finally:
            await reader.stop()
            await admin.close()
        return {tp.partition: (committed[tp].offset if tp in committed else None, end) for tp, end in ends.items()}

    async def assigned_consumer(self, *topics: str, group_id: str, **overrides) -> AIOKafkaConsumer:
        consumer = make_consumer(self.settings, group_id=group_id, **overrides)
        await consumer.start()
        try:
            cluster = await consumer._client.fetch_all_metadata()
            tps = [TopicPartition(t, p) for t in topics for p in sorted(cluster.partitions_for_topic(t) or ())]
            missing = [t for t in topics if not any(tp.topic == t for tp in tps)]
            if missing:
                raise RuntimeError(f"topics not found: {missing}")
            consumer.assign(tps)
        except BaseException:
            await consumer.stop()
            raise
        return consumer

    def producer(self, **overrides) -> KafkaBusProducer:
        return KafkaBusProducer(self.settings, **overrides)

    def consumer(self, *topics: str, group_id: str | None = None,
                 listener: ConsumerRebalanceListener | None = None, **overrides) -> AIOKafkaConsumer:
        if listener is None:
            return make_consumer(self.settings, *topics, group_id=group_id, **overrides)
        consumer = make_consumer(self.settings, group_id=group_id, **overrides)
        consumer.subscribe(list(topics), listener=listener)
        return consumer


# ------------------------------------------------------------------------------- in-process bus


class _Partition:
    """An append-only log with a moving start: records every group has committed are dropped."""

    def __init__(self) -> None:
        self.base = 0
        self.records: deque[ConsumerRecord] = deque()

    @property
    def end(self) -> int:
        return self.base + len(self.records)

    def trim(self, upto: int) -> None:
        while self.records and self.base < upto:
            self.records.popleft()
            self.base += 1


class MemoryBus(Bus):
    """One process, no broker: the same semantics the services rely on (keyed partitions, offsets,
    commits per group), so the embedded demo runs the same ingest, detector and alert code."""

    def __init__(self, settings: Settings, partitions: int | None = None) -> None:
        super().__init__(settings)
        self.n_partitions = partitions or settings.readings_partitions
        self._logs: dict[str, list[_Partition]] = {}
        self._committed: dict[str, dict[TopicPartition, int]] = defaultdict(dict)
        self._wake: asyncio.Future | None = None  # resolved when anything is appended

    def changed(self) -> asyncio.Future:
        """A future that resolves at the next append (or stop). Waiting on it with ``asyncio.wait``
        never needs a lock, so a consumer cancelled while waiting leaves nothing behind."""
        if self._wake is None or self._wake.done():
            self._wake = asyncio.get_running_loop().create_future()
        return self._wake

    def notify(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def log(self, topic: str) -> list[_Partition]:
        if topic not in self._logs:
            n = 1 if topic in (self.topics.deadletter, self.topics.registry, self.topics.limits, self.topics.alert_log,
                               self.topics.tokens) else self.n_partitions
            self._logs[topic] = [_Partition() for _ in range(n)]
        return self._logs[topic]

    async def ensure_topics(self) -> None:
        for t in (self.topics.readings, self.topics.deadletter, self.topics.alerts, self.topics.actions,
                  self.topics.device_alarms, self.topics.state, self.topics.vitals, self.topics.registry, self.topics.limits,
                  self.topics.alert_log, self.topics.tokens):
            self.log(t)

    def producer(self, **overrides) -> "MemoryProducer":
        return MemoryProducer(self)

    def consumer(self, *topics: str, group_id: str | None = None,
                 listener: ConsumerRebalanceListener | None = None, **overrides) -> "MemoryConsumer":
        return MemoryConsumer(self, topics, group_id, listener, overrides.get("auto_offset_reset", "earliest"))

    async def assigned_consumer(self, *topics: str, group_id: str, **overrides) -> "MemoryConsumer":
        consumer = self.consumer(*topics, group_id=group_id, **overrides)
        await consumer.start()
        return consumer

    async def append(self, topic: str, items: Sequence[tuple[bytes, bytes]]) -> None:
        parts = self.log(topic)
        now = int(time.time() * 1000)
        cache = partitions_of(topic, range(len(parts)))
        for key, value in items:
            p = 0 if key is None else cache.get(key)
            if p is None:
                p = cache[key] = partition_for(key, len(parts))
            part = parts[p]
            part.records.append(ConsumerRecord(topic, p, part.end, now, 0, key, value, None,
                                               len(key or b""), len(value or b""), ()))
        self.notify()

    async def group_progress(self, group: str, topic: str) -> dict[int, tuple[int | None, int]]:
        done = self._committed.get(group, {})
        return {p: (done.get(TopicPartition(topic, p)), part.end) for p, part in enumerate(self.log(topic))}

    def commit(self, group: str, offsets: dict[TopicPartition, int]) -> None:
        self._committed[group].update(offsets)
        # Compacted topics keep everything (a state/registry rebuild reads them from the start).
        for tp in offsets:
            if tp.topic in (self.topics.state, self.topics.registry, self.topics.limits, self.topics.alert_log,
                            self.topics.tokens):
                continue
            low = min(g.get(tp, 0) for g in self._committed.values() if tp in g)
            self.log(tp.topic)[tp.partition].trim(low)


class MemoryProducer(BusProducer):
    def __init__(self, bus: MemoryBus) -> None:
        self.bus = bus

    async def send_many(self, topic: str, items: Sequence[tuple[bytes, bytes]]) -> int:
        await self.bus.append(topic, items)
        return len(items)


class MemoryConsumer:
    def __init__(self, bus: MemoryBus, topics: Iterable[str], group_id: str | None,
                 listener: ConsumerRebalanceListener | None, reset: str) -> None:
        self.bus, self.topics, self.group_id, self.listener, self.reset = bus, list(topics), group_id, listener, reset
        self._pos: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._closed = False

    async def start(self) -> None:
        tps = set()
        for t in self.topics:
            for p, part in enumerate(self.bus.log(t)):
                tp = TopicPartition(t, p)
                tps.add(tp)
                committed = self.bus._committed.get(self.group_id or "", {}).get(tp)
                self._pos[tp] = committed if committed is not None else (part.base if self.reset == "earliest" else part.end)
        if self.listener is not None:
            await self.listener.on_partitions_assigned(tps)

    async def stop(self) -> None:
        self._closed = True
        self.bus.notify()

    def assignment(self) -> set[TopicPartition]:
        return set(self._pos)

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(len(self.bus.log(topic))))

    def pause(self, *tps: TopicPartition) -> None:
        self._paused |= set(tps)

    async def rebalance(self) -> None:
        """What a group rebalance does to a member that keeps its partitions: revoke, positions back
        to the committed offsets, assign (tests drive it; Kafka does it on its own)."""
        tps = set(self._pos)
        if self.listener is not None:
            await self.listener.on_partitions_revoked(tps)
        for tp in tps:
            committed = self.bus._committed.get(self.group_id or "", {}).get(tp)
            self._pos[tp] = committed if committed is not None else self.bus.log(tp.topic)[tp.partition].base
        if self.listener is not None:
            await self.listener.on_partitions_assigned(tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._pos[tp] = offset

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        for tp in tps or list(self._pos):
            self._pos[tp] = self.bus.log(tp.topic)[tp.partition].base

    async def position(self, tp: TopicPartition) -> int:
        return self._pos[tp]

    def highwater(self, tp: TopicPartition) -> int:
        return self.bus.log(tp.topic)[tp.partition].end

    async def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.highwater(tp) for tp in tps}

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.bus._committed.get(self.group_id or "", {}).get(tp)

    async def commit(self, offsets: dict[TopicPartition, int | OffsetAndMetadata] | None = None) -> None:
        if self.group_id is None:
            return
        if offsets is None:
            offsets = dict(self._pos)
        clean = {tp: (o.offset if isinstance(o, OffsetAndMetadata) else int(o)) for tp, o in offsets.items()}
        self.bus.commit(self.group_id, clean)

    def _take(self, max_records: int) -> dict[TopicPartition, list[ConsumerRecord]]:
        out: dict[TopicPartition, list[ConsumerRecord]] = {}
        budget = max_records
        for tp, pos in self._pos.items():
            if budget <= 0:
                break
            if tp in self._paused:
                continue
            part = self.bus.log(tp.topic)[tp.partition]
            pos = max(pos, part.base)
            n = min(part.end - pos, budget)
            if n > 0:
                start = pos - part.base
                out[tp] = [part.records[i] for i in range(start, start + n)]
                self._pos[tp] = pos + n
                budget -= n
        return out

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[ConsumerRecord]]:
        max_records = max_records or 10_000
        deadline = time.monotonic() + timeout_ms / 1000
        while not self._closed:
            got = self._take(max_records)
            if got:
                return got
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return {}
            await asyncio.wait([self.bus.changed()], timeout=remaining)
        return {}


def open_bus(settings: Settings) -> Bus:
    """The bus the settings ask for. The embedded bus lives in this process: one per process."""
    if settings.backend == "embedded":
        global _embedded
        if _embedded is None or _embedded.settings is not settings:
            _embedded = MemoryBus(settings)
        return _embedded
    return KafkaBus(settings)


_embedded: MemoryBus | None = None
