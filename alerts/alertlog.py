"""The alert-log topic: one order of alarm events, actions and audit rows that every alert-service
instance folds into its view (alerts/eventlog.py), so that all of them show the same thing and a
client's seq means the same on each: seq = the record's offset + 1 (the topic has one partition).

A record's value is one byte saying what it is, then its JSON:

* ``e`` an ``AlertEvent``: a detector's alarm event (copied from the alerts topic), or an action
  or escalation written by the instance where it happened;
* ``d`` a ``DeviceAlarm``, a monitor's own alarm (copied from the device-alarms topic), turned
  into an event when folded, the same way on every instance;
* ``u`` an audit row (who did what, when), written just before the action it explains.

The copier: every instance copies every partition of the topics others write (alerts,
device-alarms, and actions for records written before this log existed), by assignment, not as a
consumer group. Each alarm is therefore in the log as many times as there are instances, and the
first copy in the log's order is the one folded (events are unique by id; the others are dropped the
same way everywhere). What that buys: an instance dying delays no alarm, where a shared group made
the partitions it copied wait for the group's session timeout (6 s, the least a broker allows by
default) and a rebalance; and an alarm reaches the log through whichever copier is quicker. What it
costs: the log takes N copies of each alarm (alarm events, a few a second per ward, not readings).
Offsets go to one standalone group for all instances, after the log acknowledged the batch: a
restarted instance resumes from the last any instance committed and repeats, never loses, a batch.

The escalation timers still need one owner: the instances are members of a consumer group on the
same topics that fetches nothing (its partitions are paused); the one holding the alerts topic's
partition 0 runs the timers. An escalation written twice during a handover is kept once (its id is
made of the alarm, its level and the log's time).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Callable

import orjson
from aiokafka import ConsumerRebalanceListener
from aiokafka.structs import TopicPartition

from wardwatch.bus import Bus, BusProducer
from wardwatch.models import AlertEvent

log = logging.getLogger("wardwatch.alerts")
EVENT, DEVICE, AUDIT = b"e", b"d", b"u"
# aiokafka keeps one fetch in flight per broker and leaves out partitions whose records are not yet
# consumed, so the next fetch often asks only for idle partitions (device alarms, actions) and the
# broker holds it for the whole fetch wait while alarms pile up behind it: 500 ms by default, the
# p99 of the copier hop (measured). A short wait bounds that; an idle poll every 10 ms costs little.
FETCH_WAIT_MS = 10


def event_record(event: AlertEvent) -> tuple[bytes, bytes]:
    return event.alert.patient.encode(), EVENT + event.to_json()


def audit_record(who: str, role: str, action: str, target: str, detail: dict, at: float) -> tuple[bytes, bytes]:
    return target.encode(), AUDIT + orjson.dumps({"at": at, "who": who, "role": role, "action": action,
                                                  "target": target, "detail": detail})


def copier_group(topic_prefix: str) -> str:
    # One group per deployment (topic prefix); wardwatch/kafka_acls.py grants the alerts principal
    # every group starting with "wardwatch-alerts-". Its members hold the escalation timers.
    return f"wardwatch-alerts-{topic_prefix}copier"


def copied_group(topic_prefix: str) -> str:
    # Where the copiers' offsets are kept: no member ever joins it (they assign themselves).
    return f"wardwatch-alerts-{topic_prefix}copied"


@dataclass
class Ownership(ConsumerRebalanceListener):
    """Which input partitions this instance copies; ``escalates`` while it has alerts partition 0."""

    alerts_topic: str
    owned: set[TopicPartition] = field(default_factory=set)
    changed: Callable[[bool], None] = lambda escalates: None
    consumer: object = None  # the group member: its partitions are paused as soon as assigned

    @property
    def escalates(self) -> bool:
        return TopicPartition(self.alerts_topic, 0) in self.owned

    async def on_partitions_revoked(self, revoked) -> None:
        self.owned -= set(revoked)
        self.changed(self.escalates)

    async def on_partitions_assigned(self, assigned) -> None:
        if self.consumer is not None and assigned:
            self.consumer.pause(*assigned)  # copy_inputs copies them; this member only holds them
        self.owned |= set(assigned)
        self.changed(self.escalates)


COPY_DEPTH = 8  # batches queued to the log but not yet acknowledged (then the copier waits)
COMMIT_EVERY_S = 0.2  # the copier's offsets are committed at most this often


async def copy_inputs(bus: Bus, producer: BusProducer, stop: asyncio.Event,
                      polled: Callable[[], None] = lambda: None) -> None:
    """Copy what detectors and monitors send into the alert log, a batch at a time, from every input
    partition; commit after the log has acknowledged the batch, so a crash repeats a batch (dropped
    when folded), never loses one.

    Fetching, acknowledging and committing overlap: a batch is queued to the log (in fetch order,
    which the producer keeps) and the next one fetched at once, while ``_commit_acked`` waits for
    the acknowledgements in order and commits each batch's offsets after its own. Waiting for the
    log's ack and then a commit's round trip before every fetch was what an alarm waited for most
    on its way to a nurse (the copier's hop: p50 26-39 ms against Kafka's own 3-4 ms, timed once
    with temporary timers in the service)."""
    t = bus.topics
    consumer = await bus.assigned_consumer(t.alerts, t.device_alarms, t.actions, group_id=copied_group(t.prefix),
                                           fetch_max_wait_ms=FETCH_WAIT_MS)
    acks: asyncio.Queue = asyncio.Queue(COPY_DEPTH)
    committer = asyncio.create_task(_commit_acked(consumer, acks))
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            polled()
            if committer.done():
                committer.result()  # a failed ack or commit: raise it (the supervisor restarts the copier)
                raise RuntimeError("the copier's committer stopped")
            if not batches:
                continue
            records = [(m.key or b"", (DEVICE if tp.topic == t.device_alarms else EVENT) + m.value)
                       for tp, msgs in batches.items() for m in msgs if m.value]
            acked = await producer.enqueue_many(t.alert_log, records)
            await acks.put((acked, {tp: msgs[-1].offset + 1 for tp, msgs in batches.items()}))
    finally:
        committer.cancel()
        await asyncio.gather(committer, return_exceptions=True)
        await consumer.stop()


async def _commit_acked(consumer, acks: asyncio.Queue) -> None:
    """Commit copied batches' offsets once the log acknowledged them, in the order fetched, at most
    every ``COMMIT_EVERY_S``: a commit covers every batch acknowledged meanwhile (never a batch
    before its ack). Committing after each fetch cost the broker a write a few milliseconds apart
    under load; a crash now repeats at most that much more, which the fold drops (event ids)."""
    loop = asyncio.get_running_loop()
    while True:
        acked, offsets = await acks.get()
        await acked  # raises if the log refused it: nothing of it or after it is committed
        deadline = loop.time() + COMMIT_EVERY_S
        while (left := deadline - loop.time()) > 0:
            try:
                acked, later = await asyncio.wait_for(acks.get(), left)
            except asyncio.TimeoutError:
                break
            await acked
            offsets.update(later)
        await consumer.commit(offsets)


async def hold_ownership(bus: Bus, ownership: Ownership, stop: asyncio.Event) -> None:
    """Membership of the copier group, for the escalation timers only: fetches nothing."""
    t = bus.topics
    # A short session: when an instance dies, another takes the timers over within seconds.
    consumer = bus.consumer(t.alerts, t.device_alarms, t.actions, group_id=copier_group(t.prefix), listener=ownership,
                            session_timeout_ms=6000, heartbeat_interval_ms=1000)
    ownership.consumer = consumer
    try:
        await consumer.start()
        while not stop.is_set():
            await consumer.getmany(timeout_ms=500)  # polling is what keeps it a member (max_poll_interval)
    finally:
        ownership.owned.clear()
        ownership.changed(False)
        await consumer.stop()
