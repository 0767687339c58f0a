"""The early-warning alarm: a score at medium or high risk, as one alert that moves in priority."""

from __future__ import annotations

import numpy as np

from wardwatch import alarm_texts
from wardwatch.models import AlertEventType, AlertKind, Priority

from ..protocol import RowState
from .events import make_event

LEVEL_PRIORITY = {2: Priority.medium, 3: Priority.high}


class EarlyWarningAlarm(RowState):
    """``early_warning`` from the scores' alarm levels (0 none, 1 low, 2 medium, 3 high; the highest
    over all score stages): raised at medium or high, updated when the level moves between them,
    cleared only when the level is back to none (level 0): hysteresis against chatter. The levels
    are the RCP's NEWS2 clinical-risk bands (Royal College of Physicians 2017) or the learned
    risk's tuned thresholds (docs/early-warning.md).

    Works when: a score that is itself meaningful for the patient (see each score's docstring).
    Does not work when: the score behind it does not (a partial NEWS2 from a watch, a just-admitted
    patient for the learned risk); a level that only touches "low" never raises.

        >>> import numpy as np
        >>> ew = EarlyWarningAlarm()
        >>> ew.resize(1)
        >>> rows, ids, events = np.array([0]), ["p1"], []
        >>> for t, level in enumerate([0, 2, 3, 1, 0]):
        ...     ew.update(rows, np.array([level]), np.array(["news2"], object), [["NEWS2"]],
        ...               np.array([1000 * t]), ids, events)
        >>> [(e.type.value, e.alert.priority.value, e.at) for e in events]
        [('raised', 'medium', 1000), ('updated', 'high', 2000), ('cleared', 'high', 4000)]
    """

    ARRAYS = {"score_active": ((), np.int8, 0), "score_alert_onset": ((), np.int64, -1)}

    def update(self, rows: np.ndarray, level: np.ndarray, cond: np.ndarray, reasons, t: np.ndarray, ids: list[str],
               events: list) -> None:
        active = self.score_active[rows]
        for i in np.flatnonzero((level >= 2) | (active > 0)):
            r, lv, cur = rows[i], int(level[i]), int(active[i])
            text = alarm_texts.early_warning(str(cond[i]), reasons[i])
            if cur == 0 and lv >= 2:
                self.score_active[r] = lv
                self.score_alert_onset[r] = t[i]
                events.append(make_event(ids[r], "early_warning", AlertKind.physiological, LEVEL_PRIORITY[lv],
                                         int(t[i]), int(t[i]), AlertEventType.raised, text, {}))
            elif cur > 0 and lv >= 2 and lv != cur:
                self.score_active[r] = lv
                events.append(make_event(ids[r], "early_warning", AlertKind.physiological, LEVEL_PRIORITY[lv],
                                         int(self.score_alert_onset[r]), int(t[i]), AlertEventType.updated,
                                         text, {}))
            elif cur > 0 and lv == 0:
                self.score_active[r] = 0
                events.append(make_event(ids[r], "early_warning", AlertKind.physiological, LEVEL_PRIORITY[cur],
                                         int(self.score_alert_onset[r]), int(t[i]), AlertEventType.cleared,
                                         alarm_texts.early_warning_cleared(), {}))
