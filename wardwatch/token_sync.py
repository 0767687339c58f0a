"""Tokens shared by every instance of every service: a compacted Kafka topic of token rows.

``wardwatch token create|revoke`` writes the row to its own token table and publishes it on the
tokens topic (key: the token id; value: the row with the token's digest, never the token); every
alert-service instance, ingest and detector worker follows the topic from the start into its own table (``TokenStore.merge``),
so a token made on one machine works on all, and a revocation reaches every instance within the
poll interval (well inside the 5 s a revoked socket has to be closed in, alerts/service.py). A
token's expiry travels in its row, so every instance refuses it from the same moment.
"""

from __future__ import annotations

import asyncio
import logging

import orjson

from .auth import TokenStore
from .bus import Bus

log = logging.getLogger("wardwatch.tokens")


async def publish_tokens(bus: Bus, rows: list[dict]) -> None:
    """Send token rows to the tokens topic and wait until Kafka has them."""
    producer = bus.producer(linger_ms=0)
    await producer.start()
    try:
        await producer.send_many(bus.topics.tokens, [(r["id"].encode(), orjson.dumps(r)) for r in rows])
    finally:
        await producer.stop()


async def follow_tokens(bus: Bus, store: TokenStore, stop: asyncio.Event) -> None:
    """Merge every row of the tokens topic into ``store``, from the start, for as long as we run."""
    consumer = bus.consumer(bus.topics.tokens, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        while not stop.is_set():
            for msgs in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                for m in msgs:
                    try:
                        store.merge(orjson.loads(m.value))
                    except Exception:  # a bad row never stops the others; it names no one in the log
                        log.warning("ignored a malformed token row at offset %d", m.offset)
    finally:
        await consumer.stop()
