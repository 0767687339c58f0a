"""Is anyone still watching the patients? The alert service's view of the detector workers.

A nurse page that shows no alarm is only reassuring while detector workers are processing. The
alert service therefore follows the detector consumer group: when readings wait on the readings
topic and the group's committed offsets have not moved for ``stall_s`` seconds (every worker dead,
frozen, or stuck behind a store it cannot write), monitoring has stopped. Every nurse page is
told at once and says so loudly; the service's health turns red. An idle ward (nothing waiting)
is not a stall.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class MonitoringStatus:
    ok: bool = True
    reason: str = ""
    since_ms: int | None = None  # wall time monitoring stopped (None while it runs)
    waiting: int = 0  # readings waiting for a detector

    def message(self) -> dict:
        return {"type": "monitoring", "ok": self.ok, "reason": self.reason, "since": self.since_ms,
                "waiting": self.waiting}


class DetectorWatch:
    def __init__(self, stall_s: float = 30.0) -> None:
        self.stall_s = stall_s
        self.status = MonitoringStatus()
        self._last_done: int | None = None
        self._last_change = time.monotonic()
        self.checked = False
        self._failing_since: float | None = None

    def observe(self, progress: dict[int, tuple[int | None, int]], now: float | None = None) -> bool:
        """Take one reading of the group's progress; True when the status changed."""
        now = time.monotonic() if now is None else now
        self._failing_since = None
        done = sum(c or 0 for c, _ in progress.values())
        waiting = sum(max(0, end - (c or 0)) for c, end in progress.values())
        if done != self._last_done or waiting == 0:
            self._last_done, self._last_change = done, now
        stopped = waiting > 0 and now - self._last_change >= self.stall_s
        self.checked = True
        return self._set(not stopped, f"no detector has processed a reading for {int(now - self._last_change)}s "
                                      f"while {waiting} wait" if stopped else "", waiting)

    def unknown(self, why: str, now: float | None = None) -> bool:
        """The group's progress could not be read (Kafka down): past the same grace, not calm either."""
        now = time.monotonic() if now is None else now
        self._failing_since = self._failing_since or now
        if now - self._failing_since < self.stall_s:
            return False
        return self._set(False, f"cannot see the detectors: {why}", self.status.waiting)

    def _set(self, ok: bool, reason: str, waiting: int) -> bool:
        changed = ok != self.status.ok
        since = None if ok else (self.status.since_ms if not self.status.ok else int(time.time() * 1000))
        self.status = MonitoringStatus(ok, reason, since, waiting)
        return changed
