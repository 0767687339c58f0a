"""Run a detector worker in the consumer group on the readings topic (``wardwatch detect``).

The loop, top to bottom: fetch a batch -> decode and validate (rejections to the dead-letter
topic) -> the detector engine -> write readings, scores and alerts to InfluxDB (retried until
stored) -> alert events, vitals snapshots and dead letters to their topics -> about once a second,
checkpoint the state of the patients touched and commit the offsets. Nothing is committed that is
not stored, so a worker killed at any instant replays from its last commit; the engine is
deterministic, so the replay emits the same events (dropped by id downstream) and the same points
(which overwrite themselves).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time

import orjson
from aiokafka import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ingest.codec import decode_readings
from ingest.validate import Limits
from wardwatch.bus import Bus, open_bus
from wardwatch.embedded_store import open_store
from wardwatch.httpd import serve
from wardwatch.settings import Settings, get_settings

import numpy as np

from wardwatch.models import RejectedInput, WaveformChunk

from .engine import DetectorEngine, _alert_line as alert_line

log = logging.getLogger("wardwatch.detect")

CHECKPOINT_EVERY_S = 1.0
MAX_RECORDS = 50_000


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.readings = Counter("wardwatch_detect_readings_total", "readings processed", registry=r)
        self.rejected = Counter("wardwatch_detect_rejected_total", "inputs rejected on the consumer side",
                                ["reason"], registry=r)
        self.late = Counter("wardwatch_detect_late_total", "late, duplicate or out-of-order readings", registry=r)
        self.alarms = Counter("wardwatch_detect_alarm_events_total", "alarm events", ["kind", "type"], registry=r)
        self.batch = Histogram("wardwatch_detect_batch_seconds", "time to process and store one batch", registry=r)
        self.lag = Gauge("wardwatch_detect_consumer_lag", "records behind the end of the readings topic", registry=r)
        self.patients = Gauge("wardwatch_detect_patients", "patients with state in this worker", registry=r)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, worker: "DetectorWorker") -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked) -> None:
        await self.worker.flush()

    async def on_partitions_assigned(self, assigned) -> None:
        await self.worker.restore(set(assigned))


class DetectorWorker:
    def __init__(self, settings: Settings, bus: Bus | None = None, store=None, engine_factory=None) -> None:
        self.settings = settings
        self.bus = bus or open_bus(settings)
        self.store = store or open_store(settings)
        self.topics = self.bus.topics
        self.engine_factory = engine_factory or (lambda: DetectorEngine(stale_after_ms=int(settings.stale_after_s * 1000)))
        self.engine = self.engine_factory()
        self.limits = Limits.from_settings(settings)
        self.metrics = WorkerMetrics()
        self.producer = self.bus.producer()
        self.consumer = None
        self._lock = asyncio.Lock()
        self._offsets: dict[TopicPartition, int] = {}
        self._dirty: set[str] = set()
        self._last_commit = time.monotonic()
        self._last_progress = time.monotonic()
        self._caught_up = False
        self.lag = 0
        self.kafka_ok = True
        self._pending: asyncio.Task | None = None
        self.n_partitions = settings.readings_partitions

    # ------------------------------------------------------------------ state

    async def restore(self, assigned: set[TopicPartition]) -> None:
        """A fresh engine holding exactly the patients of the assigned partitions, from the state topic."""
        async with self._lock:
            self.engine = self.engine_factory()
            self._offsets.clear()  # positions of partitions we may no longer own must never be committed
            self._dirty.clear()
            await self._load_limits()
            parts = {tp.partition for tp in assigned}
            if not parts:
                return
            reader = self.bus.consumer(self.topics.state, group_id=None, auto_offset_reset="earliest")
            await reader.start()
            try:
                states: dict[str, bytes] = {}
                ends = None
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    batches = await reader.getmany(timeout_ms=500, max_records=20_000)
                    for tp, msgs in batches.items():
                        if tp.partition in parts:
                            for m in msgs:
                                if m.key is not None:
                                    states[m.key.decode()] = m.value
                    if ends is None and reader.assignment():
                        ends = await reader.end_offsets(list(reader.assignment()))
                    if ends is not None and all([await reader.position(tp) >= end for tp, end in ends.items()]):
                        break
            finally:
                await reader.stop()
            for patient, data in states.items():
                if data:  # an empty value is a tombstone (discharged patient)
                    self.engine.load_state(patient, data)
            self.metrics.patients.set(len(self.engine.table))
            log.info("restored state of %d patients for %d partitions", len(states), len(parts))

    async def _load_limits(self) -> None:
        reader = self.bus.consumer(self.topics.limits, group_id=None, auto_offset_reset="earliest")
        await reader.start()
        try:
            while True:
                batches = await reader.getmany(timeout_ms=300, max_records=10_000)
                if not batches:
                    break
                for msgs in batches.values():
                    for m in msgs:
                        self._apply_limits(m.value)
        finally:
            await reader.stop()

    def _apply_limits(self, value: bytes) -> None:
        try:
            doc = orjson.loads(value)
            self.engine.set_limits(str(doc["patient"]), dict(doc["limits"]))
        except Exception:
            log.warning("ignored a malformed limits message")

    async def _follow_limits(self, stop: asyncio.Event) -> None:
        reader = self.bus.consumer(self.topics.limits, group_id=None, auto_offset_reset="latest")
        await reader.start()
        try:
            while not stop.is_set():
                for msgs in (await reader.getmany(timeout_ms=1000, max_records=1000)).values():
                    for m in msgs:
                        self._apply_limits(m.value)
        finally:
            await reader.stop()

    async def flush(self) -> None:
        """Checkpoint the touched patients' state, then commit the offsets it corresponds to."""
        async with self._lock:
            await self._checkpoint()

    async def _checkpoint(self) -> None:
        await self._drain()  # state and offsets must describe batches that are stored
        if self._dirty:
            items = [(p.encode(), self.engine.state_dict(p) or b"") for p in self._dirty]
            await self._retry("state checkpoint", lambda: self.producer.send_many(self.topics.state, items))
            self._dirty.clear()
        if self._offsets and self.consumer is not None:
            try:
                await self.consumer.commit(dict(self._offsets))
            except Exception as exc:  # a broker restart or a rebalance: the next checkpoint commits
                log.warning("offset commit failed (%s); will commit at the next checkpoint", type(exc).__name__)
                return
        self._last_commit = time.monotonic()

    async def _retry(self, what: str, send) -> None:
        """Kafka sends are retried until they succeed: the batch is not committed before, so a worker
        that waits loses nothing, and its health check says it is waiting."""
        delay = 0.2
        while True:
            try:
                await send()
                if not self.kafka_ok:
                    log.warning("Kafka sends recovered")
                self.kafka_ok = True
                return
            except Exception as exc:
                self.kafka_ok = False
                log.warning("%s failed (%s); retrying in %.1fs", what, type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # ------------------------------------------------------------------ the loop

    async def run(self, stop: asyncio.Event) -> None:
        await self.bus.ensure_topics()
        await self.producer.start()
        self.consumer = self.bus.consumer(self.topics.readings, group_id=self.settings.consumer_group,
                                          listener=_Rebalance(self), max_poll_interval_ms=600_000)
        await self.consumer.start()
        limits_task = asyncio.create_task(self._follow_limits(stop))
        try:
            while not stop.is_set():
                try:
                    batches = await self.consumer.getmany(timeout_ms=200, max_records=MAX_RECORDS)
                except KafkaError as exc:  # the broker is restarting: keep state, wait, fetch again
                    log.warning("fetch failed (%s); retrying", type(exc).__name__)
                    await asyncio.sleep(1.0)
                    continue
                n = sum(len(v) for v in batches.values())
                self._caught_up = n < MAX_RECORDS
                async with self._lock:
                    if n:
                        await self._process(batches)
                    if self._caught_up:
                        await self._tick()
                    if time.monotonic() - self._last_commit >= CHECKPOINT_EVERY_S:
                        await self._checkpoint()
                self._update_lag()
        finally:
            limits_task.cancel()
            try:
                async with self._lock:
                    await self._checkpoint()
            except Exception:
                log.exception("final checkpoint failed; the next worker replays from the last commit")
            await self.consumer.stop()
            await self.producer.stop()

    async def _process(self, batches) -> None:
        t0 = time.perf_counter()
        values, waves = [], []
        for tp, msgs in batches.items():
            for m in msgs:
                # Waveform chunks share the topic (and so the patient's partition and order).
                (waves if m.value and b'"kind":"waveform"' in m.value[:200] else values).append(m.value)
        now_ms = int(time.time() * 1000)
        cols, rejected = decode_readings(values, now_ms, None, limits=self.limits)
        out = self.engine.process(cols)
        for raw in waves:
            try:
                chunk = WaveformChunk.model_validate_json(raw)
            except Exception as exc:
                rejected.append(RejectedInput(source="kafka:readings", reason="schema",
                                              detail=f"waveform chunk: {str(exc)[:200]}", payload=raw[:4096].decode("utf-8", "replace")))
                continue
            events = self.engine.waveform(chunk.patient, np.asarray(chunk.ecg),
                                          None if chunk.pleth is None else np.asarray(chunk.pleth), chunk.fs, chunk.t_end)
            out.events.extend(events)
            out.alert_lines.extend(alert_line(e) for e in events)
        self._dirty.update(set(cols.patient.tolist()))
        # The previous batch's writes must be done before this one's start (order per patient), and
        # this one's are stored while the next batch is fetched and computed: one batch in flight.
        await self._drain()
        offsets = {tp: msgs[-1].offset + 1 for tp, msgs in batches.items()}
        self._pending = asyncio.create_task(self._persist(out, rejected, offsets, len(cols), t0))

    async def _persist(self, out, rejected, offsets, n: int, t0: float) -> None:
        """Stored (retried until InfluxDB has it) and published; only then are the offsets eligible."""
        await asyncio.gather(self.store.write_lines(out.lines, max_attempts=None),
                             self._publish(out.events, out.snapshots, rejected))
        self._offsets.update(offsets)
        self.metrics.readings.inc(n)
        self.metrics.late.inc(out.late)
        for r in rejected:
            self.metrics.rejected.labels(r.reason).inc()
        self.metrics.batch.observe(time.perf_counter() - t0)
        self.metrics.patients.set(len(self.engine.table))
        self._last_progress = time.monotonic()

    async def _drain(self) -> None:
        """Wait for the batch in flight: checkpoints and rebalances see only stored batches."""
        pending, self._pending = self._pending, None
        if pending is not None:
            await pending

    async def _tick(self) -> None:
        out = self.engine.tick(int(time.time() * 1000))
        if out.events:
            await self._drain()
            await self.store.write_lines(out.alert_lines, max_attempts=None)
            await self._publish(out.events, [], [])
            self._dirty.update(e.alert.patient for e in out.events)

    async def _publish(self, events, snapshots, rejected) -> None:
        if events:
            items = [(e.alert.patient.encode(), e.to_json()) for e in events]
            await self._retry("alert events", lambda: self.producer.send_many(self.topics.alerts, items))
            for e in events:
                self.metrics.alarms.labels(e.alert.kind.value, e.type.value).inc()
        if snapshots:
            snaps = [(s.patient.encode(), s.model_dump_json().encode()) for s in snapshots]
            await self._retry("vitals snapshots", lambda: self.producer.send_many(self.topics.vitals, snaps))
        if rejected:
            dead = [(b"kafka:readings", r.model_dump_json().encode()) for r in rejected]
            await self._retry("dead letters", lambda: self.producer.send_many(self.topics.deadletter, dead))

    def _update_lag(self) -> None:
        try:
            lag = 0
            for tp in self.consumer.assignment():
                hw = self.consumer.highwater(tp)
                pos = self._offsets.get(tp)
                if hw is not None and pos is not None:
                    lag += max(0, hw - pos)
            self.lag = lag
            self.metrics.lag.set(lag)
        except Exception:
            pass

    # ------------------------------------------------------------------ health

    def health(self) -> tuple[bool, dict]:
        stalled = self.lag > 0 and time.monotonic() - self._last_progress > 30
        behind = self.lag > 500_000
        db = self.store.health
        db_down = not db.ok and db.failing_since is not None and time.monotonic() - db.failing_since > 10
        ok = not (stalled or behind or db_down or not self.kafka_ok)
        return ok, {"ok": ok, "lag": self.lag, "stalled": stalled, "behind": behind, "store_ok": db.ok,
                    "kafka_ok": self.kafka_ok,
                    "store_error": db.last_error, "patients": len(self.engine.table)}

    async def serve_health(self, host: str, port: int):
        def healthz():
            ok, doc = self.health()
            return (200 if ok else 503), "application/json", orjson.dumps(doc)

        def metrics():
            return 200, "text/plain; version=0.0.4", generate_latest(self.metrics.registry)

        return await serve(host, port, {"/healthz": healthz, "/metrics": metrics})


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics-host", default="127.0.0.1")
    p.add_argument("--metrics-port", type=int, default=None, help="default: WARDWATCH_DETECT_METRICS_PORT")


def run(args: argparse.Namespace) -> int:
    settings = get_settings()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        worker = DetectorWorker(settings)
        server = await worker.serve_health(args.metrics_host, args.metrics_port or settings.detect_metrics_port)
        log.info("detector worker started (group %s)", settings.consumer_group)
        try:
            await worker.run(stop)
        finally:
            server.close()

    asyncio.run(main())
    return 0
