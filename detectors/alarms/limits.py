"""Limit alarms: a vital outside its limit for the rule's delay raises; back inside by the
hysteresis margin clears (the rules and their defaults are in :mod:`.rules`)."""

from __future__ import annotations

import numpy as np

from wardwatch import alarm_texts
from wardwatch.alarm_rules import DEFAULT_RULES, LimitRule, apply_override, disabled_until
from wardwatch.models import AlertKind, AlertEventType

from ..protocol import Round, RowState, grow
from .events import make_event


class LimitAlarms(RowState):
    """Threshold alarms with delay and hysteresis, per patient limits (IEC 60601-1-8 behaviour; the
    default limits follow common adult ward practice, :data:`wardwatch.alarm_rules.DEFAULT_RULES`).

    A condition starts when a *valid* reading (see :class:`detectors.filters.SignalFilter`) is
    outside the limit, raises once it has persisted for the rule's delay in reading time, and
    clears when a valid reading is back inside by the hysteresis margin. Artefacts neither start nor
    end a condition; a sensor that is off suspends it. Clinicians override limits per patient
    (:meth:`set_limits`), and may switch a condition off until a time, after which it comes back by
    itself (:meth:`end_disables`).

    Works when: a vital crosses its limit and stays there (a desaturation, a tachycardia): about
    the delay plus 4 readings after it starts. Does not work when: the vital is charted more
    rarely than the delay (the first reading outside starts the clock, the next one raises); a
    slow deterioration that stays inside every limit (the scores see that); brief real events
    shorter than the delay are not alarmed, by design.

    The respiration rate of the shipped MIMIC-II record s00001 (32 h at 1/min) against the default
    rules (``rr_low``: below 8/min for 15 s)::

        >>> import numpy as np, wfdb
        >>> from importlib.resources import files
        >>> from detectors.filters import SignalFilter
        >>> from detectors.protocol import Round
        >>> from wardwatch.metrics_catalog import METRIC_INDEX, Metric
        >>> rec = wfdb.rdrecord(str(files("wardwatch") / "data" / "s00001-2896-10-10-00-31n"))
        >>> rr = rec.p_signal[:, rec.sig_name.index("RESP")]
        >>> c = METRIC_INDEX[Metric.resp_rate]
        >>> ids = ["s00001"]
        >>> filt, alarms = SignalFilter(), LimitAlarms(ids=ids)
        >>> for d in (filt, alarms):
        ...     d.resize(1)
        >>> events = []
        >>> for i, v in enumerate(rr):
        ...     rnd = filt.update(Round(np.array([0]), np.array([c]), np.array([v]), np.array([60_000 * i]),
        ...                             np.array([np.nan]), ids))
        ...     alarms.update(rnd, events)
        >>> [(e.type.value, e.alert.condition, e.at // 60_000) for e in events]
        [('raised', 'rr_low', 75), ('cleared', 'rr_low', 78)]
    """

    def __init__(self, rules: tuple[LimitRule, ...] = DEFAULT_RULES, ids: list[str] | None = None,
                 index: dict[str, int] | None = None) -> None:
        self.rules = rules
        self.R = len(rules)
        self.ARRAYS = {"cond_onset": (("R",), np.int64, -1), "cond_active": (("R",), np.bool_, False),
                       "cond_alert_onset": (("R",), np.int64, -1), "cond_value": (("R",), np.float64, np.nan)}
        super().__init__()
        self.ids = ids if ids is not None else []  # patient id per row (the engine's table)
        self.index = index if index is not None else {}
        self.limit = np.empty((0, self.R))  # per row and rule: not checkpointed (the limits topic is)
        self.overrides: dict[str, dict] = {}  # patient -> limits override (who/why kept by the alerts service)
        self._disable_ends: dict[str, int] = {}  # patient -> when its earliest alarm disable ends (epoch ms)
        self._cols = np.array([r.column for r in rules])
        self._low = np.array([r.side == "low" for r in rules])
        self._delay = np.array([r.delay_ms for r in rules])
        self._hyst = np.array([r.hysteresis for r in rules])
        self._default = np.array([r.limit for r in rules])

    def _shape(self, shape: tuple) -> tuple:
        return tuple(self.R if s == "R" else s for s in shape)

    def resize(self, n_rows: int) -> None:
        old = self.limit.shape[0]
        super().resize(n_rows)
        if n_rows <= old:
            return
        self.limit = grow(self.limit, n_rows, np.nan)
        self.limit[old:] = self._default
        for pid, lim in self.overrides.items():
            r = self.index.get(pid)
            if r is not None and r >= old:
                self.set_row_limits(r, lim)

    def row_arrays(self):
        yield from super().row_arrays()
        yield self, "limit"

    def checkpoint_arrays(self):
        yield from super().row_arrays()  # not "limit": the limits topic is its source, read on restore

    def layout_meaning(self) -> tuple:
        return tuple(r.condition for r in self.rules)

    # ------------------------------------------------------------------ per-patient limits

    def set_limits(self, patient: str, limits: dict) -> None:
        """Per-patient limits, as published on the limits topic (``{"spo2": {"low": 88}}``). A document
        of the wrong shape raises here and is not kept: kept, it would raise again whenever the
        patient's row is made (in the middle of a batch)."""
        apply_override(self.rules, limits)
        disabled_until(limits)
        self.overrides[patient] = limits
        r = self.index.get(patient)
        if r is not None and r < self.limit.shape[0]:
            self.set_row_limits(r, limits)

    def set_row_limits(self, row: int, limits: dict, now_ms: int | None = None) -> None:
        self.limit[row] = [r.limit for r in apply_override(self.rules, limits, now_ms)]
        ends = disabled_until(limits, now_ms)
        patient = self.ids[row]
        if ends:
            self._disable_ends[patient] = min(ends.values())
        else:
            self._disable_ends.pop(patient, None)

    def end_disables(self, now_ms: int) -> None:
        """An alarm a clinician switched off comes back on by itself when the disable ends."""
        if not self._disable_ends:
            return
        for patient in [p for p, end in self._disable_ends.items() if end <= now_ms]:
            r = self.index.get(patient)
            if r is None:
                self._disable_ends.pop(patient)
            else:
                self.set_row_limits(r, self.overrides.get(patient, {}), now_ms)

    # ------------------------------------------------------------------ the round

    def update(self, rnd: Round, events: list) -> None:
        rr, cc, v, t, valid, off = rnd.rows, rnd.metrics, rnd.values, rnd.ts, rnd.valid, rnd.off
        for j, rule in enumerate(self.rules):
            mask = cc == self._cols[j]
            if not mask.any():
                continue
            r, val, tt, ok, is_off = rr[mask], v[mask], t[mask], valid[mask], off[mask]
            lim = self.limit[r, j]
            if self._low[j]:
                outside, back_in = val < lim, val >= lim + self._hyst[j]
            else:
                outside, back_in = val > lim, val <= lim - self._hyst[j]
            onset = self.cond_onset[r, j]
            # Artefacts neither start nor end a condition. A sensor that is off pauses it, and ends it
            # only once off past twice the delay: a probe that reads 0 a second in five must not
            # restart the delay of a real desaturation every few seconds (it never raised), but one
            # back after minutes off starts counting afresh.
            start = ok & outside & (onset < 0)
            reset = (ok & ~outside) | (is_off & (tt - onset > 2 * self._delay[j]))
            onset = np.where(start, tt, np.where(reset, -1, onset))
            self.cond_onset[r, j] = onset
            active = self.cond_active[r, j]
            raise_ = ok & outside & ~active & (onset >= 0) & (tt - onset >= self._delay[j])
            clear = ok & active & back_in
            for i in np.flatnonzero(raise_):
                row = r[i]
                self.cond_active[row, j] = True
                self.cond_alert_onset[row, j] = onset[i]
                self.cond_value[row, j] = val[i]
                events.append(make_event(rnd.ids[row], rule.condition, AlertKind.physiological, rule.priority,
                                         int(onset[i]), int(tt[i]), AlertEventType.raised,
                                         alarm_texts.limit_raised(rule, float(val[i]), float(lim[i])),
                                         {rule.metric.value: float(val[i]), "limit": float(lim[i])}))
            for i in np.flatnonzero(clear):
                row = r[i]
                self.cond_active[row, j] = False
                events.append(make_event(rnd.ids[row], rule.condition, AlertKind.physiological, rule.priority,
                                         int(self.cond_alert_onset[row, j]), int(tt[i]), AlertEventType.cleared,
                                         alarm_texts.limit_cleared(rule, float(val[i])),
                                         {rule.metric.value: float(val[i])}))

    def active(self, row: int) -> list[str]:
        """The conditions active for a row."""
        return [self.rules[j].condition for j in np.flatnonzero(self.cond_active[row])]
