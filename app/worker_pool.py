"""``wardwatch detect --processes N``: N detector worker processes in one consumer group, watched by
one parent.

Each child is ``wardwatch detect --processes 1`` with its own health port (``--metrics-port`` + i),
so Kafka shares the readings partitions among them as among any group members, and each uses a
core of its own (one Python process computes on one core). The parent only watches:

* SIGTERM or SIGINT: every child gets SIGTERM (each commits what it stored and leaves the group),
  the parent waits for them (SIGKILL after ``stop_timeout_s``) and exits 0;
* a child that exits by itself is restarted after a back-off (1 s, doubling up to 30 s); one that
  keeps dying (``max_restarts`` within ``window_s``) stops the whole pool and the parent exits 1,
  loud, for whatever runs it (systemd, compose) to see;
* the children die with the parent (``PR_SET_PDEATHSIG``), so a parent killed by SIGKILL leaves
  no worker running unwatched.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

log = logging.getLogger("wardwatch.detect")


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM to it when the parent dies (Linux), so it stops cleanly."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class Child:
    index: int
    port: int
    proc: subprocess.Popen | None = None
    deaths: list[float] = field(default_factory=list)  # when it exited by itself (monotonic)
    restart_at: float | None = None


class WorkerPool:
    def __init__(self, n: int, host: str, port: int, log_level: str = "INFO", max_restarts: int = 5,
                 window_s: float = 60.0, stop_timeout_s: float = 30.0) -> None:
        self.children = [Child(i, port + i) for i in range(n)]
        self.host, self.log_level = host, log_level
        self.max_restarts, self.window_s, self.stop_timeout_s = max_restarts, window_s, stop_timeout_s
        self._stopping = False

    def command(self, child: Child) -> list[str]:
        return [sys.executable, "-m", "app.cli", "--log-level", self.log_level, "detect", "--processes", "1",
                "--metrics-host", self.host, "--metrics-port", str(child.port)]

    def _start(self, child: Child) -> None:
        child.proc = subprocess.Popen(self.command(child), preexec_fn=_die_with_parent)
        child.restart_at = None
        log.info("detector worker %d started (pid %d, health on port %d)", child.index, child.proc.pid, child.port)

    def stop(self, *_) -> None:
        self._stopping = True

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.stop)
        for child in self.children:
            self._start(child)
        try:
            while not self._stopping:
                if not self._watch():
                    return 1
                time.sleep(0.2)
            return 0
        finally:
            self._stop_all()

    def _watch(self) -> bool:
        """Restart children that died; False when one keeps dying (the pool must fail loud)."""
        now = time.monotonic()
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None and child.restart_at is None:
                code = child.proc.returncode
                child.deaths = [t for t in child.deaths if now - t < self.window_s] + [now]
                if len(child.deaths) > self.max_restarts:
                    log.error("detector worker %d exited %d times within %.0fs (last code %s): stopping all",
                              child.index, len(child.deaths), self.window_s, code)
                    return False
                delay = min(30.0, 2.0 ** (len(child.deaths) - 1))
                log.error("detector worker %d exited (code %s); restarting it in %.0fs", child.index, code, delay)
                child.restart_at = now + delay
            if child.restart_at is not None and now >= child.restart_at:
                self._start(child)
        return True

    def _stop_all(self) -> None:
        running = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for p in running:
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for p in running:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("detector worker pid %d did not stop within %.0fs; killing it", p.pid, self.stop_timeout_s)
                p.kill()
                p.wait()
