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
