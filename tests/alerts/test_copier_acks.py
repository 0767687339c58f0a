"""The copier fetches the next batch while the alert log is still acknowledging the last one, but it
never commits an input offset before the log acknowledged what came before it: a copier that dies
(or whose log write fails) repeats, never loses, an alarm."""

from __future__ import annotations

import asyncio

import pytest

from alerts.alertlog import copied_group, copy_inputs
from wardwatch.bus import MemoryBus
from wardwatch.settings import Settings


class HeldLog:
    """A log producer whose acknowledgements the test releases (or fails) one batch at a time."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[bytes, bytes]]] = []
        self.acks: list[asyncio.Future] = []

    async def enqueue_many(self, topic, items):
        self.batches.append(list(items))
        self.acks.append(asyncio.get_running_loop().create_future())
        return self.acks[-1]


async def wait_for(cond, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def committed(bus: MemoryBus) -> int:
    return sum(o for tp, o in bus._committed.get(copied_group(bus.topics.prefix), {}).items()
               if tp.topic == bus.topics.alerts)


@pytest.fixture
async def bus(tmp_path):
    b = MemoryBus(Settings(backend="embedded", data_dir=tmp_path))
    await b.ensure_topics()
    return b


async def send(bus: MemoryBus, n: int, start: int) -> None:
    await bus.producer().send_many(bus.topics.alerts, [(b"p1", b'{"n":%d}' % i) for i in range(start, start + n)])


async def test_batches_are_fetched_ahead_but_committed_only_after_their_ack_in_order(bus):
    log, stop = HeldLog(), asyncio.Event()
    task = asyncio.create_task(copy_inputs(bus, log, stop))
    await send(bus, 3, 0)
    await wait_for(lambda: len(log.batches) == 1)
    await send(bus, 2, 3)
    await wait_for(lambda: len(log.batches) == 2)  # the second batch is queued before the first is acked
    await asyncio.sleep(0.1)
    assert committed(bus) == 0
    log.acks[1].set_result(2)  # acked out of order: still nothing may be committed
    await asyncio.sleep(0.1)
    assert committed(bus) == 0
    log.acks[0].set_result(3)
    await wait_for(lambda: committed(bus) == 5)
    assert [v for b in log.batches for _, v in b] == [b'e{"n":%d}' % i for i in range(5)]
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_a_failed_log_write_stops_the_copier_loudly_and_commits_nothing_from_it_on(bus):
    log, stop = HeldLog(), asyncio.Event()
    task = asyncio.create_task(copy_inputs(bus, log, stop))
    await send(bus, 2, 0)
    await wait_for(lambda: len(log.batches) == 1)
    log.acks[0].set_result(2)
    await wait_for(lambda: committed(bus) == 2)
    await send(bus, 2, 2)
    await wait_for(lambda: len(log.batches) == 2)
    await send(bus, 1, 4)
    await wait_for(lambda: len(log.batches) == 3)
    log.acks[2].set_result(1)
    log.acks[1].set_exception(RuntimeError("log unavailable"))
    with pytest.raises(RuntimeError, match="log unavailable"):
        await asyncio.wait_for(task, 5)
    assert committed(bus) == 2  # the batch after the failed one is not committed either


async def test_a_stream_of_small_batches_is_committed_a_few_times_a_second_not_after_each(bus, monkeypatch):
    from alerts import alertlog
    from wardwatch.bus import MemoryConsumer

    commits: list[int] = []
    real_commit = MemoryConsumer.commit

    async def counted(self, offsets=None):
        await real_commit(self, offsets)
        commits.append(committed(bus))

    monkeypatch.setattr(MemoryConsumer, "commit", counted)
    log, stop = HeldLog(), asyncio.Event()
    task = asyncio.create_task(copy_inputs(bus, log, stop))
    for i in range(20):  # an alarm every 10 ms, each fetched and acknowledged on its own
        await send(bus, 1, i)
        await wait_for(lambda: len(log.batches) == i + 1)
        log.acks[i].set_result(1)
        await asyncio.sleep(0.01)
    await wait_for(lambda: committed(bus) == 20, 2 * alertlog.COMMIT_EVERY_S + 1)
    assert len(commits) <= 4  # about 0.3 s of batches, a commit per COMMIT_EVERY_S (0.2 s), not one per batch
    assert commits == sorted(commits)  # each covers what was acknowledged before it, in order
    stop.set()
    await asyncio.wait_for(task, 5)
