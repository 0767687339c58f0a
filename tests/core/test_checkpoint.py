"""The checkpoint keeps the order effects -> state -> offsets, and a failed step stops what follows."""

from __future__ import annotations

import asyncio

import pytest

from wardwatch.checkpoint import Checkpoint, CheckpointAborted


class Log:
    """Records every step in order; a step named in ``fail`` raises instead."""

    def __init__(self, fail: set[str] = frozenset()) -> None:
        self.steps: list[str] = []
        self.fail = set(fail)

    def effect(self, name: str, delay: float = 0.0):
        async def run():
            await asyncio.sleep(delay)
            if name in self.fail:
                raise RuntimeError(f"{name} failed")
            self.steps.append(name)
        return run()

    async def save_state(self, dirty, offsets):
        if "state" in self.fail:
            raise RuntimeError("state failed")
        self.steps.append(f"state {sorted(dirty)} {offsets}")

    async def commit(self, offsets):
        if "commit" in self.fail:
            raise RuntimeError("commit failed")
        self.steps.append(f"commit {offsets}")


async def two_batches(cp: Checkpoint, log: Log) -> None:
    # The first batch's store write is slow: the second's must still wait behind it in its lane.
    await cp.add({0: 10}, {"publish": log.effect("publish 1"), "store": log.effect("store 1", 0.05)}, {"a"})
    await cp.add({0: 20, 1: 5}, {"publish": log.effect("publish 2"), "store": log.effect("store 2")}, {"b"})


async def test_offsets_move_only_after_every_effect_and_the_state():
    cp, log = Checkpoint(), Log()
    await two_batches(cp, log)
    assert await cp.commit(log.save_state, log.commit)
    assert log.steps.index("store 1") < log.steps.index("store 2")
    assert log.steps.index("publish 1") < log.steps.index("publish 2")
    assert log.steps[-2:] == ["state ['a', 'b'] {0: 20, 1: 5}", "commit {0: 20, 1: 5}"]
    assert cp.committed == {0: 20, 1: 5} and not cp.dirty


@pytest.mark.parametrize("failing", ["publish 1", "store 1", "publish 2", "store 2", "state"])
async def test_a_failed_step_aborts_and_nothing_after_it_runs(failing):
    cp, log = Checkpoint(), Log({failing})
    await two_batches(cp, log)
    with pytest.raises(CheckpointAborted):
        await cp.commit(log.save_state, log.commit)
    assert not any(s.startswith("commit") for s in log.steps)
    if failing != "state":
        assert not any(s.startswith("state") for s in log.steps)
    if failing == "store 1":
        assert "store 2" not in log.steps  # a later write never overtakes a failed one
    assert cp.aborted and cp.committed == {}
    with pytest.raises(CheckpointAborted):  # an aborted window takes no more batches
        await cp.add({0: 30}, {"store": log.effect("store 3")})


async def test_a_commit_that_fails_after_the_state_was_saved_keeps_the_offsets_pending():
    cp, log = Checkpoint(), Log({"commit"})
    await two_batches(cp, log)
    assert not await cp.commit(log.save_state, log.commit)
    assert log.steps[-1].startswith("state") and cp.committed == {} and not cp.aborted
    log.fail.clear()
    assert await cp.commit(log.save_state, log.commit)
    assert log.steps[-1] == "commit {0: 20, 1: 5}"
    assert sum(s.startswith("state") for s in log.steps) == 1  # nothing dirty: the state is not saved twice


async def test_cancelled_effects_abort_so_a_final_checkpoint_cannot_save_state_ahead_of_the_store():
    cp, log = Checkpoint(), Log()
    await cp.add({0: 10}, {"store": log.effect("store 1", 10.0)}, {"a"})
    await cp.cancel()
    assert cp.aborted
    with pytest.raises(CheckpointAborted):
        await cp.commit(log.save_state, log.commit)
    assert log.steps == []


async def test_in_flight_batches_are_bounded():
    cp, log = Checkpoint(max_in_flight=2), Log()
    gate = asyncio.Event()

    async def blocked():
        await gate.wait()

    for i in range(2):
        await cp.add({0: i}, {"store": blocked()})
    adding = asyncio.create_task(cp.add({0: 9}, {"store": blocked()}))
    await asyncio.sleep(0.05)
    assert not adding.done()  # back-pressure: the third batch waits for the store
    gate.set()
    await asyncio.wait_for(adding, 1)
    assert await cp.commit(log.save_state, log.commit)


async def test_a_background_commit_takes_the_state_now_and_moves_the_offsets_after_the_effects():
    cp, log = Checkpoint(), Log()
    gate = asyncio.Event()

    async def slow_store():
        await gate.wait()
        log.steps.append("store 1")

    await cp.add({0: 10}, {"publish": log.effect("publish 1"), "store": slow_store()}, {"a"})
    snapshots = []

    def snapshot(dirty, offsets):
        snapshots.append((sorted(dirty), dict(offsets)))
        return f"state {sorted(dirty)} {offsets}"

    async def send(state):
        log.steps.append(state)

    assert cp.commit_in_background(snapshot, send, log.commit)
    assert snapshots == [(["a"], {0: 10})] and not cp.dirty  # taken at once
    assert not cp.commit_in_background(snapshot, send, log.commit)  # one at a time
    await cp.add({0: 20}, {"store": log.effect("store 2")}, {"b"})  # the loop goes on meanwhile
    await asyncio.sleep(0.05)
    assert not any(s.startswith(("state", "commit")) for s in log.steps) and cp.committed == {}
    gate.set()
    assert await cp.commit(log.save_state, log.commit)  # waits for the background one, then its own
    assert log.steps.index("store 1") < log.steps.index("state ['a'] {0: 10}") < log.steps.index("commit {0: 10}")
    assert log.steps[-2:] == ["state ['b'] {0: 20}", "commit {0: 20}"] and cp.committed == {0: 20}


async def test_a_background_state_send_that_fails_aborts_and_commits_nothing():
    cp, log = Checkpoint(), Log()
    await cp.add({0: 10}, {"store": log.effect("store 1")}, {"a"})

    async def failing(state):
        raise RuntimeError("state topic down")

    assert cp.commit_in_background(lambda d, o: "state", failing, log.commit)
    await asyncio.sleep(0.05)
    assert cp.aborted and cp.committed == {} and not any(s.startswith("commit") for s in log.steps)
    with pytest.raises(CheckpointAborted):
        await cp.commit(log.save_state, log.commit)
