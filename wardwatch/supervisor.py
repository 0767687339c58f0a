"""Background tasks that cannot die quietly: each is restarted with back-off, and health says so.

A patient-safety service has loops that must run for as long as it does (consuming alarms,
escalating them, watching the detectors). An exception in one used to end it silently while the
health check stayed green. Under a :class:`Supervisor`, an exception is logged (its type and
message, never the data it was working on), the task is started again after an exponential
back-off, and :meth:`Supervisor.health` reports it as failing until it has run cleanly for
``healthy_after_s`` seconds. A task that *returns* while the service is not stopping is treated
as a failure too: these loops have no reason to end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

log = logging.getLogger(__name__)

STOP_GRACE_S = 5.0  # how long stop() waits for its tasks' clean-up before cancelling them again


@dataclass
class TaskStatus:
    name: str
    restarts: int = 0
    last_error: str | None = None
    failed_at: float | None = None  # monotonic time of the last failure
    started_at: float = field(default_factory=time.monotonic)

    def ok(self, healthy_after_s: float) -> bool:
        """Never failed, or running again since the last failure for long enough to trust it."""
        if self.failed_at is None:
            return True
        return self.started_at > self.failed_at and time.monotonic() - self.started_at >= healthy_after_s


class Supervisor:
    def __init__(self, *, base_delay: float = 0.5, max_delay: float = 30.0, healthy_after_s: float = 10.0,
                 stop: asyncio.Event | None = None) -> None:
        self.stop_event = stop  # a loop that returns once this is set ended as it should
        self.base_delay, self.max_delay, self.healthy_after_s = base_delay, max_delay, healthy_after_s
        self.status: dict[str, TaskStatus] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._stopping = False

    def spawn(self, name: str, factory: Callable[[], Awaitable[None]]) -> asyncio.Task:
        """Run ``factory()`` until the supervisor stops, starting it again whenever it fails."""
        self.status[name] = TaskStatus(name)
        task = self._tasks[name] = asyncio.create_task(self._run(name, factory), name=name)
        return task

    async def _run(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        st = self.status[name]
        failures = 0
        while not self._stopping:
            st.started_at = time.monotonic()
            try:
                await factory()
                if self._stopping or (self.stop_event is not None and self.stop_event.is_set()):
                    return
                raise RuntimeError("task returned while the service runs")
            except asyncio.CancelledError:
                if self._stopping or asyncio.current_task().cancelling():
                    raise  # we are being shut down: never swallow that
                err: BaseException = RuntimeError("cancelled from inside")
            except Exception as exc:  # noqa: BLE001 - every failure is retried; that is the point
                err = exc
            if time.monotonic() - st.started_at > self.healthy_after_s:
                failures = 0  # it had run fine for a while: start the back-off again from the bottom
            failures += 1
            st.restarts += 1
            st.failed_at = time.monotonic()
            st.last_error = type(err).__name__  # the message may quote data: health shows the type only
            delay = min(self.max_delay, self.base_delay * 2 ** (failures - 1))
            log.error("task %s failed (%s); restarting in %.1fs", name, type(err).__name__, delay)
            await asyncio.sleep(delay)

    def health(self) -> tuple[bool, dict]:
        doc = {name: {"ok": st.ok(self.healthy_after_s), "restarts": st.restarts, "last_error": st.last_error}
               for name, st in self.status.items()}
        return all(d["ok"] for d in doc.values()), doc

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Cancel every task and wait for them, but not for ever.

        A task's clean-up may itself wait on the network: a Kafka group member's ``stop()`` lets a
        rebalance under way finish first, which can take as long as the broker waits for the other
        members (a test's teardown once waited more than 15 s here). A service that cannot stop is
        one an operator must kill, so after ``grace_s`` the tasks still running are named in the log
        and cancelled once more, inside their clean-up; the broker drops a group member that never
        said goodbye after its session timeout."""
        self._stopping = True
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        _, pending = await asyncio.wait(tasks, timeout=grace_s) if tasks else (set(), set())
        if pending:
            log.warning("tasks still stopping after %.0fs, cancelled again: %s", grace_s,
                        ", ".join(sorted(t.get_name() for t in pending)))
            for t in pending:
                t.cancel()
            _, pending = await asyncio.wait(pending, timeout=grace_s)
            if pending:
                log.error("tasks that would not stop, left behind: %s", ", ".join(sorted(t.get_name() for t in pending)))
        for t in tasks:
            if t.done() and not t.cancelled():
                t.exception()  # retrieved, so that asyncio does not report it as never retrieved
