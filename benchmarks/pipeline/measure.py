"""Measuring a running build: consumer-group lag, drain rate, per-process CPU and memory, latency stats."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np
import psutil
from aiokafka.structs import TopicPartition

from wardwatch.kafka import make_admin, make_consumer
from wardwatch.settings import Settings


class GroupWatch:
    """Committed offsets of a consumer group against the topic's end offsets, with long-lived clients."""

    def __init__(self, settings: Settings, group: str, topic: str, partitions: int) -> None:
        self.group, self.topic = group, topic
        self.admin = make_admin(settings)
        self.consumer = make_consumer(settings)
        self.tps = [TopicPartition(topic, p) for p in range(partitions)]

    async def start(self) -> "GroupWatch":
        await self.admin.start()
        await self.consumer.start()
        return self

    async def stop(self) -> None:
        await self.admin.close()
        await self.consumer.stop()

    async def consumed(self) -> tuple[int, int]:
        """(committed, end) summed over the topic's partitions; committed is 0 before the group exists."""
        ends = await self.consumer.end_offsets(self.tps)
        try:
            offsets = await self.admin.list_consumer_group_offsets(self.group)
        except Exception:  # the group or its coordinator does not exist yet
            return 0, sum(ends.values())
        committed = sum(o.offset for tp, o in offsets.items() if tp.topic == self.topic and o.offset >= 0)
        return committed, sum(ends.values())


async def drain_rate(watch: GroupWatch, total: int, timeout: float, poll_s: float = 0.1) -> dict:
    """Watch a group consume ``total`` prefilled records and time it by its commits (``window_rate``).
    Stops once everything is committed, or at ``timeout`` (the rate is then over what it did)."""
    marks: list[tuple[float, int]] = [(time.monotonic(), 0)]  # (when, committed) at every change
    deadline = marks[0][0] + timeout
    while time.monotonic() < deadline:
        committed, _end = await watch.consumed()
        if committed != marks[-1][1]:
            marks.append((time.monotonic(), committed))
        if committed >= total:
            break
        await asyncio.sleep(poll_s)
    return {"readings_per_s": window_rate(marks, total), "drained": marks[-1][1]}


def window_rate(marks: list[tuple[float, int]], total: int) -> float:
    """Records a second between two commits made while the backlog was still being read.

    ``marks`` are (time, committed offsets) at each change, from the start (0 committed). The
    window opens at the first commit past 10 % (start-up is not counted) and closes at the last
    commit before everything was committed: the final commit may come a whole commit interval
    after the last record was read (5 s for WardWatch's checkpoint), and timing that idle tail
    would measure the spacing of commits, not the build. Where there is no such pair (a build that
    commits the whole backlog at once, or once past 10 % and then at the end) the window closes at
    the final commit; a build whose first commit is already past 90 % is timed from the
    mark before it (the start of the watch, start-up included: such a backlog is too short to
    time that build)."""
    i = next((k for k, (_, c) in enumerate(marks) if c >= 0.1 * total), None)
    if i is None:
        return 0.0
    if marks[i][1] >= 0.9 * total and i > 0:
        i -= 1
    # Commits only rise: the last mark short of the total, else the next one (the final commit).
    j = max((k for k in range(i + 1, len(marks)) if marks[k][1] < total), default=min(i + 1, len(marks) - 1))
    if j <= i:
        return 0.0
    (t0, c0), (t1, c1) = marks[i], marks[j]
    return (c1 - c0) / max(t1 - t0, 1e-6)


@dataclass
class ProcSampler:
    """Samples CPU and RSS of named processes once a second while a phase runs."""

    pids: dict[str, int]
    cpu: dict[str, list[float]] = field(default_factory=dict)
    rss: dict[str, list[float]] = field(default_factory=dict)
    _task: asyncio.Task | None = None
    _seen: dict[int, psutil.Process] = field(default_factory=dict)

    async def _loop(self) -> None:
        procs = {}
        for name, pid in self.pids.items():
            try:
                procs[name] = psutil.Process(pid)
            except psutil.Error:
                pass
        while True:
            await asyncio.sleep(1.0)
            for name, p in procs.items():
                # A process and its children (``detect --processes N`` forks its workers).
                cpu = rss = 0.0
                for q in [p, *_children(p)]:
                    try:
                        cpu += self._cpu_since_last(q)
                        rss += q.memory_info().rss / 2**20
                    except psutil.Error:
                        pass
                self.cpu.setdefault(name, []).append(cpu)
                self.rss.setdefault(name, []).append(rss)

    def _cpu_since_last(self, q: psutil.Process) -> float:
        seen = self._seen.setdefault(q.pid, q)  # psutil measures CPU since the previous call on the same object
        return seen.cpu_percent(None)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> dict:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        return {name: {"cpu_percent": round(float(np.mean(self.cpu.get(name) or [0])), 1),
                       "rss_mb": round(float(np.max(self.rss.get(name) or [0])), 1)} for name in self.pids}


def _children(p: psutil.Process) -> list[psutil.Process]:
    try:
        return p.children(recursive=True)
    except psutil.Error:
        return []


def latency_stats(samples: list[tuple[int, float]], since_ms: int) -> dict:
    """p50/p99/p99.9/max of the latencies of events whose reading time is ``since_ms`` or later (the
    warm-up before it is left out), and how many there were."""
    a = np.asarray([lat for at, lat in samples if at >= since_ms], dtype=float)
    if not len(a):
        return {"p50_ms": None, "p99_ms": None, "p999_ms": None, "max_ms": None, "samples": 0}
    p50, p99, p999 = np.percentile(a, [50, 99, 99.9])
    return {"p50_ms": round(float(p50), 1), "p99_ms": round(float(p99), 1), "p999_ms": round(float(p999), 1),
            "max_ms": round(float(a.max()), 1), "samples": int(len(a))}
