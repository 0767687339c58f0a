"""Supervised tasks come back after failing, and health says they failed until they have recovered."""

from __future__ import annotations

import asyncio

from wardwatch.supervisor import Supervisor


async def test_a_failing_task_is_restarted_and_reported_until_it_runs_cleanly():
    sup = Supervisor(base_delay=0.01, healthy_after_s=0.2)
    runs = []

    async def flaky():
        runs.append(1)
        if len(runs) < 3:
            raise ConnectionError("store down")
        await asyncio.sleep(3600)

    sup.spawn("escalation", flaky)
    await asyncio.sleep(0.1)
    ok, doc = sup.health()
    assert len(runs) == 3 and not ok
    assert doc["escalation"]["restarts"] == 2 and "ConnectionError" in doc["escalation"]["last_error"]
    await asyncio.sleep(0.25)
    assert sup.health()[0]
    await sup.stop()


async def test_a_loop_that_returns_while_the_service_runs_is_a_failure():
    sup = Supervisor(base_delay=0.01, healthy_after_s=5)
    calls = []

    async def ends():
        calls.append(1)

    sup.spawn("consumer", ends)
    await asyncio.sleep(0.1)
    assert len(calls) > 1 and not sup.health()[0]
    await sup.stop()


async def test_stop_does_not_wait_for_ever_on_a_task_whose_clean_up_hangs(caplog):
    """A Kafka group member's stop() can wait on a rebalance: the service must stop all the same."""
    sup = Supervisor()
    cleaned = asyncio.Event()
    left_hanging = asyncio.Event()  # never set: the network that does not answer

    async def member():
        try:
            await asyncio.sleep(3600)
        finally:
            try:
                await left_hanging.wait()
            finally:
                cleaned.set()

    async def quick():
        await asyncio.sleep(3600)

    sup.spawn("ownership", member)
    sup.spawn("fanout", quick)
    await asyncio.sleep(0.05)
    await asyncio.wait_for(sup.stop(grace_s=0.2), 2)
    assert cleaned.is_set(), "the second cancellation reached the clean-up"
    assert all(t.done() for t in sup._tasks.values())
    assert "ownership" in caplog.text and "fanout" not in caplog.text

