"""Per-connection limits on the socket, so that one client cannot stall the others.

A subscribe reads the event log on the event loop and an action is stored and fanned out to every
client, so both are rate-limited per connection; a refused message is answered, never silently
dropped, and the connection stays open.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

SUBSCRIBES_PER_10S = 5
ACTIONS_PER_10S = 20
REPLAY_MAX = 500  # a subscribe "since" further back than this many events gets a snapshot instead
RATED = {"subscribe": "subscribes", "ack": "actions", "pause": "actions", "resolve": "actions",
         "set_limits": "actions", "disable_alarm": "actions"}


class Refused(Exception):
    """A message answered with an error code; the connection stays open."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class Window:
    """At most ``n`` events in any ``per_s`` seconds (a sliding window of the last n times)."""

    def __init__(self, n: int, per_s: float) -> None:
        self.n, self.per_s, self.times = n, per_s, deque(maxlen=n)

    def take(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if len(self.times) == self.n and now - self.times[0] < self.per_s:
            return False
        self.times.append(now)
        return True


@dataclass
class Rates:
    subscribes: Window = field(default_factory=lambda: Window(SUBSCRIBES_PER_10S, 10.0))
    actions: Window = field(default_factory=lambda: Window(ACTIONS_PER_10S, 10.0))

    def check(self, kind: str) -> None:
        window = RATED.get(kind)
        if window and not getattr(self, window).take():
            raise Refused(429, f"too many {window}: at most {getattr(self, window).n} per 10 s")
