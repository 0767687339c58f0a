"""The detector engine: one batch of readings in, cleaned values, scores and alarm events out.

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

from wardwatch.columns import ReadingColumns
from wardwatch.lineprotocol import escape_str_field, line
from wardwatch.metrics_catalog import METRICS, Metric
from wardwatch.models import (Alert, AlertEvent, AlertEventType, AlertKind, AlertState, Priority, VitalsSnapshot,
                              alert_id)

from .filters import Hampel, rate_artefact, sensor_off
from .limits import DEFAULT_RULES, LimitRule, apply_override, disabled_until
from .stage import ScoreStage, StageScores

M = len(METRICS)
METRIC_NAMES = [m.value for m in METRICS]
SENSOR_OFF_DELAY_MS = 10_000
# One technical alarm per probe: diastolic and mean pressure share the systolic's cuff or line, and
# the oximeter's pulse rate its SpO2 probe, so they do not alarm on their own.
SENSOR_OFF_ALARMS = np.array([m in (Metric.heart_rate, Metric.spo2, Metric.resp_rate, Metric.sbp, Metric.temperature,
                                    Metric.etco2) for m in METRICS])
SCORE_WRITE_EVERY_MS = 10_000
SNAPSHOT_EVERY_MS = 5_000
SPARK_LEN, SPARK_EVERY_MS = 30, 10_000
LEVEL_PRIORITY = {2: Priority.medium, 3: Priority.high}


@dataclass
class EngineOutput:
    vitals_lines: list[str] = field(default_factory=list)
    score_lines: list[str] = field(default_factory=list)
    alert_lines: list[str] = field(default_factory=list)
    events: list[AlertEvent] = field(default_factory=list)
    snapshots: list[VitalsSnapshot] = field(default_factory=list)
    late: int = 0  # readings stored but not driving alarms (late, duplicate, out of order)
    artefacts: int = 0

    @property
    def lines(self) -> list[str]:
        return self.vitals_lines + self.score_lines + self.alert_lines

    def merge(self, other: "EngineOutput") -> None:
        """Append a later part of the same batch (the worker splits a batch that raised)."""
        for name in ("vitals_lines", "score_lines", "alert_lines", "events", "snapshots"):
            getattr(self, name).extend(getattr(other, name))
        self.late += other.late
        self.artefacts += other.artefacts


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
        uniq, inv = np.unique(patients.astype(str), return_inverse=True)
        rows = np.empty(len(uniq), np.int64)
        for i, p in enumerate(uniq):
            r = self.index.get(p)
            if r is None:
                r = self.index[p] = len(self.ids)
                self.ids.append(p)
            rows[i] = r
        return rows[inv]


def _grow(a: np.ndarray, n: int, fill) -> np.ndarray:
    if a.shape[0] >= n:
        return a
    extra = np.full((max(n, 2 * a.shape[0]) - a.shape[0],) + a.shape[1:], fill, dtype=a.dtype)
    return np.concatenate([a, extra])


class DetectorEngine:
    """The full detector stack for many patients; see the module docstring."""

    # Per-row state arrays and their fill values; checkpointed by state_dict/load_state.
    _ARRAYS = {
        "last_ts": ((M,), np.int64, -1), "clean": ((M,), np.float64, np.nan), "clean_ts": ((M,), np.int64, -1),
        "off_onset": ((M,), np.int64, -1), "off_active": ((M,), np.bool_, False),
        "off_alert_onset": ((M,), np.int64, -1),
        "cond_onset": (("R",), np.int64, -1), "cond_active": (("R",), np.bool_, False),
        "cond_alert_onset": (("R",), np.int64, -1), "cond_value": (("R",), np.float64, np.nan),
        "score_active": ((), np.int8, 0), "score_alert_onset": ((), np.int64, -1),
        "score_written": ((), np.int64, -1), "last_seen": ((), np.int64, -1),
        "silent_active": ((), np.bool_, False), "silent_onset": ((), np.int64, -1),
        "snap_ts": ((), np.int64, -1), "spark": ((M, SPARK_LEN), np.float64, np.nan),
        "spark_ts": ((M,), np.int64, -1),
    }

    def __init__(self, stages: list[ScoreStage] | None = None, rules: tuple[LimitRule, ...] = DEFAULT_RULES,
                 stale_after_ms: int = 60_000, score_alarms: bool = True) -> None:
        self.stages = list(stages) if stages is not None else _default_stages()
        self.rules = rules
        self.stale_after_ms = stale_after_ms
        self.score_alarms = score_alarms
        self.table = PatientTable()
        self.R = len(rules)
        self.hampel = Hampel(0, M)
        self.limit = np.empty((0, self.R))
        for name, (shape, dtype, fill) in self._ARRAYS.items():
            shape = tuple(self.R if s == "R" else s for s in shape)
            setattr(self, name, np.full((0,) + shape, fill, dtype=dtype))
        self.scores: dict[str, np.ndarray] = {}  # score name -> latest value per patient row
        self._prefix: dict[int, str] = {}
        self._devices: dict[str, str] = {}
        self.overrides: dict[str, dict] = {}  # patient -> limits override (who/why kept by the alerts service)
        self._disable_ends: dict[str, int] = {}  # patient -> when its earliest alarm disable ends (epoch ms)
        self._rule_cols = np.array([r.column for r in rules])
        self._rule_low = np.array([r.side == "low" for r in rules])
        self._rule_delay = np.array([r.delay_ms for r in rules])
        self._rule_hyst = np.array([r.hysteresis for r in rules])
        self._default_limit = np.array([r.limit for r in rules])

    # ------------------------------------------------------------------ table and limits

    def _ensure_rows(self, n: int) -> None:
        if self.limit.shape[0] >= n:
            return
        old = self.limit.shape[0]
        for name, (shape, dtype, fill) in self._ARRAYS.items():
            setattr(self, name, _grow(getattr(self, name), n, fill))
        self.limit = _grow(self.limit, n, np.nan)
        self.limit[old:] = self._default_limit
        self.hampel.resize(self.limit.shape[0])
        for stage in self.stages:
            stage.resize(self.limit.shape[0])
        for pid, lim in self.overrides.items():
            r = self.table.index.get(pid)
            if r is not None and r >= old:
                self._apply_limits_row(r, lim)

    def set_limits(self, patient: str, limits: dict) -> None:
        """Per-patient limits, as published on the limits topic (``{"spo2": {"low": 88}}``)."""
        self.overrides[patient] = limits
        r = self.table.index.get(patient)
        if r is not None:
            self._apply_limits_row(r, limits)

    def _apply_limits_row(self, row: int, limits: dict, now_ms: int | None = None) -> None:
        self.limit[row] = [r.limit for r in apply_override(self.rules, limits, now_ms)]
        ends = disabled_until(limits, now_ms)
        patient = self.table.ids[row]
        if ends:
            self._disable_ends[patient] = min(ends.values())
        else:
            self._disable_ends.pop(patient, None)

    def _end_disables(self, now_ms: int) -> None:
        """An alarm a clinician switched off comes back on by itself when the disable ends."""
        for patient in [p for p, end in self._disable_ends.items() if end <= now_ms]:
            r = self.table.index.get(patient)
            if r is None:
                self._disable_ends.pop(patient)
            else:
                self._apply_limits_row(r, self.overrides.get(patient, {}), now_ms)

    # ------------------------------------------------------------------ rollback

    def _row_arrays(self):
        """Every array indexed by patient row: (owner, attribute) pairs."""
        for name in self._ARRAYS:
            yield self, name
        yield self, "limit"
        yield self.hampel, "buf"
        yield self.hampel, "pos"
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
        scores = {k: v[rows].copy() for k, v in self.scores.items() if len(v) >= len(self.limit)}
        return Savepoint(rows, saved, scores)

    def rollback(self, sp: "Savepoint") -> None:
        self._ensure_rows(len(self.table))
        for owner, name, values in sp.saved:
            getattr(owner, name)[sp.rows] = values
        for k, v in sp.scores.items():
            self.scores[k][sp.rows] = v

    # ------------------------------------------------------------------ processing

    def process(self, cols: ReadingColumns) -> EngineOutput:
        out = EngineOutput()
        n = len(cols)
        if n == 0:
            return out
        rows = self.table.rows_for(cols.patient)
        self._ensure_rows(len(self.table))
        metric = cols.metric.astype(np.int64)
        if not (cols.metric.min() >= 0 and cols.metric.max() < M):
            raise ValueError("metric index out of range")
        # Per patient in time order; a round is one reading time of every patient in the batch, and
        # scores follow each round, so the outcome never depends on how readings were batched.
        order = np.lexsort((metric, cols.ts, rows))
        r_s, m_s, t_s = rows[order], metric[order], cols.ts[order]
        same = np.r_[False, (r_s[1:] == r_s[:-1]) & (t_s[1:] == t_s[:-1]) & (m_s[1:] == m_s[:-1])]
        inorder = (t_s > self.last_ts[r_s, m_s]) & ~same
        out.late = int(n - inorder.sum())
        idx_in = order[inorder]
        r_in, t_in = r_s[inorder], t_s[inorder]
        # A batch of nothing but repeats (a resent request) has no round at all.
        new_row = np.r_[True, r_in[1:] != r_in[:-1]][:len(r_in)]
        new_t = new_row | np.r_[True, t_in[1:] != t_in[:-1]][:len(t_in)]
        cs = np.cumsum(new_t)
        rank = cs - np.maximum.accumulate(np.where(new_row, cs, 0))
        clean_out = np.full(n, np.nan)
        events: list[AlertEvent] = []
        touched_rows = np.unique(rows[idx_in]) if len(idx_in) else np.empty(0, np.int64)
        silent_before = self.silent_active[touched_rows].copy()
        for k in range(int(rank.max()) + 1 if len(rank) else 0):
            sel = idx_in[rank == k]
            clean_out[sel] = self._round(rows[sel], metric[sel], cols.value[sel], cols.ts[sel], cols.quality[sel], events, out)
            self._scores(np.unique(rows[sel]), events, out)
        # Readings from a device that had gone silent clear its technical alarm.
        for r in touched_rows[silent_before]:
            t = int(self.last_seen[r])
            events.append(self._event(r, "device_silent", AlertKind.technical, Priority.medium,
                                      int(self.silent_onset[r]), t, AlertEventType.cleared, "device reporting again", {}))
            self.silent_active[r] = False
        if len(touched_rows):
            self._snapshots(touched_rows, events, out)
        out.events = events
        out.vitals_lines = self._vitals_lines(rows, metric, cols, clean_out)
        out.alert_lines = [_alert_line(e) for e in events]
        return out

    def _vitals_lines(self, rows, metric, cols: ReadingColumns, clean) -> list[str]:
        """Line protocol for every reading (late ones too), formatted without per-field calls:
        this is the hottest loop of the worker. Tag prefixes are escaped once per patient."""
        prefix = self._prefix
        keys = (rows * M + metric).tolist()
        devices = [self._device_field(d) for d in cols.device.tolist()]
        values = cols.value.tolist()
        cl = clean.tolist()
        q = cols.quality.astype(np.float64).tolist()
        ts = cols.ts.tolist()
        out = []
        for k, d, v, c, qq, t in zip(keys, devices, values, cl, q, ts):
            p = prefix.get(k)
            if p is None:
                r, m = divmod(k, M)
                p = prefix[k] = line("vitals", {"patient": self.table.ids[r], "metric": METRIC_NAMES[m]}, {"x": 0}, 0).split(" ")[0]
            out.append(f"{p} value={v!r},device={d}{f',clean={c!r}' if c == c else ''}{f',quality={qq!r}' if qq == qq else ''} {t}")
        return out

    def _device_field(self, device: str) -> str:
        f = self._devices.get(device)
        if f is None:
            f = self._devices[device] = escape_str_field(device)
        return f

    def _round(self, rr, cc, v, t, q, events, out) -> np.ndarray:
        """One reading per (patient, metric): filters, then the limit and sensor-off conditions."""
        off = sensor_off(cc, v, q)
        dt = t - self.clean_ts[rr, cc]
        on = ~off
        outlier = np.zeros(len(rr), bool)
        if on.any():
            outlier[on] = self.hampel.step(rr[on], cc[on], v[on])
        # Hampel judges streams (a reading a second or a minute); values charted hours apart are not
        # "spikes" of each other, and a reading after a long gap is not an artefact of a jump.
        artefact = on & ((outlier & (dt <= 120_000)) | rate_artefact(cc, v, self.clean[rr, cc], dt))
        artefact &= ~((dt > 300_000) | (self.clean_ts[rr, cc] < 0))
        out.artefacts += int(artefact.sum())
        valid = on & ~artefact
        clean = np.where(valid, v, np.nan)
        self.clean[rr[valid], cc[valid]] = v[valid]
        self.clean_ts[rr[valid], cc[valid]] = t[valid]
        self.last_ts[rr, cc] = t
        np.maximum.at(self.last_seen, rr, t)
        self._spark(rr[valid], cc[valid], v[valid], t[valid])
        self._sensor_off(rr, cc, v, t, off, valid, events)
        self._limits(rr, cc, v, t, valid, off, events)
        return clean

    def _spark(self, rr, cc, v, t) -> None:
        due = t - self.spark_ts[rr, cc] >= SPARK_EVERY_MS
        rr, cc, v, t = rr[due], cc[due], v[due], t[due]
        self.spark[rr, cc, :-1] = self.spark[rr, cc, 1:]
        self.spark[rr, cc, -1] = v
        self.spark_ts[rr, cc] = t

    def _sensor_off(self, rr, cc, v, t, off, valid, events) -> None:
        onset = self.off_onset[rr, cc]
        start = off & (onset < 0)
        self.off_onset[rr[start], cc[start]] = t[start]
        onset = self.off_onset[rr, cc]
        raise_ = off & ~self.off_active[rr, cc] & (t - onset >= SENSOR_OFF_DELAY_MS) & SENSOR_OFF_ALARMS[cc]
        for i in np.flatnonzero(raise_):
            r, c = rr[i], cc[i]
            self.off_active[r, c] = True
            self.off_alert_onset[r, c] = onset[i]
            name = METRIC_NAMES[c]
            events.append(self._event(r, f"sensor_off_{name}", AlertKind.technical, Priority.medium, int(onset[i]),
                                      int(t[i]), AlertEventType.raised,
                                      f"{name.replace('_', ' ')} sensor off or disconnected (no valid signal for "
                                      f"{(t[i] - onset[i]) // 1000}s)", {name: float(v[i])}))
        back = valid & (self.off_onset[rr, cc] >= 0)
        for i in np.flatnonzero(back & self.off_active[rr, cc]):
            r, c = rr[i], cc[i]
            name = METRIC_NAMES[c]
            events.append(self._event(r, f"sensor_off_{name}", AlertKind.technical, Priority.medium,
                                      int(self.off_alert_onset[r, c]), int(t[i]), AlertEventType.cleared,
                                      f"{name.replace('_', ' ')} signal back", {name: float(v[i])}))
            self.off_active[r, c] = False
        self.off_onset[rr[back], cc[back]] = -1

    def _limits(self, rr, cc, v, t, valid, off, events) -> None:
        for j, rule in enumerate(self.rules):
            mask = cc == self._rule_cols[j]
            if not mask.any():
                continue
            r, val, tt, ok, is_off = rr[mask], v[mask], t[mask], valid[mask], off[mask]
            lim = self.limit[r, j]
            if self._rule_low[j]:
                outside, back_in = val < lim, val >= lim + self._rule_hyst[j]
            else:
                outside, back_in = val > lim, val <= lim - self._rule_hyst[j]
            onset = self.cond_onset[r, j]
            # Artefacts neither start nor end a condition; a sensor that is off suspends it.
            start = ok & outside & (onset < 0)
            reset = (ok & ~outside) | is_off
            onset = np.where(start, tt, np.where(reset, -1, onset))
            self.cond_onset[r, j] = onset
            active = self.cond_active[r, j]
            raise_ = ok & outside & ~active & (onset >= 0) & (tt - onset >= self._rule_delay[j])
            clear = ok & active & back_in
            for i in np.flatnonzero(raise_):
                row = r[i]
                self.cond_active[row, j] = True
                self.cond_alert_onset[row, j] = onset[i]
                self.cond_value[row, j] = val[i]
                rl = LimitRule(rule.condition, rule.metric, rule.side, float(lim[i]), rule.priority, rule.delay_ms,
                               rule.hysteresis)
                events.append(self._event(row, rule.condition, AlertKind.physiological, rule.priority, int(onset[i]),
                                          int(tt[i]), AlertEventType.raised, rl.message(float(val[i])),
                                          {rule.metric.value: float(val[i]), "limit": float(lim[i])}))
            for i in np.flatnonzero(clear):
                row = r[i]
                self.cond_active[row, j] = False
                events.append(self._event(row, rule.condition, AlertKind.physiological, rule.priority,
                                          int(self.cond_alert_onset[row, j]), int(tt[i]), AlertEventType.cleared,
                                          f"{rule.metric.value.replace('_', ' ')} back to {val[i]:g}",
                                          {rule.metric.value: float(val[i])}))

    def _scores(self, rows, events, out) -> None:
        latest, latest_ts = self.clean[rows], self.clean_ts[rows]
        now = int(self.last_seen[rows].max())
        results: list[StageScores] = [s.update(rows, latest, latest_ts, now) for s in self.stages]
        t_rows = self.last_seen[rows]
        write = t_rows - self.score_written[rows] >= SCORE_WRITE_EVERY_MS
        level = np.zeros(len(rows), np.int8)
        cond = np.full(len(rows), "", dtype=object)
        reasons: list[list[str]] = [[] for _ in rows]
        for res in results:
            better = res.alarm_level > level
            level = np.where(better, res.alarm_level, level)
            cond = np.where(better, res.alarm_condition, cond)
            for i in np.flatnonzero(better):
                reasons[i] = res.reasons[i] if res.reasons else []
            for name, vals in res.scores.items():
                part = res.partial.get(name, np.zeros(len(rows), bool))
                for i in np.flatnonzero(write & ~np.isnan(vals)):
                    out.score_lines.append(line("scores", {"patient": self.table.ids[rows[i]], "score": name},
                                                {"value": float(vals[i]), "partial": bool(part[i]),
                                                 "reasons": "; ".join(res.reasons[i]) if res.reasons else ""},
                                                int(t_rows[i])))
        self.score_written[rows[write]] = t_rows[write]
        for res in results:
            for name, vals in res.scores.items():
                arr = self.scores.get(name)
                if arr is None or len(arr) < len(self.limit):
                    grown = np.full(len(self.limit), np.nan)
                    if arr is not None:
                        grown[:len(arr)] = arr
                    arr = self.scores[name] = grown
                arr[rows] = vals
        if self.score_alarms:
            self._score_alarms(rows, level, cond, reasons, events)

    def _score_alarms(self, rows, level, cond, reasons, events) -> None:
        """A score at medium or high risk is an alarm; it moves up or down in priority as one alert,
        and clears only when the score is back to no risk (level 0): hysteresis against chatter."""
        active = self.score_active[rows]
        t = self.last_seen[rows]
        for i in np.flatnonzero((level >= 2) | (active > 0)):
            r, lv, cur = rows[i], int(level[i]), int(active[i])
            why = "; ".join(reasons[i]) or str(cond[i])
            if cur == 0 and lv >= 2:
                self.score_active[r] = lv
                self.score_alert_onset[r] = t[i]
                events.append(self._event(r, "early_warning", AlertKind.physiological, LEVEL_PRIORITY[lv], int(t[i]),
                                          int(t[i]), AlertEventType.raised, f"{cond[i]}: {why}", {}))
            elif cur > 0 and lv >= 2 and lv != cur:
                self.score_active[r] = lv
                events.append(self._event(r, "early_warning", AlertKind.physiological, LEVEL_PRIORITY[lv],
                                          int(self.score_alert_onset[r]), int(t[i]), AlertEventType.updated,
                                          f"{cond[i]}: {why}", {}))
            elif cur > 0 and lv == 0:
                self.score_active[r] = 0
                events.append(self._event(r, "early_warning", AlertKind.physiological, LEVEL_PRIORITY[cur],
                                          int(self.score_alert_onset[r]), int(t[i]), AlertEventType.cleared,
                                          "early-warning score back to low risk", {}))

    def _snapshots(self, rows, events, out) -> None:
        changed = {e.alert.patient for e in events}
        t = self.last_seen[rows]
        due = (t - self.snap_ts[rows] >= SNAPSHOT_EVERY_MS) | np.array([self.table.ids[r] in changed for r in rows])
        news = self.scores.get("news2")
        risk = self.scores.get("risk")
        for i in np.flatnonzero(due):
            r = rows[i]
            vals = {METRIC_NAMES[c]: float(self.clean[r, c]) for c in range(M) if self.clean_ts[r, c] >= 0}
            stale = [METRIC_NAMES[c] for c in range(M) if self.off_active[r, c]]
            trend = {METRIC_NAMES[c]: [float(x) for x in self.spark[r, c] if x == x] for c in range(M)
                     if self.spark_ts[r, c] >= 0}
            out.snapshots.append(VitalsSnapshot(
                patient=self.table.ids[r], ts=int(t[i]), values=vals,
                news2=float(news[r]) if news is not None and news[r] == news[r] else None,
                risk=float(risk[r]) if risk is not None and risk[r] == risk[r] else None,
                stale_metrics=stale, trend=trend))
        self.snap_ts[rows[due]] = t[due]

    # ------------------------------------------------------------------ time-driven rules

    def tick(self, now_ms: int) -> EngineOutput:
        """Devices silent for longer than ``stale_after_ms`` raise a technical alarm (never calm)."""
        out = EngineOutput()
        if self._disable_ends:
            self._end_disables(now_ms)
        n = len(self.table)
        if n == 0:
            return out
        seen = self.last_seen[:n]
        silent = (seen >= 0) & (now_ms - seen > self.stale_after_ms) & ~self.silent_active[:n]
        for r in np.flatnonzero(silent):
            onset = int(seen[r] + self.stale_after_ms)
            self.silent_active[r] = True
            self.silent_onset[r] = onset
            out.events.append(self._event(r, "device_silent", AlertKind.technical, Priority.medium, onset, onset,
                                          AlertEventType.raised,
                                          f"no readings for {self.stale_after_ms // 1000}s: device silent or out of range",
                                          {}))
        out.alert_lines = [_alert_line(e) for e in out.events]
        return out

    # ------------------------------------------------------------------ waveforms

    def waveform(self, patient: str, ecg: np.ndarray, ppg: np.ndarray | None, fs: float, t_end_ms: int) -> list[AlertEvent]:
        """A short ECG (+ pleth) chunk: asystole only when the pleth does not contradict it, else a
        technical "check ECG leads" alarm. See :mod:`detectors.waveform`."""
        from .waveform import verify_asystole

        v = verify_asystole(ecg, ppg, fs)
        if not v.ecg_asystole:
            return []
        row = int(self.table.rows_for(np.array([patient], dtype=object))[0])
        self._ensure_rows(len(self.table))
        onset = int(t_end_ms - v.ecg_longest_gap_s * 1000)
        if v.alarm:
            return [self._event(row, "asystole", AlertKind.physiological, Priority.high, onset, t_end_ms,
                                AlertEventType.raised, f"Asystole: {v.reason}", {"ecg_gap_s": v.ecg_longest_gap_s})]
        return [self._event(row, "ecg_signal_poor", AlertKind.technical, Priority.low, onset, t_end_ms,
                            AlertEventType.raised, v.reason, {"pleth_rate": v.ppg_rate, "pleth_sqi": v.ppg_sqi})]

    # ------------------------------------------------------------------ events

    def _event(self, row, condition: str, kind: AlertKind, priority: Priority, onset: int, at: int,
               type_: AlertEventType, message: str, values: dict) -> AlertEvent:
        patient = self.table.ids[int(row)]
        aid = alert_id(patient, condition, onset)
        alert = Alert(id=aid, patient=patient, kind=kind, priority=priority, condition=condition, message=message,
                      values=values, onset=onset, raised_at=at if type_ is AlertEventType.raised else onset,
                      updated_at=at, state=AlertState.cleared if type_ is AlertEventType.cleared else AlertState.active,
                      latched=priority is Priority.high)
        return AlertEvent(event_id=AlertEvent.make_id(aid, type_, at), type=type_, alert=alert, at=at)

    def technical_alarm(self, patient: str, condition: str, at: int, message: str) -> AlertEvent:
        """A technical alarm raised from outside the rules (the worker could not process a reading)."""
        row = int(self.table.rows_for(np.array([patient], dtype=object))[0])
        self._ensure_rows(len(self.table))
        return self._event(row, condition, AlertKind.technical, Priority.medium, at, at, AlertEventType.raised,
                           message, {})

    def active_alarms(self) -> dict[str, list[str]]:
        """Patient -> active physiological conditions (for the offline scorer and tests)."""
        out: dict[str, list[str]] = {}
        n = len(self.table)
        for r in range(n):
            conds = [self.rules[j].condition for j in np.flatnonzero(self.cond_active[r])]
            if self.score_active[r] > 0:
                conds.append("early_warning")
            if conds:
                out[self.table.ids[r]] = conds
        return out

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self, patient: str) -> bytes | None:
        """One patient's state as compact JSON (no pickle: state is data, never code)."""
        r = self.table.index.get(patient)
        if r is None:
            return None
        doc = {name: getattr(self, name)[r].tolist() for name in self._ARRAYS}
        doc["hampel"] = self.hampel.buf[r].tolist()
        doc["hampel_pos"] = self.hampel.pos[r].tolist()
        doc["stages"] = {s.name: s.state_dict(np.array([r])) for s in self.stages}
        return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)

    def load_state(self, patient: str, data: bytes) -> None:
        doc = orjson.loads(data)
        r = int(self.table.rows_for(np.array([patient], dtype=object))[0])
        self._ensure_rows(len(self.table))
        for name in self._ARRAYS:
            if name in doc:
                arr = getattr(self, name)
                arr[r] = np.asarray(doc[name], dtype=arr.dtype) if arr.ndim > 1 else doc[name]
        self.hampel.buf[r] = np.asarray(doc["hampel"], dtype=float)
        self.hampel.pos[r] = np.asarray(doc["hampel_pos"], dtype=np.int16)
        for s in self.stages:
            if s.name in doc.get("stages", {}):
                s.load_state(np.array([r]), doc["stages"][s.name])


def _default_stages() -> list[ScoreStage]:
    """NEWS2 scored and shown; the learned risk (when its artefact ships) raises the early-warning alarm,
    since it beats NEWS2 >= 5 on held-out patients (docs/early-warning.md)."""
    from .early_warning.news2 import News2Stage
    from .early_warning.risk import ARTEFACTS, RiskStage

    if (ARTEFACTS / "risk.npz").exists():
        return [News2Stage(alarms=False), RiskStage.shipped()]
    return [News2Stage()]


def _alert_line(e: AlertEvent) -> str:
    a = e.alert
    return line("alerts", {"patient": a.patient, "kind": a.kind.value, "priority": a.priority.value,
                           "condition": a.condition, "event": e.type.value},
                {"alert_id": a.id, "message": a.message, "state": a.state.value, "by": e.by or "",
                 "values": orjson.dumps(a.values).decode()}, e.at)
