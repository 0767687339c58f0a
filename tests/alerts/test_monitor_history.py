"""The monitors' alarms are stored in InfluxDB by one instance, the one that runs the timers, from
its view: only the monitors' reports (the detectors store their own, the outbox people's actions),
resumed by the next owner where the last one stopped, and held, loudly, while InfluxDB is down.
(Here on the in-process bus and the embedded store; tests/alerts/test_device_alarms.py does it on
the real Kafka and InfluxDB.)"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.structs import TopicPartition
from hypothesis import given, settings as hsettings, strategies as st

from alerts import monitor_history
from alerts.eventlog import EventLog
from alerts.history import patient_history
from alerts.monitor_history import MonitorHistory, monitor_history_group
from wardwatch.bus import open_bus
from wardwatch.embedded_store import EmbeddedStore
from wardwatch.models import AlertEventType
from wardwatch.settings import Settings

from .conftest import raised, until
from .test_monitor_reports import report


class FlakyStore(EmbeddedStore):
    """The embedded store, with writes that fail while ``down`` and a record of what was written."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.written: list[str] = []

    async def write_lines(self, lines, **kw) -> None:
        if self.down:
            raise ConnectionError("InfluxDB unreachable")
        self.written += lines
        await super().write_lines(lines, **kw)


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(monitor_history, "INTERVAL_S", 0.02)
    monkeypatch.setattr(monitor_history, "FAILING_RED_S", 0.2)


@pytest.fixture
def bus(tmp_path):
    return open_bus(Settings(backend="embedded", data_dir=tmp_path))


def a_view() -> EventLog:
    view = EventLog()
    for seq, (event, ward) in enumerate([(report("p1", AlertEventType.raised, 10_000), "w7"),
                                         (raised("p1", onset=11_000), "w7"),  # the detectors' own: stored by them
                                         (report("p1", AlertEventType.acknowledged, 12_000, by="nurse-1"), "w7"),
                                         (report("p1", AlertEventType.cleared, 20_000), "w7")], start=1):
        view.append_many([(event, ward)], seqs=[seq], seen=[1.0])
    return view


async def committed(bus) -> int | None:
    reader = await bus.assigned_consumer(bus.topics.alert_log, group_id=monitor_history_group(bus.topics.prefix))
    try:
        return await reader.committed(TopicPartition(bus.topics.alert_log, 0))
    finally:
        await reader.stop()


async def test_only_the_owner_stores_the_monitors_reports_and_the_next_owner_resumes_after_them(bus):
    view, store, owns = a_view(), FlakyStore(), [False]
    folded = [4]
    first = MonitorHistory(bus, store, view, folded=lambda: folded[0], owns=lambda: owns[0])
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(stop))
    await asyncio.sleep(0.2)
    assert store.written == []  # not the owner: another instance writes

    owns[0] = True
    assert await until(lambda: len(store.written) == 2, 2)
    rows = await store.query_series("alerts", "p1", 0, 60_000, fields=["alert_id"])
    assert [(r["event"], r["kind"], r["value"]) for r in rows] == [("raised", "device", "da-1"),
                                                                   ("cleared", "device", "da-1")]
    assert await until(lambda: first.status() == {"writes": True, "behind": 0, "ok": True}, 2)
    assert await committed(bus) == 4

    # The ownership moves to another instance, which has the same view and one more report.
    owns[0] = False
    view.append_many([(report("p1", AlertEventType.raised, 30_000, aid="da-2"), "w7")], seqs=[5], seen=[2.0])
    folded[0] = 5
    second_store = FlakyStore()
    second = MonitorHistory(bus, second_store, view, folded=lambda: folded[0], owns=lambda: True)
    task2 = asyncio.create_task(second.run(stop))
    assert await until(lambda: len(second_store.written) == 1, 2)
    assert "alert_id=\"da-2\"" in second_store.written[0]
    await asyncio.sleep(0.1)
    assert len(store.written) == 2 and len(second_store.written) == 1  # nothing written twice
    assert first.status()["writes"] is False
    stop.set()
    await asyncio.gather(task, task2)


async def test_an_influxdb_outage_holds_the_position_and_the_health_until_the_alarms_are_stored(bus):
    view, store = a_view(), FlakyStore()
    store.down = True
    mh = MonitorHistory(bus, store, view, folded=lambda: 4, owns=lambda: True)
    stop = asyncio.Event()
    task = asyncio.create_task(mh.run(stop))
    assert await until(lambda: not mh.ok, 2)  # red, not calm
    assert await committed(bus) is None and mh.status()["behind"] == 4

    store.down = False
    assert await until(lambda: mh.ok and mh.status()["behind"] == 0, 2)
    assert await committed(bus) == 4
    # What a clinician reads once the alert log no longer holds the reports: they are in the store.
    hist = await patient_history(store, "p1", 0, 60_000, monitor_events=[])
    assert [(a["event"], a["kind"]) for a in hist["alarms"]] == [("raised", "device"), ("cleared", "device")]
    (ep,) = hist["episodes"]
    assert (ep["start"], ep["end"], ep["title"]) == (10_000, 20_000, "Monitor: Low SpO2")
    # And while the view still holds them too, each shows once.
    both = await patient_history(store, "p1", 0, 60_000, monitor_events=view.monitor_reports("p1", 0, 60_000))
    assert [(a["event"], a["time"]) for a in both["alarms"]] == [("raised", 10_000), ("cleared", 20_000)]
    stop.set()
    await task


# Whole sequences: reports and other events folded, the ownership moving between two instances,
# InfluxDB going down and up, each owner catching up when it gets to. Once InfluxDB is up and an
# owner has caught up, the store holds every monitor report of the view, and nothing else.
STEPS = st.lists(st.one_of(st.tuples(st.just("fold"), st.sampled_from(["report", "action", "detector"])),
                           st.tuples(st.just("owner"), st.sampled_from([0, 1])),
                           st.tuples(st.just("influx"), st.booleans()),
                           st.tuples(st.just("catch_up"), st.just(None))), max_size=30)


@hsettings(max_examples=60, deadline=None)
@given(STEPS)
def test_any_sequence_of_folds_owners_and_outages_ends_with_every_report_stored_once(tmp_path_factory, steps):
    async def scenario() -> None:
        bus = open_bus(Settings(backend="embedded", data_dir=tmp_path_factory.mktemp("mh")))
        view, store, owner = EventLog(), FlakyStore(), [0]
        folded = [0]
        instances = [MonitorHistory(bus, store, view, folded=lambda: folded[0], owns=lambda i=i: owner[0] == i)
                     for i in range(2)]
        tp = TopicPartition(bus.topics.alert_log, 0)
        consumers = [await bus.assigned_consumer(bus.topics.alert_log, group_id=monitor_history_group(bus.topics.prefix))
                     for _ in instances]
        n = 0

        async def catch_up(i: int) -> None:
            try:
                await instances[i].catch_up(consumers[i], tp)
            except ConnectionError:
                pass  # the run loop logs it and tries again next round

        for kind, arg in steps:
            if kind == "fold":
                n += 1
                event = (report("p1", AlertEventType.raised, 1_000 * n, aid=f"da-{n}") if arg == "report" else
                         report("p1", AlertEventType.acknowledged, 1_000 * n, by="nurse-1", aid=f"da-{n}")
                         if arg == "action" else raised("p1", onset=1_000 * n))
                view.append_many([(event, "w7")], seqs=[n], seen=[1.0])
                folded[0] = n
            elif kind == "owner" and arg != owner[0]:
                instances[owner[0]].stored_upto = None  # what run() does when the ownership goes
                owner[0] = arg
            elif kind == "influx":
                store.down = not arg
            else:
                await catch_up(owner[0])
        store.down = False
        await catch_up(owner[0])
        stored = {(r["value"], r["time"]) for r in await store.query_series("alerts", "p1", 0, 10**9, fields=["alert_id"])}
        reports = {(e["alert"]["id"], e["at"]) for e in view.monitor_reports("p1", 0, 10**9)}
        assert stored == reports
        assert (await consumers[0].committed(tp) or 0) == n
        for c in consumers:
            await c.stop()

    asyncio.run(scenario())
