"""Child processes for the dev servers: start, wait until ready, stop; and a free loopback port.

Children are started with PR_SET_PDEATHSIG, so a killed test run takes its servers with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def log(msg: str) -> None:
    print(f"[devservices] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    # Linux only: the kernel sends SIGKILL to the child when the process that started it dies.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


@dataclass
class Proc:
    name: str
    workdir: Path
    popen: subprocess.Popen | None = None
    log_path: Path | None = None

    def _spawn(self, argv: list[str]) -> None:
        self.log_path = self.workdir / f"{self.name}.log"
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                      preexec_fn=die_with_parent, start_new_session=True)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, n: int = 40) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self, timeout: float = 20.0) -> None:
        if not self.alive():
            return
        assert self.popen is not None
        self.popen.terminate()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)

    def kill(self) -> None:
        if self.alive():
            assert self.popen is not None
            self.popen.kill()
            self.popen.wait(5)


def wait_until(what: str, ready: Callable[[], bool], proc: Proc, timeout: float) -> None:
    """Poll ``ready`` until it is true; fail with the log's tail if ``proc`` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{what} exited during start-up:\n{proc.log_tail()}")
        if ready():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not answer within {timeout:.0f}s:\n{proc.log_tail()}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return 200 <= r.status < 300
    except (urllib.error.URLError, OSError):
        return False


def run_async(coro):
    """Run a coroutine on a thread of its own, so callers inside an event loop (benchmarks, async
    fixtures) can use these functions too."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
