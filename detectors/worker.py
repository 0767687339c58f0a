"""Run a detector worker in the consumer group on the readings topic (``wardwatch detect``).

The loop, top to bottom: fetch a batch -> decode and validate (rejections to the dead-letter
topic) -> the detector engine (a batch that raises is split until the records that break it are
found; they go to the dead-letter topic and raise a technical alarm) -> hand the batch's effects
to the :class:`~wardwatch.checkpoint.Checkpoint`: alert events, snapshots and dead letters on the
``publish`` lane (given its turn at once, so alarms leave before the next batch is computed),
InfluxDB on the ``store`` lane, both in the background, up to ``detect_max_in_flight`` batches deep
-> every ``detect_checkpoint_s`` seconds a background commit: the touched patients' state is taken
at once as binary records (:mod:`detectors.state_records`), and behind the loop every effect is
acknowledged, then that state (carrying the offsets it covers), then the offsets. Nothing is
committed that is not stored, so a worker killed at any instant replays from its last commit; the
engine is deterministic, so the replay emits the same events (dropped by id downstream) and the
same points (which overwrite themselves). A restored patient whose state already covers a replayed
record skips it, so state and offsets never disagree.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time

import numpy as np
import orjson
from aiokafka import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from wardwatch import alarm_texts, heap, web
from wardwatch.auth import TokenStore
from wardwatch.bus import Bus, open_bus
from wardwatch.checkpoint import Checkpoint, CheckpointAborted
from wardwatch.codec import Invalid, Limits, check_time, decode_readings, encode_readings
from wardwatch.columns import ReadingColumns
from wardwatch.embedded_store import open_store
from wardwatch.lineprotocol import alert_line, retraction_line
from wardwatch.metrics_catalog import METRICS
from wardwatch.models import RejectedInput, Retraction, WaveformChunk
from wardwatch.settings import Settings
from wardwatch.supervisor import Supervisor
from wardwatch.token_sync import follow_tokens

from .early_warning.drift import EarlyWarningDrift
from .backlog import PART_BUDGET_S, Backlog
from .engine import DetectorEngine, EngineOutput
from .routing import Routes
from .state_records import StateRecord, compress_records, read_record

log = logging.getLogger("wardwatch.detect")

MAX_RECORDS = 50_000
QUARANTINE_RED_S = 300.0  # health stays red this long after records were set aside (or state refused)
# Turns of the event loop given to the publish lane after each batch: one to hand the events to the
# producer, the next ones for aiokafka's sender to drain them and write the request to the broker.
PUBLISH_TURNS = 4
# The most reading times of one patient computed in one engine call (about 0.55 ms each when one
# patient flushes a backlog, scripts/backlog-rounds.py): the loop waits no longer than that for its turn.
MAX_ROUNDS = 256
# Each checkpoint interval is drawn from [1 - CHECKPOINT_SPREAD, 1] x detect_checkpoint_s: the workers
# of a group commit together at every rebalance (each flushes before its partitions move), and with
# a fixed interval their checkpoints would stay in step after it, every worker's stall on the shared
# cores at once. Never later than the setting, which the alert service's stall judgement relies on.
CHECKPOINT_SPREAD = 0.2
# A waveform chunk or a withdrawal however its JSON is spaced (a gateway that is not ours writes
# `"kind": "waveform"`): one search a record, as readings are the rest.
_KIND = re.compile(rb'"kind"\s*:\s*"(waveform|retraction)"')


def checkpoint_interval(period_s: float) -> float:
    """Seconds until the next periodic checkpoint: drawn anew each time (CHECKPOINT_SPREAD)."""
    return period_s * (1.0 - CHECKPOINT_SPREAD * random.random())


def _set_aside(what: str, raw: bytes, exc: Exception) -> RejectedInput:
    """A record of the readings topic that is not a reading (a waveform chunk, a withdrawal) and
    cannot be taken: kept on the dead-letter topic with its reason."""
    reason, why = (exc.reason, exc.detail) if isinstance(exc, Invalid) else \
        ("schema", f"{type(exc).__name__}: {str(exc)[:200]}")
    return RejectedInput(source="kafka:readings", reason=reason, detail=f"{what}: {why}",
                         payload=raw[:4096].decode("utf-8", "replace"))


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.readings = Counter("wardwatch_detect_readings_total", "readings processed", registry=r)
        self.rejected = Counter("wardwatch_detect_rejected_total", "inputs rejected on the consumer side",
                                ["reason"], registry=r)
        self.late = Counter("wardwatch_detect_late_total", "late, duplicate or out-of-order readings", registry=r)
        self.rerouted = Counter("wardwatch_detect_rerouted_total",
                                "records on another partition than their patient's, sent on to it", registry=r)
        self.alarms = Counter("wardwatch_detect_alarm_events_total", "alarm events", ["kind", "type"], registry=r)
        self.batch = Histogram("wardwatch_detect_batch_seconds", "time to process and store one batch", registry=r)
        self.lag = Gauge("wardwatch_detect_consumer_lag", "records behind the end of the readings topic", registry=r)
        self.patients = Gauge("wardwatch_detect_patients", "patients with state in this worker", registry=r)
        self.quarantined = Counter("wardwatch_detect_quarantined_total",
                                   "records the engine could not process (dead-lettered)", registry=r)
        self.rewinds = Counter("wardwatch_detect_rewinds_total", "checkpoints aborted and replayed", registry=r)
        self.state_refused = Counter("wardwatch_detect_state_refused_total",
                                     "state records of another layout or version, not loaded", registry=r)
        self.checkpoint = Histogram("wardwatch_detect_checkpoint_seconds",
                                    "time the loop spends taking one state checkpoint (the rest is in the background)",
                                    registry=r)
        self.gc_pause = Histogram("wardwatch_detect_gc_pause_seconds", "one garbage collection's pause, by generation",
                                  ["generation"], buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1),
                                  registry=r)
        self.gc_pauses = heap.GcPauses(lambda gen, s: self.gc_pause.labels(str(gen)).observe(s))
        self.drift = EarlyWarningDrift(r)  # the risk's distribution and alert episodes per patient-day


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, worker: "DetectorWorker") -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked) -> None:
        await self.worker.flush()

    async def on_partitions_assigned(self, assigned) -> None:
        await self.worker.restore(set(assigned))


class _BatchRaised(Exception):
    """The engine raised on a batch: its state is suspect, so rewind and replay it carefully."""


def _covers_newer(new: dict, old: dict) -> bool:
    """Whether a state record saved later is really newer: a worker that was frozen and lost its
    partitions may save state after the new owner did, covering less; that record must lose."""
    common = new.keys() & old.keys()
    return not common or any(new[k] >= old[k] for k in common)


class DetectorWorker:
    def __init__(self, settings: Settings, bus: Bus | None = None, store=None, engine_factory=None) -> None:
        self.settings = settings
        self.bus = bus or open_bus(settings)
        self.store = store or open_store(settings)
        self.topics = self.bus.topics
        self.engine_factory = engine_factory or (lambda: DetectorEngine(stale_after_ms=int(settings.stale_after_s * 1000)))
        self.engine = self.engine_factory()
        self.limits = Limits.from_settings(settings)
        self.routes = Routes()
        self.metrics = WorkerMetrics()
        self.producer = self.bus.producer()
        # The state checkpoint (megabytes at once) has its own connection: aiokafka sends one request
        # per broker at a time, so on the shared producer alarms would queue behind it.
        self.state_producer = self.bus.producer()
        self.consumer = None
        self.checkpoint = Checkpoint(max_in_flight=settings.detect_max_in_flight)
        self.supervisor = Supervisor()
        # /healthz and /metrics take tokens made or revoked on any machine (the tokens topic, followed in start()).
        self.tokens = TokenStore(settings.tokens_path)
        self._lock = asyncio.Lock()
        # partition -> patient key -> offset its restored state already covers (replays skip below it)
        self._skip: dict[TopicPartition, dict[bytes, int]] = {}
        # partition -> end of a range whose batch made the engine raise (replayed with savepoints)
        self._suspect: dict[TopicPartition, int] = {}
        self.backlog: Backlog | None = None  # a flushed backlog's rows not yet computed (detectors/backlog.py)
        self._last_commit = time.monotonic()
        self._commit_every = checkpoint_interval(settings.detect_checkpoint_s)
        self._last_progress = time.monotonic()
        self._last_quarantine: float | None = None
        self._state_refused_at: float | None = None
        self._last_step_error: str | None = None
        self._step_failed_at: float | None = None
        self.lag = 0
        self.kafka_ok = True

    # ------------------------------------------------------------------ state

    async def restore(self, assigned: set[TopicPartition]) -> None:
        """A fresh engine holding exactly the patients of the assigned partitions, from the state topic."""
        async with self._lock:
            await self._restore(assigned)

    async def _restore(self, assigned: set[TopicPartition]) -> None:
        await self.checkpoint.cancel()
        self.checkpoint.reset()  # positions of partitions we may no longer own must never be committed
        self.engine = self.engine_factory()
        self.backlog = None  # replayed from the last commit, as its offsets were never committed
        self._skip = {}
        await self._load_limits()
        parts = {tp.partition for tp in assigned}
        if not parts:
            return
        states = await self._read_states(parts)
        loaded, refused = self.engine.load_records({k.decode(): rec for k, rec in states.items()})
        for patient in loaded:
            key = patient.encode()
            for p, off in states[key].covers.items():
                self._skip.setdefault(TopicPartition(self.topics.readings, p), {})[key] = off
        if refused:
            # Fail loud, never load garbage: those patients start fresh from the replayed readings
            # (alarm delays and filters begin again). Counts only: no patient ids in logs.
            self._state_refused_at = time.monotonic()
            self.metrics.state_refused.inc(refused)
            log.error("refused %d state record(s) of another layout or version; those patients start fresh", refused)
        self.metrics.patients.set(len(self.engine.table))
        log.info("restored state of %d patients for %d partitions", len(loaded), len(parts))

    async def _read_states(self, parts: set[int]) -> dict[bytes, StateRecord]:
        states: dict[bytes, StateRecord] = {}

        def keep(tp, m) -> None:
            if tp.partition not in parts or m.key is None:
                return
            rec = read_record(m.value)
            old = states.get(m.key)
            if old is None or _covers_newer(rec.covers, old.covers):
                states[m.key] = rec

        await self._read_to_end(self.topics.state, keep)
        return states

    async def _read_to_end(self, topic: str, on_record, timeout_s: float = 60.0) -> None:
        """Every record of a compacted topic up to its end as of now (no waiting on a quiet topic)."""
        reader = self.bus.consumer(topic, group_id=None, auto_offset_reset="earliest")
        await reader.start()
        try:
            ends = None
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if ends is None and reader.assignment():
                    ends = await reader.end_offsets(list(reader.assignment()))
                if ends is not None and all([await reader.position(tp) >= end for tp, end in ends.items()]):
                    return
                for tp, msgs in (await reader.getmany(timeout_ms=200, max_records=20_000)).items():
                    for m in msgs:
                        on_record(tp, m)
            log.error("could not read %s to its end within %.0fs", topic, timeout_s)
        finally:
            await reader.stop()

    def _state_items(self, dirty: set[str], offsets: dict) -> list[tuple[bytes, bytes]]:
        """The state records of the dirty patients as of now, keyed by patient (compaction keeps the newest)."""
        t0 = time.perf_counter()
        covers = {tp.partition: off for tp, off in offsets.items()}
        patients = sorted(dirty)
        items = list(zip([p.encode() for p in patients], self.engine.state_records(patients, covers)))
        self.metrics.checkpoint.observe(time.perf_counter() - t0)
        return items

    async def _send_state(self, items: list[tuple[bytes, bytes]]) -> None:
        # Compressed beside the loop (zlib releases the GIL): a tenth of the bytes for the broker.
        values = await asyncio.to_thread(compress_records, [v for _, v in items])
        items = [(k, v) for (k, _), v in zip(items, values)]
        await self._retry("state checkpoint", lambda: self.state_producer.send_many(self.topics.state, items))

    async def _save_state(self, dirty: set[str], offsets: dict) -> None:
        await self._send_state(self._state_items(dirty, offsets))

    async def _load_limits(self) -> None:
        await self._read_to_end(self.topics.limits, lambda tp, m: self._apply_limits(m.value))

    def _apply_limits(self, value: bytes) -> None:
        try:
            doc = orjson.loads(value)
            self.engine.set_limits(str(doc["patient"]), dict(doc["limits"]))
        except Exception:
            log.warning("ignored a malformed limits message")

    async def _follow_limits(self) -> None:
        reader = self.bus.consumer(self.topics.limits, group_id=None, auto_offset_reset="latest")
        await reader.start()
        try:
            while True:
                for msgs in (await reader.getmany(timeout_ms=1000, max_records=1000)).values():
                    for m in msgs:
                        self._apply_limits(m.value)
        finally:
            await reader.stop()

    async def flush(self) -> None:
        """Commit what is stored (before partitions are revoked, and at shutdown)."""
        async with self._lock:
            await self._finish_backlog()
            await self._commit()

    async def _finish_backlog(self) -> None:
        """Compute the backlog held to its end, so that the commit covers it (a rebalance, a stop)."""
        try:
            while self.backlog is not None:
                await self._continue_backlog()
        except _BatchRaised:
            await self._replay_carefully()

    async def _replay_carefully(self) -> None:
        """The engine raised: back to the last commit at once; the replay of the suspect range is
        processed carefully (savepoints, split), so only the records that break the engine are lost."""
        log.error("the engine raised on a batch; replaying it carefully from the last commit")
        self.metrics.rewinds.inc()
        await self._rewind()

    def _commit_in_background(self) -> None:
        """The periodic checkpoint: state taken now, the waiting for acknowledgements behind the loop."""
        if self.checkpoint.commit_in_background(self._state_items, self._send_state, self._commit_offsets):
            self._committed()

    async def _commit(self) -> None:
        try:
            await self.checkpoint.commit(self._save_state, self._commit_offsets)
        except CheckpointAborted as exc:
            log.error("checkpoint aborted (%s); replaying from the last commit", exc)
            self.metrics.rewinds.inc()
            await self._rewind()
        self._committed()

    def _committed(self) -> None:
        """A checkpoint was taken: the next is due after a newly drawn interval (CHECKPOINT_SPREAD)."""
        self._last_commit = time.monotonic()
        self._commit_every = checkpoint_interval(self.settings.detect_checkpoint_s)

    async def _commit_offsets(self, offsets: dict) -> None:
        if self.consumer is not None:
            await self.consumer.commit(offsets)

    async def _rewind(self) -> None:
        """Back to the last commit: state from the state topic, positions from the committed offsets."""
        if self.consumer is None:
            return
        assigned = set(self.consumer.assignment())
        await self._restore(assigned)
        for tp in assigned:
            committed = await self.consumer.committed(tp)
            if committed is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, committed)

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

    async def start(self) -> None:
        await self.bus.ensure_topics()
        await self.producer.start()
        await self.state_producer.start()
        self.consumer = self.bus.consumer(self.topics.readings, group_id=self.settings.consumer_group,
                                          listener=_Rebalance(self), max_poll_interval_ms=600_000)
        await self.consumer.start()
        self.supervisor.spawn("limits", self._follow_limits)
        self.supervisor.spawn("tokens", lambda: follow_tokens(self.bus, self.tokens, asyncio.Event()))
        # Start-up is done: what is on the heap now lives as long as the process (wardwatch.heap).
        heap.settle()
        self.metrics.gc_pauses.install()

    async def step(self, timeout_ms: int = 200) -> int:
        """One fetch: process it, tick the time-driven rules when caught up, commit when due."""
        try:
            # With a backlog held, fetch what is there and go on computing it (no waiting for more).
            batches = await self.consumer.getmany(timeout_ms=0 if self.backlog is not None else timeout_ms,
                                                  max_records=MAX_RECORDS)
        except KafkaError as exc:  # the broker is restarting: keep state, wait, fetch again
            log.warning("fetch failed (%s); retrying", type(exc).__name__)
            await asyncio.sleep(1.0)
            return 0
        n = sum(len(v) for v in batches.values())
        async with self._lock:
            if self.checkpoint.aborted:  # an effect or a background state save failed meanwhile
                log.error("checkpoint aborted (%r); replaying from the last commit", self.checkpoint.failure)
                self.metrics.rewinds.inc()
                await self._rewind()
                return 0
            try:
                if n:
                    await self._process(batches)
                if self.backlog is not None:
                    await self._continue_backlog()
            except _BatchRaised:
                await self._replay_carefully()
                return n
            # With a backlog held, its patients' devices are not silent: their readings wait here.
            if self.backlog is None and await self._caught_up():
                await self._tick()
            if time.monotonic() - self._last_commit >= self._commit_every:
                self._commit_in_background()
        self._update_lag()
        return n

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        failures = 0
        try:
            while not stop.is_set():
                try:
                    await self.step()
                    failures = 0
                except Exception as exc:  # never die on data or on one bad moment: rewind and go on
                    failures += 1
                    self._last_step_error, self._step_failed_at = type(exc).__name__, time.monotonic()
                    log.exception("worker step failed (%s); rewinding to the last commit", type(exc).__name__)
                    async with self._lock:
                        await self._rewind()
                    await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))
        finally:
            await self.close()

    async def close(self) -> None:
        """The final commit, unless the checkpoint was aborted: then state must not run ahead."""
        try:
            async with self._lock:
                if not self.checkpoint.aborted:
                    await self._finish_backlog()
                    await self._commit()
        except Exception:
            log.exception("final checkpoint failed; the next worker replays from the last commit")
        self.metrics.gc_pauses.remove()
        await self.supervisor.stop()
        await self.consumer.stop()
        await self.producer.stop()
        await self.state_producer.stop()

    def _skip_covered(self, batches: dict) -> dict:
        """After a restore, drop replayed records whose patient's saved state already includes them."""
        if not self._skip:
            return batches
        out = {}
        for tp, msgs in batches.items():
            skip = self._skip.get(tp)
            if skip:
                top = max(skip.values())
                msgs = [m for m in msgs if not (m.offset < skip.get(m.key, -1))]
                if batches[tp][-1].offset + 1 >= top:
                    del self._skip[tp]
            out[tp] = msgs
        return out

    async def _process(self, batches) -> None:
        t0 = time.perf_counter()
        offsets = {tp: msgs[-1].offset + 1 for tp, msgs in batches.items() if msgs}
        now_ms = int(time.time() * 1000)
        partitions = sorted(self.consumer.partitions_for_topic(self.topics.readings) or ())
        parts, rejected, waves, withdrawn, away = [], [], [], [], []
        for tp, msgs in self._skip_covered(batches).items():
            values = []
            for m in msgs:
                # Waveform chunks and withdrawals share the topic (and so the patient's partition and order).
                kind = _KIND.search(m.value[:200]) if m.value else None
                if kind is None:
                    values.append(m.value)
                elif kind[1] == b"waveform":
                    waves.append((tp.partition, m.value))
                else:
                    withdrawn.append((tp.partition, m.value))
            cols, rej = decode_readings(values, now_ms, None, limits=self.limits)
            rejected += rej
            if partitions and len(cols):  # a reading goes where its patient lives (detectors/routing.py)
                moved = self.routes.away(cols.patient, tp.partition, partitions)
                if moved.any():
                    away += encode_readings(cols.take(moved), checked=True)
                    cols = cols.take(~moved)
            if self.backlog is not None:  # its patients' new rows go behind theirs (detectors/backlog.py)
                cols = self.backlog.hold(cols, tp, offsets)
            parts.append(cols)
        cols = parts[0] if len(parts) == 1 else ReadingColumns.concat(parts)
        suspect = self._is_suspect(batches)
        # A flushed backlog in parts, the loop given its turns between them (engine.split_rounds); a
        # suspect batch whole, as the careful path splits it its own way.
        chunks = [(cols, None)] if suspect else self.engine.split_rounds(cols, MAX_ROUNDS)
        await self._compute_parts(chunks, offsets, now_ms, t0, suspect, rejected=rejected, waves=waves,
                                  withdrawn=withdrawn, away=away, partitions=partitions)

    async def _continue_backlog(self) -> None:
        """The next parts of the backlog held (detectors/backlog.py), for PART_BUDGET_S at most."""
        backlog, self.backlog = self.backlog, None
        chunks = self.engine.split_rounds(backlog.cols, MAX_ROUNDS)
        await self._compute_parts(chunks, backlog.offsets, int(time.time() * 1000), time.perf_counter(), False)

    async def _compute_parts(self, chunks: list, offsets: dict, now_ms: int, t0: float, suspect: bool, *,
                             rejected: list = (), waves: list = (), withdrawn: list = (), away: list = (),
                             partitions: list = ()) -> None:
        """The engine on each part, its effects handed to the checkpoint part by part; the fetch's
        rejections, waveform chunks, withdrawals and rerouted records go with the first. After
        PART_BUDGET_S the parts left are held as the backlog for the next steps, with ``offsets``;
        else these move with the last part: a commit never covers readings not yet computed."""
        started = time.perf_counter()
        for i, (chunk, rows) in enumerate(chunks):
            if i and time.perf_counter() - started >= PART_BUDGET_S:
                rest = ReadingColumns.concat([c for c, _ in chunks[i:]])
                if self.backlog is None:
                    self.backlog = Backlog(rest, dict(offsets))
                else:
                    self.backlog.keep(rest, offsets)
                return
            last = i == len(chunks) - 1
            if suspect:
                out = self._compute(chunk, rejected, now_ms)
            else:
                try:
                    out = self.engine.process(chunk, now_ms, rows)
                except Exception as exc:
                    held = self.backlog.offsets if self.backlog is not None else {}
                    for tp, end in {**held, **offsets}.items():
                        self._suspect[tp] = max(end, self._suspect.get(tp, 0))
                    raise _BatchRaised from exc
            dirty = set(chunk.patient.tolist())
            if i == 0:
                # Waveform chunks and withdrawals are checked as they come (they wait for no backlog).
                for partition, raw in waves:
                    self._waveform(raw, out, rejected, dirty, away if partitions else None, partition, partitions)
                for partition, raw in withdrawn:
                    self._withdrawal(raw, out, rejected, away if partitions else None, partition, partitions)
            dirty |= {e.alert.patient for e in out.events}
            effects = {"publish": self._publish(out.events, out.snapshots, rejected if i == 0 else []),
                       "store": self._store(out, len(chunk), t0)}
            if away and i == 0:  # committed past only once the patient's own partition has them (detectors/routing.py)
                effects["reroute"] = self._reroute(away)
            await self.checkpoint.add(offsets if last else {}, effects, dirty)
            # getmany returns without yielding while records are buffered, and the next batch's compute
            # then holds the loop: give the publish lane its turns now, so alarms leave first.
            for _ in range(PUBLISH_TURNS):
                await asyncio.sleep(0)

    def _is_suspect(self, batches: dict) -> bool:
        """Whether this batch replays records of one that made the engine raise (then, and only
        then, it pays for savepoints); a partition is trusted again once it is past the range."""
        suspect = False
        for tp, msgs in batches.items():
            end = self._suspect.get(tp)
            if end is not None and msgs:
                suspect |= msgs[0].offset < end
                if msgs[-1].offset + 1 >= end:
                    del self._suspect[tp]
        return suspect

    def _compute(self, cols: ReadingColumns, rejected: list[RejectedInput], now_ms: int | None = None) -> EngineOutput:
        """The engine on a suspect batch: undone and split when it raises, to find the records
        that break it, which are set aside (dead letter + technical alarm) while the rest go on."""
        out, bad = EngineOutput(), []
        self._bisect(cols, np.arange(len(cols)), out, bad, now_ms)  # its first try is the whole batch
        now = int(time.time() * 1000)
        for i, exc in bad:
            rec = {"patient": cols.patient[i], "device": cols.device[i], "metric": METRICS[int(cols.metric[i])].value
                   if 0 <= int(cols.metric[i]) < len(METRICS) else int(cols.metric[i]),
                   "value": float(cols.value[i]), "ts": int(cols.ts[i])}
            rejected.append(RejectedInput(source="kafka:readings", reason="processing_error",
                                          detail=f"the detector engine could not process this reading ({type(exc).__name__})",
                                          payload=orjson.dumps(rec).decode(), received=now))
        for patient in sorted({str(cols.patient[i]) for i, _ in bad}):
            ev = self.engine.technical_alarm(patient, "processing_error", now,
                                             alarm_texts.processing_error())
            out.events.append(ev)
            out.alert_lines.append(alert_line(ev))
        if bad:
            self._last_quarantine = time.monotonic()
            self.metrics.quarantined.inc(len(bad))
            log.error("set aside %d record(s) the engine could not process", len(bad))
        return out

    def _bisect(self, cols: ReadingColumns, idx: np.ndarray, out: EngineOutput, bad: list,
                now_ms: int | None = None) -> None:
        part = cols.take(idx)
        sp = self.engine.savepoint(part)
        try:
            res = self.engine.process(part, now_ms)
        except Exception as exc:
            self.engine.rollback(sp)
            if len(idx) == 1:
                bad.append((int(idx[0]), exc))
                return
            mid = len(idx) // 2
            self._bisect(cols, idx[:mid], out, bad, now_ms)
            self._bisect(cols, idx[mid:], out, bad, now_ms)
            return
        out.merge(res)

    def _waveform(self, raw: bytes, out: EngineOutput, rejected: list[RejectedInput], dirty: set[str],
                  away: list | None = None, partition: int = 0, partitions: list[int] = ()) -> None:
        try:
            chunk = WaveformChunk.model_validate_json(raw)
            if away is not None and self.routes.is_away(chunk.patient, partition, partitions):
                away.append((chunk.patient.encode(), raw))
                return
            # The time window of readings (wardwatch.codec): a chunk from a wrong clock is rejected, never judged.
            check_time(chunk.t_end, int(time.time() * 1000), self.limits)
            dirty.add(chunk.patient)  # its cross-check state moves on (the newest chunk's time)
            events = self.engine.waveform(chunk.patient, np.asarray(chunk.ecg),
                                          None if chunk.pleth is None else np.asarray(chunk.pleth), chunk.fs, chunk.t_end)
        except Exception as exc:
            rejected.append(_set_aside("waveform chunk", raw, exc))
            return
        out.events.extend(events)
        out.alert_lines.extend(alert_line(e) for e in events)

    def _withdrawal(self, raw: bytes, out: EngineOutput, rejected: list[RejectedInput], away: list | None = None,
                    partition: int = 0, partitions: list[int] = ()) -> None:
        """A reading its sender withdrew, stored on the store lane (before or after the reading it
        names: the history reads the two apart). The engine's state and alarms already raised on it
        stay as they were: what was shown to a nurse is not unsaid. Checked as a reading is (its time
        in the accepted window, a line InfluxDB takes), so that no withdrawal can stall the store lane."""
        try:
            r = Retraction.model_validate_json(raw)
            if away is not None and self.routes.is_away(r.patient, partition, partitions):
                away.append((r.patient.encode(), raw))
                return
            check_time(r.ts, int(time.time() * 1000), self.limits)
            line = retraction_line(r.patient, r.metric.value, r.reason or "withdrawn", r.ts)
        except Exception as exc:
            rejected.append(_set_aside("retraction", raw, exc))
            return
        out.retraction_lines.append(line)

    async def _store(self, out: EngineOutput, n: int, t0: float) -> None:
        """Retried until InfluxDB has it; the batch's offsets wait for this (and for the publish lane)."""
        await self.store.write_lines(out.lines, max_attempts=None)
        self.metrics.readings.inc(n)
        self.metrics.late.inc(out.late)
        self.metrics.batch.observe(time.perf_counter() - t0)
        self.metrics.patients.set(len(self.engine.table))
        self.metrics.drift.observe(self.engine, out)
        self._last_progress = time.monotonic()

    async def _tick(self) -> None:
        out = self.engine.tick(int(time.time() * 1000))
        if out.events:
            await self.checkpoint.add({}, {"publish": self._publish(out.events, [], []),
                                           "store": self.store.write_lines(out.alert_lines, max_attempts=None)},
                                      {e.alert.patient for e in out.events})

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
            for r in rejected:
                self.metrics.rejected.labels(r.reason).inc()

    async def _reroute(self, items: list[tuple[bytes, bytes]]) -> None:
        await self._retry("rerouted readings", lambda: self.producer.send_many(self.topics.readings, items))
        self.metrics.rerouted.inc(len(items))

    async def _caught_up(self) -> bool:
        """Silence is judged only with nothing waiting: a backlog is not a silent device."""
        for tp in self.consumer.assignment():
            hw = self.consumer.highwater(tp)
            if hw is not None and await self.consumer.position(tp) < hw:
                return False
        return True

    def _update_lag(self) -> None:
        try:
            lag = 0
            for tp in self.consumer.assignment():
                hw = self.consumer.highwater(tp)
                pos = self.checkpoint.offsets.get(tp)
                if hw is not None and pos is not None:
                    lag += max(0, hw - pos)
            self.lag = lag
            self.metrics.lag.set(lag)
        except Exception:
            pass

    # ------------------------------------------------------------------ health

    def health(self) -> tuple[bool, dict]:
        now = time.monotonic()
        stalled = self.lag > 0 and now - self._last_progress > 30
        behind = self.lag > 500_000
        db = self.store.health
        db_down = not db.ok and db.failing_since is not None and now - db.failing_since > 10
        quarantined = self._last_quarantine is not None and now - self._last_quarantine < QUARANTINE_RED_S
        state_refused = self._state_refused_at is not None and now - self._state_refused_at < QUARANTINE_RED_S
        step_failing = self._step_failed_at is not None and now - self._step_failed_at < 30
        tasks_ok, tasks = self.supervisor.health()
        ok = not (stalled or behind or db_down or not self.kafka_ok or quarantined or state_refused or step_failing
                  or not tasks_ok)
        return ok, {"ok": ok, "lag": self.lag, "stalled": stalled, "behind": behind, "store_ok": db.ok,
                    "kafka_ok": self.kafka_ok, "store_error": db.last_error, "patients": len(self.engine.table),
                    "quarantined_recently": quarantined, "state_refused_recently": state_refused, "step_error": self._last_step_error if step_failing else None,
                    "tasks": tasks}

    async def serve_health(self, host: str, port: int) -> web.Served:
        """/healthz and /metrics (detectors/health.py) on ``host:port``, in this event loop; the
        handle's ``close()`` stops it (``await wait_closed()`` waits for that)."""
        from .health import create_app

        return await web.serve(create_app(self, self.tokens), host, port)

