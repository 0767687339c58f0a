"""The tiles' vitals: a burst of snapshots (every patient due at once, several each) shows each
patient's newest, and a malformed record from a client that is not ours costs only itself."""

from __future__ import annotations

import pytest

from wardwatch.models import VitalsSnapshot, now_ms

from .conftest import collect_events, connect, raised, send_events, until

pytestmark = pytest.mark.integration


async def test_a_burst_of_snapshots_shows_each_patients_newest_and_alarms_still_come_through(calm_ward):
    w = calm_ward
    nurse, _ = await connect(w, w.tokens["nurse"], wards=("*",))
    t0 = now_ms() - 60_000
    patients = [f"p{i}" for i in range(6)] + [f"x{i:04d}" for i in range(1500)]  # admitted, and not (unassigned)
    records = [(p.encode(), VitalsSnapshot(patient=p, ts=t0 + k * 5_000, values={"heart_rate": 60.0 + k}).model_dump_json().encode())
               for k in range(3) for p in patients]
    records.insert(100, (b"p1", b'{"patient": "p1", "ts": "soon"'))  # not a snapshot: skipped, nothing else is
    await w.producer.send_many(w.bus.topics.vitals, records)
    alarm = raised("p2")
    await send_events(w, [alarm])

    assert await until(lambda: len(w.service.feed.vitals) == len(patients), 15)
    shown = {p: (v["ts"], v["values"]["heart_rate"]) for p, v in w.service.feed.vitals.items()}
    assert shown == {p: (t0 + 10_000, 62.0) for p in patients}
    assert [e["alert"]["id"] for e in await collect_events(nurse, 1)] == [alarm.alert.id]
    await nurse.close()
