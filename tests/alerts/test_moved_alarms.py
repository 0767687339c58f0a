"""An alarm belongs to its patient, wherever they are and whichever monitor they have now.

A patient moved to another ward takes their open alarms along: the new ward's nurse sees and
acknowledges them, the old ward's nurse (whose token is valid, for the old ward) no longer may.
A monitor moved to the next bed names its alarms as it did before (its alarm id says nothing of the
patient): the same kind of alarm for the new patient is the new patient's alarm, on their ward,
and the first patient's alarm stays theirs.
"""

from __future__ import annotations

import pytest

from wardwatch.auth import TokenStore
from wardwatch.models import DeviceAlarm, now_ms

from ..security.conftest import answer
from .conftest import connect, raised, send_events, until

pytestmark = pytest.mark.integration


def nurse_of(w, ward: str) -> str:
    return TokenStore(w.settings.tokens_path).create("nurse", f"nurse-{ward}", wards=(ward,))[0]


async def test_a_moved_patients_open_alarm_is_the_new_wards_to_see_and_act_on(calm_ward):
    w = calm_ward
    ev = raised("p1")  # p1 on w7, high priority: latched until someone acknowledges it
    await send_events(w, [ev])
    assert await until(lambda: w.service.log.alarm(ev.alert.id))
    await w.registry.admit("p1", "w8", "9")
    assert await until(lambda: w.service.ward_of("p1") == "w8")

    old, old_snap = await connect(w, nurse_of(w, "w7"), wards=("*",))
    new, new_snap = await connect(w, nurse_of(w, "w8"), wards=("*",))
    assert [a["id"] for a in old_snap["alarms"]] == []
    assert [(a["id"], a["ward"]) for a in new_snap["alarms"]] == [(ev.alert.id, "w8")]

    refused = await answer(old, {"type": "resolve", "alert_id": ev.alert.id})
    assert (refused["type"], refused["code"]) == ("error", 404)
    assert (await answer(new, {"type": "ack", "alert_id": ev.alert.id}))["type"] != "error"
    assert await until(lambda: w.service.log.alarm(ev.alert.id)[0].state.value == "acknowledged")
    await old.close()
    await new.close()


def monitor_report(patient: str, state: str, ts: int, spo2: float) -> DeviceAlarm:
    # The monitor's id for "SpO2 low on mon-1", the same whoever is in the bed (as hl7v2_alarms makes it
    # when the message has no filler id).
    return DeviceAlarm(id="da-0123456789abcdef", event_id=f"da-0123456789abcdef:{state}:{ts}", patient=patient,
                       device="mon-1", event="MDC_EVT_LO", source="MDC_PULS_OXIM_SAT_O2", source_metric="spo2",
                       source_value=spo2, priority="high", device_priority="PH",
                       phase="start" if state == "active" else "end", state=state, text="Low SpO2", ts=ts)


async def test_a_monitor_moved_to_the_next_bed_raises_the_new_patients_alarm_not_the_old_ones(calm_ward):
    w = calm_ward
    t0 = now_ms() - 60_000

    async def report(da: DeviceAlarm) -> None:
        await w.producer.send_many(w.bus.topics.device_alarms, [(da.patient.encode(), da.model_dump_json().encode())])

    def shown(patient: str) -> list[dict]:
        return [a for a in w.service.log.open_alarms(None, set()) if a["patient"] == patient]

    await report(monitor_report("p1", "active", t0, 85.0))
    await report(monitor_report("p1", "ended", t0 + 5_000, 95.0))  # latched: shown as ended until acknowledged
    assert await until(lambda: [a["state"] for a in shown("p1")] == ["cleared"])
    await report(monitor_report("p4", "active", t0 + 30_000, 84.0))  # mon-1 now at p4's bed, on ward w8
    assert await until(lambda: shown("p4"))

    (p1,), (p4,) = shown("p1"), shown("p4")
    assert (p1["ward"], p1["state"], p1["values"]) == ("w7", "cleared", {"spo2": 95.0})
    assert (p4["ward"], p4["state"], p4["values"]) == ("w8", "active", {"spo2": 84.0})
    n7, snap7 = await connect(w, nurse_of(w, "w7"), wards=("*",))
    n8, snap8 = await connect(w, nurse_of(w, "w8"), wards=("*",))
    assert [a["patient"] for a in snap7["alarms"]] == ["p1"]
    assert [a["patient"] for a in snap8["alarms"]] == ["p4"]
    assert (await answer(n7, {"type": "ack", "alert_id": p1["id"]}))["type"] != "error"
    assert await until(lambda: not shown("p1"))  # acknowledged, the ended alarm is over
    assert [a["state"] for a in shown("p4")] == ["active"]
    await n7.close()
    await n8.close()
