"""The delivery guarantee as one object: what a batch did, in order, and when its offsets may move.

Modelled on Quix Streams' ``Checkpoint``. A consumer hands each processed batch to the checkpoint
with the offsets it ends at and its effects, one coroutine per *lane* (for the detector worker:
``publish`` for alert events and snapshots, ``store`` for InfluxDB). Each lane runs its effects in
batch order in the background, so computing the next batch overlaps storing this one, and events
may reach nurses before the store write (replays are dropped by event id downstream).

:meth:`Checkpoint.commit` and :meth:`Checkpoint.commit_in_background` are the only ways offsets
move, and both keep this order::

    every effect of every batch acknowledged -> state saved (carrying the offsets it covers) -> offsets committed

The background commit takes the state *now* (a snapshot of the dirty keys, built at once, so it
matches the offsets handed in so far exactly) and leaves the waiting to a task: the loop goes on
computing while the effects, the state save and the offset commit are acknowledged behind it. One
background commit runs at a time; the next waits for it (:meth:`commit` does too), so state records
and offsets move in order.

A failed or cancelled effect, or a failed state save, *aborts* the checkpoint: nothing after the
failed step runs, and the owner must rewind (reload state, seek to the committed offsets). A commit
that fails after the state was saved leaves the offsets pending for the next commit; the saved state
says which offsets it covers, so a restore never mistakes replayed readings for late ones.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, Awaitable, Callable, Coroutine, Hashable, Mapping

log = logging.getLogger(__name__)

Offsets = dict[Hashable, int]


class CheckpointAborted(Exception):
    """An effect or the state save failed: the batches since the last commit must be replayed."""


class Checkpoint:
    def __init__(self, max_in_flight: int = 4) -> None:
        self.max_in_flight = max_in_flight
        self.offsets: Offsets = {}  # next offset per partition, for batches handed in so far
        self.committed: Offsets = {}  # what the last successful commit moved the offsets to
        self.dirty: set[str] = set()  # state keys (patients) changed since the last state save
        self._lanes: dict[str, asyncio.Task | None] = {}
        self._coros: dict[asyncio.Task, Coroutine] = {}  # effects in flight, by task
        self._committing: asyncio.Task | None = None  # the background commit in flight
        self.failure: BaseException | None = None

    # ------------------------------------------------------------------ batches

    @property
    def aborted(self) -> bool:
        return self.failure is not None

    async def add(self, offsets: Mapping[Hashable, int], effects: Mapping[str, Coroutine],
                  dirty: set[str] = frozenset()) -> None:
        """Schedule one batch's effects (each after the same lane's previous one) and note its offsets.

        Waits while ``max_in_flight`` batches are still being stored: back-pressure, not memory growth.
        """
        if self.aborted:
            for coro in effects.values():
                coro.close()
            raise CheckpointAborted(f"checkpoint already aborted: {self.failure!r}")
        for lane, coro in effects.items():
            prev = self._lanes.get(lane)
            task = asyncio.ensure_future(self._after(prev, coro))
            task.add_done_callback(self._note_failure)
            self._coros[task] = coro
            self._lanes[lane] = task
        self.offsets.update(offsets)
        self.dirty |= set(dirty)
        self._prune()
        while len(self._coros) > self.max_in_flight * max(1, len(self._lanes)):
            await asyncio.wait(list(self._coros), return_when=asyncio.FIRST_COMPLETED)
            self._prune()

    def _prune(self) -> None:
        """Forget the effects that are done: what is left is what is in flight."""
        self._coros = {t: c for t, c in self._coros.items() if not t.done()}

    @staticmethod
    async def _after(prev: asyncio.Task | None, coro: Coroutine) -> None:
        if prev is not None:
            try:
                await asyncio.shield(prev)
            except BaseException:
                coro.close()  # an earlier effect in this lane failed: later ones must not overtake it
                raise
        await coro

    def _note_failure(self, task: asyncio.Task) -> None:
        if self.failure is None:
            if task.cancelled():
                self.failure = asyncio.CancelledError("an effect was cancelled")
            elif task.exception() is not None:
                self.failure = task.exception()

    async def settle(self) -> None:
        """Wait for every effect handed in so far; raise :class:`CheckpointAborted` if any failed."""
        tasks = [t for t in self._lanes.values() if t is not None]
        if tasks:
            await asyncio.wait(tasks)
        if self.aborted:
            raise CheckpointAborted(repr(self.failure))

    # ------------------------------------------------------------------ commit

    @property
    def committing(self) -> bool:
        """Whether a background commit is still waiting for its acknowledgements."""
        return self._committing is not None and not self._committing.done()

    def commit_in_background(self, snapshot_state: Callable[[set[str], Offsets], Any],
                             send_state: Callable[[Any], Awaitable[None]],
                             commit_offsets: Callable[[Offsets], Awaitable[None]]) -> bool:
        """Start a commit of everything handed in so far without waiting for it.

        ``snapshot_state(dirty, offsets)`` runs now and returns what ``send_state`` sends later, once
        every effect handed in so far is acknowledged; the offsets follow the state. False (and
        nothing starts) while the previous background commit is still in flight or the window is
        aborted. A failure shows as :attr:`aborted`, as a failed effect does.
        """
        if self.aborted or self.committing:
            return False
        offsets = dict(self.offsets)
        dirty = set(self.dirty)
        state = snapshot_state(dirty, offsets) if dirty else None
        self.dirty -= dirty
        tails = [t for t in self._lanes.values() if t is not None]
        task = asyncio.ensure_future(self._commit_after(tails, state, bool(dirty), offsets, send_state, commit_offsets))
        task.add_done_callback(self._note_failure)
        self._committing = task
        return True

    async def _commit_after(self, tails: list[asyncio.Task], state, has_state: bool, offsets: Offsets,
                            send_state, commit_offsets) -> bool:
        if tails:
            await asyncio.wait(tails)
        if self.aborted:
            raise CheckpointAborted(repr(self.failure))
        if has_state:
            await send_state(state)
        return await self._commit_offsets(offsets, commit_offsets)

    async def _commit_offsets(self, offsets: Offsets, commit_offsets) -> bool:
        pending = {k: v for k, v in offsets.items() if self.committed.get(k) != v}
        if pending:
            try:
                await commit_offsets(pending)
            except Exception as exc:  # a broker restart or a rebalance: the next commit retries
                log.warning("offset commit failed (%s); the saved state covers these offsets", type(exc).__name__)
                return False
            self.committed.update(pending)
        return True

    async def commit(self, save_state: Callable[[set[str], Offsets], Awaitable[None]],
                     commit_offsets: Callable[[Offsets], Awaitable[None]]) -> bool:
        """Effects -> state -> offsets, waited for (after the background commit in flight, if any).
        True when the offsets were committed; raises :class:`CheckpointAborted` when an effect or
        the state save failed."""
        if self._committing is not None:
            await asyncio.wait([self._committing])
        await self.settle()
        offsets = dict(self.offsets)
        dirty = set(self.dirty)
        if dirty:
            try:
                await save_state(dirty, offsets)
            except Exception as exc:
                self.failure = exc
                raise CheckpointAborted(f"state save failed: {exc!r}") from exc
            self.dirty -= dirty
        return await self._commit_offsets(offsets, commit_offsets)

    async def cancel(self) -> None:
        """Stop the effects in flight (a worker that is shutting down or rewinding)."""
        tasks = [t for t in self._lanes.values() if t is not None and not t.done()]
        if self.committing:
            tasks.append(self._committing)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for coro in self._coros.values():
            if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
                coro.close()  # cancelled before its turn came
        self._coros.clear()
        if tasks and self.failure is None:
            self.failure = asyncio.CancelledError("effects cancelled")

    def reset(self, committed: Offsets | None = None) -> None:
        """A new window after a rewind or a rebalance: nothing in flight, nothing dirty."""
        self._lanes.clear()
        self._coros.clear()
        self._committing = None
        self.offsets = dict(committed or {})
        self.committed = dict(committed or {})
        self.dirty.clear()
        self.failure = None
