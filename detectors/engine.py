"""The detector engine: one batch of readings in, cleaned values, scores and alarm events out.

The engine only orders the detectors (each a small class on one batch protocol,
:mod:`detectors.protocol`): per round the signal filters, device silence, sparklines, sensor-off
and limit alarms; then the score stages and the early-warning alarm; per batch the snapshots and
the stored lines (:mod:`wardwatch.lineprotocol`).

Everything is per patient and held in numpy arrays (rows = patients, columns = metrics or alarm
conditions), and a batch is processed in "rounds": round k takes the k-th new reading of every
(patient, metric) in the batch, so a round is one vectorised step for thousands of patients.

The engine is deterministic given its readings: alarm delays run on reading time, alert ids come
from (patient, condition, onset), event ids from (alert, type, time). A worker that crashes and
replays a stretch of readings therefore emits the very same events, which consumers drop by id,
and the same InfluxDB points, which overwrite themselves. Wall-clock time enters only in
:meth:`DetectorEngine.tick`, for devices that went silent.

Late, duplicate and out-of-order readings are stored (they are real measurements) but do not drive
filters or alarms: a reading older than the newest one already processed for that patient and
metric cannot change the present.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import orjson

from wardwatch.alarm_rules import DEFAULT_RULES, LimitRule
from wardwatch.columns import ReadingColumns
from wardwatch.lineprotocol import VitalsLines, alert_line, patient_heads, score_lines
from wardwatch.metrics_catalog import METRICS
from wardwatch.models import AlertEvent, AlertEventType, AlertKind, Priority

from .alarms.asystole import WaveformCrossCheck
from .alarms.clock_ahead import SLACK_MS, ClockAhead
from .alarms.device_silence import DeviceSilence
from .alarms.early_warning import EarlyWarningAlarm
from .alarms.events import make_event
from .alarms.limits import LimitAlarms
from .alarms.sensor_off import SensorOffAlarms
from .alarms.signal_lost import SignalLost
from .filters import SignalFilter
from .protocol import Round, RowState
from .scores.base import ScoreStage, StageScores
from .snapshots import Snapshot, Snapshots
from .state_records import StateLayout, StateRecord

M = len(METRICS)
METRIC_NAMES = [m.value for m in METRICS]
SCORE_WRITE_EVERY_MS = 10_000


@dataclass
class EngineOutput:
    vitals_lines: list[str] = field(default_factory=list)
    score_lines: list[str] = field(default_factory=list)
    alert_lines: list[str] = field(default_factory=list)
    retraction_lines: list[str] = field(default_factory=list)  # readings withdrawn by their senders (the worker's)
    events: list[AlertEvent] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    late: int = 0  # readings stored but not driving alarms (late, duplicate, out of order)

    @property
    def lines(self) -> list[str]:
        return self.vitals_lines + self.score_lines + self.alert_lines + self.retraction_lines

    def merge(self, other: "EngineOutput") -> None:
        """Append a later part of the same batch (the worker splits a batch that raised)."""
        for name in ("vitals_lines", "score_lines", "alert_lines", "retraction_lines", "events", "snapshots"):
            getattr(self, name).extend(getattr(other, name))
        self.late += other.late


@dataclass
class Savepoint:
    rows: np.ndarray
    saved: list
    scores: dict


class PatientTable:
    """Patient id -> row in the state arrays; rows are never reused while the engine lives."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.ids: list[str] = []

    def __len__(self) -> int:
        return len(self.ids)

    def rows_for(self, patients: np.ndarray) -> np.ndarray:
        # Known patients by one dict lookup each (a batch is mostly patients seen before); new ones
        # get rows as before: in sorted order of their ids.
        get = self.index.get
        try:
            rows = np.fromiter((get(p, -1) for p in patients.tolist()), np.int64, len(patients))
        except TypeError:  # an unhashable id: only its text (as before) names the patient
            return self._add(patients)
        new = rows < 0
        if new.any():
            rows[new] = self._add(patients[new])
        return rows

    def _add(self, patients: np.ndarray) -> np.ndarray:
        uniq, inv = np.unique(patients.astype(str), return_inverse=True)
        rows = np.empty(len(uniq), np.int64)
        for i, p in enumerate(uniq):
            r = self.index.get(p)
            if r is None:
                r = self.index[p] = len(self.ids)
                self.ids.append(p)
            rows[i] = r
        return rows[inv]


class _Written(RowState):
    """When each patient's scores were last stored (they are stored at most every 10 s)."""

    ARRAYS = {"score_written": ((), np.int64, -1)}


def round_ranks(rows: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Each reading's round: the rank of its time among its patient's distinct reading times (0 for
    the first), for readings sorted by patient row, then time. The one definition of a round, for
    :meth:`DetectorEngine.process` and :meth:`DetectorEngine.split_rounds`."""
    new_row = np.r_[True, rows[1:] != rows[:-1]][:len(rows)]
    cs = np.cumsum(new_row | np.r_[True, ts[1:] != ts[:-1]][:len(ts)])
    return cs - np.maximum.accumulate(np.where(new_row, cs, 0))


class DetectorEngine:
    """The full detector stack for many patients; see the module docstring."""

    def __init__(self, stages: list[ScoreStage] | None = None, rules: tuple[LimitRule, ...] = DEFAULT_RULES,
                 stale_after_ms: int = 60_000, score_alarms: bool = True, every_round: bool = False) -> None:
        # every_round: the score stages compute everything in every round, as before scores were
        # computed when due (the reference the tests compare the schedule with; same events, slower).
        self.stages = list(stages) if stages is not None else _default_stages(every_round)
        for stage in self.stages:
            if every_round and hasattr(stage, "every_round"):
                stage.every_round = True
        self.score_alarms = score_alarms
        # The probes the scores read (a stage that does not say: all of them): only these hold a
        # score's alarm while off or lost (below).
        read = {m for stage in self.stages for m in getattr(stage, "reads", METRICS)}
        self._scored = np.array([m in read for m in METRICS])
        self.table = PatientTable()
        self.filters = SignalFilter()
        self.silence = DeviceSilence(stale_after_ms)
        self.snapshots = Snapshots()
        self.sensor_off = SensorOffAlarms()
        self.signal_lost = SignalLost(self.silence.stale_after_ms)
        self.clock_ahead = ClockAhead()
        self.limits = LimitAlarms(rules, self.table.ids, self.table.index)
        self.early_warning = EarlyWarningAlarm()
        self.cross_check = WaveformCrossCheck()
        self._written = _Written()
        # Every per-patient detector, in the order of a round; they share the patient table's rows.
        self.detectors: list[RowState] = [self.filters, self.silence, self.snapshots, self.sensor_off, self.signal_lost,
                                          self.limits, self.early_warning, self._written, self.cross_check,
                                          self.clock_ahead]
        self.capacity = 0
        self.scores: dict[str, np.ndarray] = {}  # score name -> latest value per patient row
        self._vitals = VitalsLines()
        self._score_heads: list[str] = []  # per patient row: its escaped ``scores,patient=`` start
        self._layout: StateLayout | None = None

    # Read-only views kept for callers of the single-class engine.
    rules = property(lambda self: self.limits.rules)
    stale_after_ms = property(lambda self: self.silence.stale_after_ms)
    last_seen = property(lambda self: self.silence.last_seen)
    overrides = property(lambda self: self.limits.overrides)

    # ------------------------------------------------------------------ table and limits

    def _ensure_rows(self, n: int) -> None:
        if self.capacity >= n:
            return
        self.capacity = max(n, 2 * self.capacity)
        for d in self.detectors:
            d.resize(self.capacity)
        for stage in self.stages:
            stage.resize(self.capacity)

    def _row(self, patient: str) -> int:
        row = int(self.table.rows_for(np.array([patient], dtype=object))[0])
        self._ensure_rows(len(self.table))
        return row

    def set_limits(self, patient: str, limits: dict) -> None:
        """Per-patient limits, as published on the limits topic (``{"spo2": {"low": 88}}``)."""
        self.limits.set_limits(patient, limits)

    # ------------------------------------------------------------------ rollback

    def _row_arrays(self):
        """Every array indexed by patient row: (owner, attribute) pairs."""
        for d in self.detectors:
            yield from d.row_arrays()
        for stage in self.stages:
            for name in getattr(stage, "ROW_ARRAYS", ()):
                yield stage, name

    def savepoint(self, cols: ReadingColumns) -> "Savepoint":
        """The state of the batch's patients before it is processed, so a batch that raises can be
        undone and split (the worker isolates the record that broke it). Rows are allocated first, so
        new patients roll back to fresh rows."""
        rows = np.unique(self.table.rows_for(cols.patient)) if len(cols) else np.empty(0, np.int64)
        self._ensure_rows(len(self.table))
        saved = [(owner, name, getattr(owner, name)[rows].copy()) for owner, name in self._row_arrays()]
        scores = {k: v[rows].copy() for k, v in self.scores.items() if len(v) >= self.capacity}
        return Savepoint(rows, saved, scores)

    def rollback(self, sp: "Savepoint") -> None:
        self._ensure_rows(len(self.table))
        for owner, name, values in sp.saved:
            getattr(owner, name)[sp.rows] = values
        for k, v in sp.scores.items():
            self.scores[k][sp.rows] = v

    # ------------------------------------------------------------------ processing

    def split_rounds(self, cols: ReadingColumns, max_rounds: int) -> list[tuple[ReadingColumns, np.ndarray]]:
        """The batch as parts of at most ``max_rounds`` rounds each, in order, each with its patients'
        rows (for :meth:`process`): processed one after another they give what the whole batch gives.

        A round is one reading time of a patient, so a gateway flushing hours of one patient's
        readings makes thousands of rounds, each costing the fixed price of every stage (about half
        a millisecond): one call would hold the worker's loop for seconds (no heartbeat, no alarm
        of anyone leaving). Part k holds every patient's rounds k x max_rounds up to the next; a
        batch with no patient over ``max_rounds`` reading times is one part, found by a count alone."""
        rows = self.table.rows_for(cols.patient)
        if len(cols) <= max_rounds or np.bincount(rows).max() <= max_rounds:
            return [(cols, rows)]
        order = np.lexsort((cols.ts, rows))
        part = np.empty(len(cols), np.int64)
        part[order] = round_ranks(rows[order], cols.ts[order]) // max_rounds
        # Boolean takes keep the batch's own order inside each part (repeats of a time stay together).
        return [(cols.take(part == k), rows[part == k]) for k in range(int(part.max()) + 1)]

    def process(self, cols: ReadingColumns, now_ms: int | None = None, rows: np.ndarray | None = None) -> EngineOutput:
        """``now_ms``: the wall-clock time the batch arrived (the worker's), for device silence only;
        None runs on reading time alone. ``rows``: the patients' rows, when :meth:`split_rounds` found them."""
        out = EngineOutput()
        n = len(cols)
        if n == 0:
            return out
        rows = self.table.rows_for(cols.patient) if rows is None else rows
        self._ensure_rows(len(self.table))
        metric = cols.metric.astype(np.int64)
        if not (cols.metric.min() >= 0 and cols.metric.max() < M):
            raise ValueError("metric index out of range")
        # Per patient in time order; a round is one reading time of every patient in the batch, and
        # scores follow each round, so the outcome never depends on how readings were batched.
        order = np.lexsort((metric, cols.ts, rows))
        r_s, m_s, t_s = rows[order], metric[order], cols.ts[order]
        same = np.r_[False, (r_s[1:] == r_s[:-1]) & (t_s[1:] == t_s[:-1]) & (m_s[1:] == m_s[:-1])]
        last = self.filters.last_ts[r_s, m_s]
        inorder = (t_s > last) & ~same
        out.late = int(n - inorder.sum())
        idx_in = order[inorder]
        r_in, t_in = r_s[inorder], t_s[inorder]
        events: list[AlertEvent] = []
        ids = self.table.ids
        if now_ms is not None:  # said, never silent: a metric left unjudged behind a reading from the future
            blind = ~inorder & ~same & (last > now_ms + SLACK_MS) & (t_s <= now_ms + SLACK_MS)
            self.clock_ahead.not_judged(r_s[blind], m_s[blind], last[blind], now_ms, ids, events)
        self.clock_ahead.judged(r_in, m_s[inorder], t_in, ids, events)
        # A batch of nothing but repeats (a resent request) has no round at all.
        rank = round_ranks(r_in, t_in)
        clean_out = np.full(n, np.nan)
        touched_rows = np.unique(rows[idx_in]) if len(idx_in) else np.empty(0, np.int64)
        seen_before = self.silence.last_seen[touched_rows].copy()
        for k in range(int(rank.max()) + 1 if len(rank) else 0):
            sel = idx_in[rank == k]
            rnd = Round(rows[sel], metric[sel], cols.value[sel], cols.ts[sel], cols.quality[sel], ids, arrived=now_ms)
            self.filters.update(rnd)
            self.silence.update(rnd)
            self.snapshots.update(rnd)
            self.sensor_off.update(rnd, events)
            self.signal_lost.update(rnd, events)
            self.limits.update(rnd, events)
            clean_out[sel] = rnd.clean
            self._scores(np.unique(rnd.rows), events, out)
        if len(touched_rows):
            events.extend(self.silence.clear(touched_rows, seen_before, ids, now_ms))
            changed = np.zeros(self.capacity, bool)
            changed[[self.table.index[e.alert.patient] for e in events]] = True
            out.snapshots = self.snapshots.emit(touched_rows, self.silence.last_seen[touched_rows],
                                                changed[touched_rows], ids, self.filters.clean, self.filters.clean_ts,
                                                self.sensor_off.off_active, self.scores)
        out.events = events
        if same.any():
            # A repeat in the same batch is stored with the clean value of the copy that was processed:
            # its point is written once (the last copy's fields win), and must not lose that value,
            # as a repeat in a later batch does not (InfluxDB keeps the field it does not rewrite).
            first = order[np.maximum.accumulate(np.where(same, 0, np.arange(n)))]
            clean_out[order] = clean_out[first]
        out.vitals_lines = self._vitals_lines(rows, metric, cols, clean_out)
        out.alert_lines = [alert_line(e) for e in events]
        return out

    def _vitals_lines(self, rows, metric, cols: ReadingColumns, clean) -> list[str]:
        """One point per patient and reading time for every reading (late ones too), the metrics as
        fields (:class:`wardwatch.lineprotocol.VitalsLines`, grouped by the patient's row)."""
        # Device quality is float32; rounded so that 0.93 is stored as 0.93, not 0.9300000071525879.
        quality = np.round(cols.quality.astype(np.float64), 6)
        return self._vitals.build(cols.patient, metric, cols.value, clean, quality, cols.device, cols.ts, keys=rows)

    def _heads(self, rows: np.ndarray) -> list[str]:
        """The escaped ``scores,patient=<id>`` start of each row's score points (built once per patient)."""
        heads, ids = self._score_heads, self.table.ids
        if len(heads) < len(ids):
            heads.extend(patient_heads("scores", ids[len(heads):]))
        return [heads[r] for r in rows.tolist()]

    def _scores(self, rows, events, out) -> None:
        """Every stage scores the round's rows (a stage computes only what is due, see
        :class:`detectors.scores.risk.RiskStage`); the highest alarm level of any stage drives the
        early-warning alarm; scores are stored at most every 10 s of reading time per patient, or,
        for a stage that says which rows it scored afresh (``fresh``), exactly when they were."""
        latest, latest_ts = self.filters.clean[rows], self.filters.clean_ts[rows]
        t_rows = self.silence.last_seen[rows]
        # Each patient's own "now" (its newest reading): another patient's clock in the same round
        # must not make this one's values stale.
        results: list[StageScores] = [s.update(rows, latest, latest_ts, t_rows) for s in self.stages]
        written = self._written.score_written
        write = t_rows - written[rows] >= SCORE_WRITE_EVERY_MS
        level = np.zeros(len(rows), np.int8)
        cond = np.full(len(rows), "", dtype=object)
        chosen = np.full(len(rows), -1, np.int64)  # which stage's reasons explain each row's level
        for j, res in enumerate(results):
            better = res.alarm_level > level
            level = np.where(better, res.alarm_level, level)
            cond = np.where(better, res.alarm_condition, cond)
            chosen[better] = j
            store = np.flatnonzero(write if res.fresh is None else res.fresh)
            if len(store):
                heads = self._heads(rows[store])
                if not res.reasons:
                    why = [""] * len(store)
                elif hasattr(res.reasons, "texts"):  # in words once per distinct reason (NEWS2's points)
                    why = res.reasons.texts(store)
                else:
                    why = ["; ".join(res.reasons[i]) for i in store.tolist()]
                for name, vals in res.scores.items():
                    part = res.partial.get(name, np.zeros(len(rows), bool))
                    out.score_lines.extend(score_lines(heads, name, vals[store], part[store], why, t_rows[store]))
        written[rows[write]] = t_rows[write]
        for res in results:
            for name, vals in res.scores.items():
                arr = self.scores.get(name)
                if arr is None or len(arr) < self.capacity:
                    grown = np.full(self.capacity, np.nan)
                    if arr is not None:
                        grown[:len(arr)] = arr
                    arr = self.scores[name] = grown
                arr[rows] = vals
        if self.score_alarms:
            # A score is not back to low risk while a probe it reads is off or lost: the raised alarm
            # holds (level 1 keeps it on) until the probes are back and the score says so itself.
            held = np.flatnonzero((level == 0) & (self.early_warning.score_active[rows] > 0))  # would clear
            if len(held):
                r = rows[held]
                scored = self._scored
                blind = (self.sensor_off.off_active[r][:, scored].any(axis=1)
                         | self.signal_lost.lost_active[r][:, scored].any(axis=1))
                level[held[blind]] = 1
            # The alarm moves only where the level differs from the one it shows: the other rows are
            # left out, so their reasons (the risk's features, for a row not scored afresh) are never built.
            moving = np.flatnonzero(level != self.early_warning.score_active[rows])
            if len(moving):
                self.early_warning.update(rows[moving], level[moving], cond[moving],
                                          _ChosenReasons(results, chosen, moving), t_rows[moving], self.table.ids,
                                          events)

    # ------------------------------------------------------------------ time-driven rules

    def tick(self, now_ms: int) -> EngineOutput:
        """Devices silent for longer than ``stale_after_ms`` raise a technical alarm (never calm);
        alarms a clinician switched off come back when the disable ends."""
        out = EngineOutput()
        self.limits.end_disables(now_ms)
        if len(self.table) == 0:
            return out
        out.events = self.silence.tick(now_ms, self.table.ids)
        out.alert_lines = [alert_line(e) for e in out.events]
        return out

    # ------------------------------------------------------------------ waveforms

    def waveform(self, patient: str, ecg: np.ndarray, ppg: np.ndarray | None, fs: float, t_end_ms: int) -> list[AlertEvent]:
        """A short ECG (+ pleth) chunk: asystole only when the pleth does not contradict it, else a
        technical "check ECG leads" alarm. See :mod:`detectors.alarms.asystole`."""
        return self.cross_check.update(patient, ecg, ppg, fs, t_end_ms, self._row(patient))

    # ------------------------------------------------------------------ events

    def technical_alarm(self, patient: str, condition: str, at: int, message: str) -> AlertEvent:
        """A technical alarm raised from outside the rules (the worker could not process a reading)."""
        self._row(patient)
        return make_event(patient, condition, AlertKind.technical, Priority.medium, at, at, AlertEventType.raised,
                          message, {})

    def active_alarms(self) -> dict[str, list[str]]:
        """Patient -> active physiological conditions (for the offline scorer and tests)."""
        out: dict[str, list[str]] = {}
        for r in range(len(self.table)):
            conds = self.limits.active(r)
            if self.early_warning.score_active[r] > 0:
                conds.append("early_warning")
            if conds:
                out[self.table.ids[r]] = conds
        return out

    # ------------------------------------------------------------------ checkpoints

    def _state_fields(self):
        """(field name, owner, attribute) of every array a state checkpoint saves."""
        for d in self.detectors:
            for owner, name in d.checkpoint_arrays():
                yield f"{type(owner).__name__}.{name}", owner, name
        for stage in self.stages:
            for name in getattr(stage, "ROW_ARRAYS", ()):
                yield f"{stage.name}.{name}", stage, name

    @property
    def state_layout(self) -> StateLayout:
        """The binary checkpoint layout of this engine's arrays (fixed once the engine is built)."""
        if self._layout is None:
            fields = [(label, getattr(o, n).dtype, getattr(o, n).shape[1:]) for label, o, n in self._state_fields()]
            # (a detector whose state is all extra state has no columns to give a meaning to)
            meaning = (METRIC_NAMES, [d.layout_meaning() for d in self.detectors if any(True for _ in d.checkpoint_arrays())],
                       [s.name for s in self.stages])
            self._layout = StateLayout(fields, meaning)
        return self._layout

    def state_records(self, patients: list[str], covers: dict[int, int]) -> list[bytes]:
        """The binary checkpoint records of ``patients`` (:mod:`detectors.state_records`), built for
        all of them at once; b"" (a tombstone) for a patient the engine does not know."""
        index = self.table.index
        known = [i for i, p in enumerate(patients) if p in index]
        rows = np.fromiter((index[patients[i]] for i in known), np.int64, len(known))
        columns = {label: getattr(o, n)[rows] for label, o, n in self._state_fields()}
        made = self.state_layout.encode(columns, len(rows), covers, self._extra_states(rows))
        out = [b""] * len(patients)
        for i, rec in zip(known, made):
            out[i] = rec
        return out

    def _extra_states(self, rows: np.ndarray) -> list[bytes] | None:
        """orjson of the state outside arrays, per row; None when no detector or stage has any."""
        docs: list[dict] = [{} for _ in range(len(rows))]
        for d in self.detectors:
            per_row = d.extra_state(rows)
            if per_row is not None:
                for doc, x in zip(docs, per_row):
                    if x:
                        doc[type(d).__name__] = x
        for stage in self.stages:
            if getattr(stage, "ROW_ARRAYS", ()):
                continue  # its whole state is in the arrays above
            for doc, r in zip(docs, rows.tolist()):
                x = stage.state_dict(np.array([r]))
                if x:
                    doc.setdefault("stages", {})[stage.name] = x
        if not any(docs):
            return None
        return [orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY) if doc else b"" for doc in docs]

    def load_records(self, records: dict[str, StateRecord]) -> tuple[list[str], int]:
        """Load checkpoint records (patient -> :func:`detectors.state_records.read_record`), the binary
        ones of this layout all at once, old JSON ones one by one. Returns the patients loaded and how
        many records were refused (another layout or version, or unreadable): those patients start
        fresh, from the readings replayed after the committed offsets."""
        layout, loaded, refused = self.state_layout, [], 0
        binary: list[tuple[str, bytes]] = []
        for patient, rec in records.items():
            if rec.kind == "binary" and rec.fingerprint == layout.fingerprint and len(rec.body) >= layout.dtype.itemsize:
                binary.append((patient, rec.body))
            elif rec.kind == "json":
                try:
                    self.load_state(patient, rec.body)
                    loaded.append(patient)
                except Exception:
                    refused += 1
            elif rec.kind != "tombstone":
                refused += 1
        if binary:
            rows = self.table.rows_for(np.array([p for p, _ in binary], dtype=object))
            self._ensure_rows(len(self.table))
            arrays, extras = layout.decode([b for _, b in binary])
            for label, owner, name in self._state_fields():
                getattr(owner, name)[rows] = arrays[label]
            for r, extra in zip(rows.tolist(), extras):
                if extra:
                    self._load_extra(r, orjson.loads(extra))
            loaded += [p for p, _ in binary]
        return loaded, refused

    def _load_extra(self, row: int, doc: dict) -> None:
        for d in self.detectors:
            if type(d).__name__ in doc:
                d.load_extra_state(row, doc[type(d).__name__])
        for stage in self.stages:
            if stage.name in doc.get("stages", {}):
                stage.load_state(np.array([row]), doc["stages"][stage.name])

    def state_dict(self, patient: str) -> bytes | None:
        """One patient's state as compact JSON (no pickle: state is data, never code): what tests
        compare, and the checkpoint format of earlier releases (:meth:`load_records` still reads it)."""
        r = self.table.index.get(patient)
        if r is None:
            return None
        doc: dict = {}
        for d in self.detectors:
            doc.update(d.state_dict(r))
        doc["stages"] = {s.name: s.state_dict(np.array([r])) for s in self.stages}
        return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)

    def load_state(self, patient: str, data: bytes) -> None:
        doc = orjson.loads(data)
        r = self._row(patient)
        for d in self.detectors:
            d.load_state(r, doc)
        for s in self.stages:
            if s.name in doc.get("stages", {}):
                s.load_state(np.array([r]), doc["stages"][s.name])


class _ChosenReasons:
    """Per row, the reasons of the stage whose alarm level won, built only for the rows read (events)."""

    def __init__(self, results: list[StageScores], chosen: np.ndarray, index: np.ndarray) -> None:
        self.results, self.chosen, self.index = results, chosen, index  # index: position in the stage's rows

    def __getitem__(self, i: int) -> list[str]:
        k = int(self.index[i])
        j = int(self.chosen[k])
        return list(self.results[j].reasons[k]) if j >= 0 and self.results[j].reasons else []


def _default_stages(every_round: bool = False) -> list[ScoreStage]:
    """NEWS2 scored and shown; the learned risk (when its artefact ships) raises the early-warning alarm,
    since it beats NEWS2 >= 5 on held-out patients (docs/early-warning.md)."""
    from .scores.news2 import News2Stage
    from .scores.risk import ARTEFACTS, RiskStage

    if (ARTEFACTS / "risk.npz").exists():
        return [News2Stage(alarms=False), RiskStage.shipped(every_round)]
    return [News2Stage()]
