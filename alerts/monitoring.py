"""Is anyone still watching the patients, and in time? The alert service's view of the detectors.

A nurse page that shows no alarm is only reassuring while detector workers are processing, and
processing *now*. The alert service therefore follows the detector consumer group:

* **stopped**: readings wait on the readings topic and the group's committed offsets have not moved
  for ``stall_s`` seconds (every worker dead, frozen, or stuck behind a store it cannot write);
* **delayed**: the workers move, but what waits would take them more than ``behind_s`` seconds at
  the rate they have committed over the last ``RATE_WINDOW_S`` (a worker group far behind after an
  outage, or too few workers for the load): an alarm raised now reaches the nurse that much later.

Either is told to every nurse page at once, which says so loudly, and turns the service's health
red. An idle ward (nothing waiting) is neither. Offsets are committed every few seconds
(``detect_checkpoint_s``), so what waits includes what is processed but not yet committed: the
default ``behind_s`` is well above that.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

RATE_WINDOW_S = 30.0  # the group's processing rate is measured over this long
MIN_SPAN_S = 10.0  # and judged only once it covers at least this much (a commit every few seconds)
RECOVER_AT = 0.75  # delayed until back within this share of ``behind_s``


@dataclass
class MonitoringStatus:
    ok: bool = True
    reason: str = ""
    since_ms: int | None = None  # wall time monitoring stopped or fell behind (None while it runs)
    waiting: int = 0  # readings waiting for a detector
    state: str = "running"  # running, delayed or stopped
    behind_s: float | None = None  # how long what waits would take at the current rate (when known)

    def message(self) -> dict:
        return {"type": "monitoring", "ok": self.ok, "state": self.state, "reason": self.reason,
                "since": self.since_ms, "waiting": self.waiting,
                "behind_s": None if self.behind_s is None else round(self.behind_s)}


class DetectorWatch:
    def __init__(self, stall_s: float = 30.0, behind_s: float = 60.0) -> None:
        self.stall_s, self.behind_s = stall_s, behind_s
        self.status = MonitoringStatus()
        self._last_done: int | None = None
        self._last_change = time.monotonic()
        self._samples: deque[tuple[float, int]] = deque()  # (monotonic time, offsets committed)
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
        self.checked = True
        if waiting > 0 and now - self._last_change >= self.stall_s:
            return self._set("stopped", f"no detector has processed a reading for {int(now - self._last_change)}s "
                                        f"while {waiting} wait", waiting)
        behind = self._behind(now, done, waiting)
        # Back to running only well within the limit: the estimate steps with every commit, and a
        # banner that comes and goes at the limit would teach nurses to ignore it.
        limit = self.behind_s * (RECOVER_AT if self.status.state == "delayed" else 1.0)
        if behind is not None and behind > limit:
            return self._set("delayed", f"the detectors are about {int(behind)}s behind the readings: "
                                        f"alarms come that much late", waiting, behind)
        return self._set("running", "", waiting, behind)

    def _behind(self, now: float, done: int, waiting: int) -> float | None:
        """Seconds the waiting readings would take at the rate committed over the last window."""
        if self._samples and done < self._samples[-1][1]:
            self._samples.clear()  # offsets went back (the group was reset): the old rate means nothing
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_S:
            self._samples.popleft()
        t0, d0 = self._samples[0]
        if waiting == 0 or now - t0 < MIN_SPAN_S:
            return None if waiting else 0.0
        rate = (done - d0) / (now - t0)
        return waiting / rate if rate > 0 else None  # no progress at all is the stall rule's to judge

    def unknown(self, why: str, now: float | None = None) -> bool:
        """The group's progress could not be read (Kafka down): past the same grace, not calm either."""
        now = time.monotonic() if now is None else now
        self._failing_since = self._failing_since or now
        if now - self._failing_since < self.stall_s:
            return False
        return self._set("stopped", f"cannot see the detectors: {why}", self.status.waiting)

    def _set(self, state: str, reason: str, waiting: int, behind: float | None = None) -> bool:
        ok = state == "running"
        changed = state != self.status.state
        since = None if ok else (self.status.since_ms if not self.status.ok else int(time.time() * 1000))
        self.status = MonitoringStatus(ok, reason, since, waiting, state, behind)
        return changed
