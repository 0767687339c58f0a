"""The monitors' own alarms into InfluxDB, so that a patient's history keeps them after the alert
log's retention (30 days), as it keeps the detectors' alarms and people's actions.

The detectors write their alarm events to InfluxDB themselves and the outbox writes people's
actions (alerts/service.py), but a monitor's report (IHE PCD-04) becomes an event only when an
instance folds the alert log into its view (``AlertService.device_event``), the same way on every
instance. So one instance writes those events from its view, in seq order: the one that runs the
escalation timers (``alertlog.Ownership``). Its position is an offset committed under a
standalone group that no member joins, after InfluxDB acknowledged the points: a new owner, or a
restarted one, resumes there and repeats at most the last batch. Two owners for a moment (a
rebalance) write the same points, which InfluxDB keeps once (same series and time). An InfluxDB
outage holds the position, never an alarm: nurses see the alarms from the view meanwhile, the
history reads the view too (alerts/history.py merges both), and ``/healthz`` turns red.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from aiokafka.structs import TopicPartition

from wardwatch.bus import Bus
from wardwatch.lineprotocol import alert_line
from wardwatch.models import AlertEvent

from .eventlog import EventLog

log = logging.getLogger("wardwatch.alerts")
BATCH = 5000  # events a write: a long outage's backlog goes out in pieces, each committed
INTERVAL_S = 1.0
FAILING_RED_S = 30.0  # an owner that has not stored its backlog for this long is unhealthy


def monitor_history_group(topic_prefix: str) -> str:
    # The alerts principal may use every group starting with "wardwatch-alerts-" (wardwatch/kafka_acls.py).
    return f"wardwatch-alerts-{topic_prefix}monitor-history"


class MonitorHistory:
    """Writes the view's device-alarm events after the committed position while ``owns()``;
    ``folded()`` is the alert-log offset up to which the view is complete (its records' seqs are at
    most that)."""

    def __init__(self, bus: Bus, store, view: EventLog, folded: Callable[[], int], owns: Callable[[], bool]) -> None:
        self.bus, self.store, self.view, self.folded, self.owns = bus, store, view, folded, owns
        self.stored_upto: int | None = None  # the committed position while this instance writes
        self.failing_since: float | None = None

    @property
    def ok(self) -> bool:
        return self.failing_since is None or time.monotonic() - self.failing_since < FAILING_RED_S

    def status(self) -> dict:
        behind = None if self.stored_upto is None else max(0, self.folded() - self.stored_upto)
        return {"writes": self.stored_upto is not None, "behind": behind, "ok": self.ok}

    async def run(self, stop: asyncio.Event) -> None:
        tp = TopicPartition(self.bus.topics.alert_log, 0)
        consumer = await self.bus.assigned_consumer(self.bus.topics.alert_log,
                                                    group_id=monitor_history_group(self.bus.topics.prefix))
        consumer.pause(tp)  # it never fetches: its group only keeps the position
        try:
            while not stop.is_set():
                if not self.owns():
                    self.stored_upto = None  # the next owner reads the position afresh
                else:
                    try:
                        await self.catch_up(consumer, tp)
                        self.failing_since = None
                    except Exception as exc:  # InfluxDB or Kafka unreachable: try again next round
                        if self.failing_since is None:
                            self.failing_since = time.monotonic()
                            log.warning("storing the monitors' alarms failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(INTERVAL_S)  # (a stop cancels it; waking on ``stop`` raced the cancel in stop())
        finally:
            await consumer.stop()

    async def catch_up(self, consumer, tp: TopicPartition) -> None:
        if self.stored_upto is None:
            self.stored_upto = await consumer.committed(tp) or 0
        upto = self.folded()
        while self.stored_upto < upto:
            rows = self.view.monitor_events_between(self.stored_upto, upto, BATCH)
            end = rows[-1][0] if len(rows) == BATCH else upto
            if rows:
                await self.store.write_lines([alert_line(AlertEvent.model_validate_json(body)) for _, body in rows],
                                             max_attempts=3)
            await consumer.commit({tp: end})
            self.stored_upto = end
