"""Kafka plumbing: clients with the project's settings, topic creation, and batched keyed sends.

Per-message ``send()`` is ten times slower than building batches (see docs/baselines), so the hot
paths hand lists of (key, value) to :func:`send_batch`, which partitions them the way the Java
client does (murmur2 of the key, computed once per key and partition layout, then looked up) and
sends one closed batch per partition, so the producer sends it at once instead of lingering.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Iterable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import murmur2

from .settings import Settings
from .topics import Topics

log = logging.getLogger(__name__)
ALERT_LOG_RETENTION_MS = 30 * 24 * 3600 * 1000


def topics_for(settings: Settings) -> Topics:
    return Topics(settings.topic_prefix)


def security_options(settings: Settings) -> dict:
    """Connection and security arguments every aiokafka client (producer, consumer, admin) takes."""
    opts: dict = dict(bootstrap_servers=settings.kafka_bootstrap, security_protocol=settings.kafka_security_protocol)
    if settings.kafka_security_protocol.startswith("SASL_"):
        opts.update(sasl_mechanism=settings.kafka_sasl_mechanism, sasl_plain_username=settings.kafka_username,
                    sasl_plain_password=settings.kafka_password.get_secret_value())
    if settings.kafka_security_protocol.endswith("SSL"):
        opts["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_cafile, certfile=settings.kafka_ssl_certfile,
                                                 keyfile=settings.kafka_ssl_keyfile)
    return opts


def librdkafka_options(settings: Settings) -> dict[str, str]:
    """The same settings in librdkafka's names, for the clients built on it (Quix Streams in the benchmark)."""
    opts = {"security.protocol": settings.kafka_security_protocol.lower()}
    if settings.kafka_security_protocol.startswith("SASL_"):
        opts.update({"sasl.mechanism": settings.kafka_sasl_mechanism, "sasl.username": settings.kafka_username,
                     "sasl.password": settings.kafka_password.get_secret_value()})
    for ours, theirs in (("cafile", "ssl.ca.location"), ("certfile", "ssl.certificate.location"),
                         ("keyfile", "ssl.key.location")):
        if (path := getattr(settings, f"kafka_ssl_{ours}")) is not None:
            opts[theirs] = str(path)
    return opts


def make_admin(settings: Settings, **overrides) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**{**security_options(settings), **overrides})


def make_producer(settings: Settings, **overrides) -> AIOKafkaProducer:
    opts = dict(**security_options(settings), acks="all", linger_ms=5,
                max_batch_size=1 << 20, max_request_size=8 << 20, request_timeout_ms=30000,
                enable_idempotence=False)
    opts.update(overrides)
    return AIOKafkaProducer(**opts)


def make_consumer(settings: Settings, *topics: str, group_id: str | None = None, **overrides) -> AIOKafkaConsumer:
    opts = dict(**security_options(settings), group_id=group_id, enable_auto_commit=False,
                auto_offset_reset="earliest", max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20,
                session_timeout_ms=10000, heartbeat_interval_ms=2000, max_poll_interval_ms=300000)
    opts.update(overrides)
    return AIOKafkaConsumer(*topics, **opts)


async def ensure_topics(settings: Settings, partitions: dict[str, int] | None = None,
                        compacted: Iterable[str] = ()) -> None:
    """Create the project's topics with the partition counts we mean (auto-created ones get one)."""
    t = topics_for(settings)
    wanted = partitions or {
        t.readings: settings.readings_partitions,
        t.deadletter: 1,
        t.alerts: settings.readings_partitions,
        t.actions: settings.readings_partitions,
        t.device_alarms: settings.readings_partitions,
        t.state: settings.readings_partitions,
        t.vitals: settings.readings_partitions,
        t.registry: 1,
        t.limits: 1,
        t.alert_log: 1,  # one total order: its offsets are the seq every alert instance agrees on
        t.tokens: 1,
    }
    compacted = set(compacted) or {t.state, t.registry, t.limits, t.tokens}
    # The alert log is rebuilt by every instance at start: kept long enough to cover any open alarm.
    configs = {t.alert_log: {"retention.ms": str(ALERT_LOG_RETENTION_MS)}}
    admin = make_admin(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(name, n, 1, topic_configs={"cleanup.policy": "compact"} if name in compacted
                        else configs.get(name, {}))
               for name, n in wanted.items() if name not in existing]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()
    # Wait until the metadata shows every topic with its leaders, so the first send does not race.
    for _ in range(100):
        admin = make_admin(settings)
        await admin.start()
        try:
            desc = await admin.describe_topics(list(wanted))
        finally:
            await admin.close()
        ok = all(d.get("error_code", 0) == 0 and len(d.get("partitions", [])) >= 1 and
                 all(p.get("leader", -1) >= 0 for p in d["partitions"]) for d in desc)
        if ok:
            return
        await asyncio.sleep(0.1)


def partition_for(key: bytes, n_partitions: int) -> int:
    """The Java client's default partitioner, so every producer puts a patient on the same partition."""
    return (murmur2(key) & 0x7FFFFFFF) % n_partitions


# (topic, partitions) -> key -> partition: murmur2 in Python costs microseconds a key, and the same
# few thousand patients come back every second. A new partition count is a new layout (a new dict).
_PARTITION_CACHE: dict[tuple[str, tuple[int, ...]], dict[bytes, int]] = {}
_CACHE_KEYS_MAX = 1_000_000  # per layout: beyond it (keys that are not patients) start again


def partitions_of(topic: str, partitions: Sequence[int]) -> dict[bytes, int]:
    """The key -> partition cache of one topic and partition list (filled by :func:`send_batch`)."""
    layout = (topic, tuple(partitions))
    cache = _PARTITION_CACHE.get(layout)
    if cache is None or len(cache) > _CACHE_KEYS_MAX:
        cache = _PARTITION_CACHE[layout] = {}
    return cache


async def send_batch(producer: AIOKafkaProducer, topic: str, items: Sequence[tuple[bytes, bytes]],
                     partitions: Sequence[int] | None = None) -> int:
    """Send keyed records as one batch per partition; returns once the broker acknowledged all of them.

    Raises on failure: the caller decides whether to retry (the same records, so ids dedupe).
    """
    return await (await enqueue_batch(producer, topic, items, partitions))


async def enqueue_batch(producer: AIOKafkaProducer, topic: str, items: Sequence[tuple[bytes, bytes]],
                        partitions: Sequence[int] | None = None) -> asyncio.Future:
    """:func:`send_batch` in two steps: returns once the records are in the producer's queue (in this
    order: the producer sends one request per partition at a time, so what is queued later is
    written later), with a future of their count that completes when the broker acknowledged them
    all (or fails)."""
    if not items:
        done = asyncio.get_running_loop().create_future()
        done.set_result(0)
        return done
    if partitions is None:
        partitions = sorted(await producer.partitions_for(topic))
    n = len(partitions)
    cache = partitions_of(topic, partitions)
    by_part: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
    for key, value in items:
        part = cache.get(key)
        if part is None:
            part = cache[key] = partitions[partition_for(key, n)]
        by_part[part].append((key, value))
    futures = []
    for part, records in by_part.items():
        batch = producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                batch.close()  # full: no point lingering
                futures.append(await producer.send_batch(batch, topic, partition=part))
                batch = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError("record larger than the producer's max batch size")
        if batch.record_count():
            batch.close()  # the batch is whole: the sender takes it now, not after linger_ms
            futures.append(await producer.send_batch(batch, topic, partition=part))
    return asyncio.ensure_future(_count(futures, len(items)))


async def _count(futures: list, n: int) -> int:
    await asyncio.gather(*futures)
    return n
