"""The live feed against the real Kafka: snapshot, live events, resume, roles, escalation, audit."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import websockets

from wardwatch.models import Priority, now_ms

from .conftest import collect_events, connect, raised, send_events, until

pytestmark = pytest.mark.integration


async def test_nurse_gets_live_alarms_of_her_ward_only(ward):
    ws, snap = await connect(ward, ward.tokens["nurse"], wards=("w7",))
    assert snap["type"] == "snapshot" and snap["alarms"] == []
    assert sorted(p["patient"] for p in snap["patients"]) == ["p0", "p1", "p2"]
    await send_events(ward, [raised("p1"), raised("p4")])  # p4 is on ward w8
    events = await collect_events(ws, 1)
    await asyncio.sleep(0.3)
    assert [e["alert"]["patient"] for e in events] == ["p1"]
    assert events[0]["ward"] == "w7" and events[0]["seq"] >= 1
    await ws.close()


async def test_reconnect_with_since_has_no_gap_and_no_duplicate(ward):
    ws, snap = await connect(ward, ward.tokens["nurse"])
    first = [raised("p0", onset=i * 100_000) for i in range(3)]
    await send_events(ward, first)
    got = await collect_events(ws, 3)
    last_seq = max(e["seq"] for e in got)
    await ws.close()
    # While the nurse is away: three new alarms, and a detector replay repeating one already seen.
    later = [raised("p1", onset=i * 100_000) for i in range(3)]
    await send_events(ward, later + [first[1]])
    await asyncio.sleep(1.0)
    ws, replay = await connect(ward, ward.tokens["nurse"], since=last_seq)
    assert replay["type"] == "replay"
    ids = [e["event_id"] for e in replay["events"]]
    assert ids == [e.event_id for e in later]
    assert all(e["seq"] > last_seq for e in replay["events"])
    await ws.close()


async def test_roles_gateway_and_no_token_get_nothing_nurse_cannot_change_limits(ward):
    for token, code in ((ward.tokens["gateway"], 4403), ("ww_forged", 4401), (None, 4401)):
        ws = await websockets.connect(ward.url)
        await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd.code == code
    ws, _ = await connect(ward, ward.tokens["nurse"])
    await ws.send(orjson.dumps({"type": "set_limits", "patient": "p1", "limits": {"spo2": {"low": 85}}, "why": "COPD"}).decode())
    reply = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    while reply["type"] in ("batch", "heartbeat"):
        reply = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    assert reply == {"type": "error", "code": 403, "message": "role 'nurse' may not use set_limits (clinician, admin only)"}
    await ws.close()
    ws, _ = await connect(ward, ward.tokens["clinician"])
    await ws.send(orjson.dumps({"type": "set_limits", "patient": "p1", "limits": {"spo2": {"low": 85}}, "why": "COPD"}).decode())
    reply = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    while reply["type"] in ("batch", "heartbeat"):
        reply = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    assert reply == {"type": "limits_set", "patient": "p1"}
    await ws.close()
    limits = ward.bus.consumer(ward.bus.topics.limits, group_id=None)
    await limits.start()
    batches = await limits.getmany(timeout_ms=5000)
    await limits.stop()
    docs = [orjson.loads(m.value) for msgs in batches.values() for m in msgs]
    assert docs and docs[0]["by"] == "clinician-tester" and docs[0]["why"] == "COPD"
    audit = ward.service.log.audit_rows()
    assert audit[0]["action"] == "set_limits" and audit[0]["who"] == "clinician-tester"


async def test_acknowledgement_is_audited_and_seen_by_every_client_of_the_ward(ward):
    a, _ = await connect(ward, ward.tokens["nurse"])
    b, _ = await connect(ward, ward.tokens["admin"], wards=("*",))
    ev = raised("p2")
    await send_events(ward, [ev])
    assert (await collect_events(a, 1))[0]["event_id"] == ev.event_id
    await collect_events(b, 1)
    await a.send(orjson.dumps({"type": "ack", "alert_id": ev.alert.id}).decode())
    seen_a = await collect_events(a, 1)
    seen_b = await collect_events(b, 1)
    for seen in (seen_a, seen_b):
        assert seen[0]["type"] == "acknowledged"
        assert seen[0]["alert"]["state"] == "acknowledged" and seen[0]["by"] == "nurse-tester"
    rows = ward.service.log.audit_rows()
    assert rows[0]["action"] == "acknowledged" and rows[0]["who"] == "nurse-tester" and rows[0]["target"] == ev.alert.id
    await a.close()
    await b.close()


async def test_unacknowledged_alarm_escalates_to_everyone(ward):
    other, _ = await connect(ward, ward.tokens["nurse"], wards=("w8",))  # a different ward
    await send_events(ward, [raised("p0", priority=Priority.medium)])
    events = await collect_events(other, 1, timeout=8)
    assert events and events[0]["type"] == "escalated"
    assert events[0]["alert"]["priority"] == "high" and events[0]["alert"]["escalation_level"] == 1
    await other.close()


async def test_another_wards_escalated_alarm_is_seen_acknowledged_and_resolved_where_it_was_shown(ward):
    other, _ = await connect(ward, ward.tokens["nurse"], wards=("w8",))  # shown p0's alarm once it escalates
    ev = raised("p0", priority=Priority.medium)
    await send_events(ward, [ev])
    events = await collect_events(other, 1, timeout=8)
    assert events and events[0]["type"] == "escalated"
    escalated_seq = events[0]["seq"]
    own, _ = await connect(ward, ward.tokens["nurse"], wards=("w7",))
    for kind in ("ack", "resolve"):
        await own.send(orjson.dumps({"type": kind, "alert_id": ev.alert.id}).decode())
    seen = [e for e in await collect_events(other, 3, timeout=5) if e["type"] != "escalated"]
    assert [(e["type"], e["alert"]["state"]) for e in seen] == [("acknowledged", "acknowledged"),
                                                                  ("resolved", "resolved")]
    await other.close()
    # A browser of ward w8 that reconnects from the escalation on learns it too: no alarm stays shown for ever.
    again, replay = await connect(ward, ward.tokens["nurse"], wards=("w8",), since=escalated_seq)
    assert replay["type"] == "replay"
    assert [e["type"] for e in replay["events"] if e["type"] != "escalated"] == ["acknowledged", "resolved"]
    await again.close()
    await own.close()


async def test_a_since_the_service_never_wrote_gets_a_snapshot_and_the_socket_stays_on_the_live_feed(calm_ward):
    ev = raised("p0")
    await send_events(calm_ward, [ev])
    await until(lambda: calm_ward.service.log.alarm(ev.alert.id))
    last = calm_ward.service.log.last_seq()
    sockets = []
    # From the future (a log rebuilt, another deployment), beyond SQLite's integers, negative, not a number.
    for since in (last + 1000, 2**63, 2**64 - 1, -1, True, 1.5):
        ws, first = await connect(calm_ward, calm_ward.tokens["nurse"], since=since)
        assert first["type"] == "snapshot", (since, first)
        assert first["seq"] == last and [a["id"] for a in first["alarms"]] == [ev.alert.id], since
        sockets.append(ws)
    later = raised("p1")
    await send_events(calm_ward, [later])
    for ws in sockets:
        assert [e["event_id"] for e in await collect_events(ws, 1)] == [later.event_id]
        await ws.close()


async def test_a_client_from_an_instance_a_moment_ahead_gets_what_follows_its_seq_and_nothing_twice(calm_ward):
    ev = raised("p0")
    await send_events(calm_ward, [ev])
    await until(lambda: calm_ward.service.log.alarm(ev.alert.id))
    ahead = calm_ward.service.log.last_seq() + 1  # the client saw, elsewhere, the event this view folds next
    ws = await websockets.connect(calm_ward.url)
    await ws.send(orjson.dumps({"type": "auth", "token": calm_ward.tokens["nurse"]}).decode())
    assert orjson.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "hello"
    await ws.send(orjson.dumps({"type": "subscribe", "wards": ["w7"], "since": ahead}).decode())
    await asyncio.sleep(0.3)
    seen, after = raised("p1"), raised("p2")
    await send_events(calm_ward, [seen])
    reply = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    assert reply["type"] == "replay" and reply["events"] == [] and reply["seq"] == ahead
    await send_events(calm_ward, [after])
    got = await collect_events(ws, 2, timeout=2)
    assert [e["event_id"] for e in got] == [after.event_id], "the one it saw elsewhere is not sent again"
    await ws.close()


async def test_a_limit_change_that_cannot_be_audited_is_refused_and_never_applied(calm_ward):
    async def unreachable(*args, **kwargs):
        raise ConnectionError("the alert log is unreachable")

    calm_ward.service.log_producer.send_many = unreachable  # the audit trail's topic, and only it
    ws, _ = await connect(calm_ward, calm_ward.tokens["clinician"])
    for msg in ({"type": "set_limits", "patient": "p1", "limits": {"spo2": {"low": 85}}, "why": "COPD"},
                {"type": "disable_alarm", "patient": "p1", "condition": "spo2_low", "why": "palliative",
                 "until": now_ms() + 3600_000}):
        await ws.send(orjson.dumps(msg).decode())
        reply = orjson.loads(await asyncio.wait_for(ws.recv(), 15))
        while reply["type"] in ("batch", "heartbeat"):
            reply = orjson.loads(await asyncio.wait_for(ws.recv(), 15))
        assert reply["type"] == "error" and reply["code"] == 503, (msg["type"], reply)
    await ws.close()
    assert calm_ward.service.overrides.get("p1") == {}
    limits = calm_ward.bus.consumer(calm_ward.bus.topics.limits, group_id=None)
    await limits.start()
    batches = await limits.getmany(timeout_ms=3000)
    await limits.stop()
    assert not [m for msgs in batches.values() for m in msgs], "nothing the audit trail lacks reached the detectors"


async def test_a_ward_nurse_watching_a_patient_sees_nothing_of_them_once_moved_to_another_ward(calm_ward):
    from wardwatch.auth import Role, TokenStore
    from wardwatch.registry import Registry

    token = TokenStore(calm_ward.settings.tokens_path).create(Role.nurse, "nurse-w7", ("w7",))[0]
    ws = await websockets.connect(calm_ward.url)
    await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
    assert orjson.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "hello"
    await ws.send(orjson.dumps({"type": "subscribe", "wards": ["w7"], "patients": ["p1"]}).decode())
    snap = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    assert snap["type"] == "snapshot" and "p1" in {p["patient"] for p in snap["patients"]}
    # An all-wards nurse asking the very same: the same scope of the feed, were it not for the token.
    wide, _ = await connect(calm_ward, calm_ward.tokens["nurse"], wards=())
    await wide.send(orjson.dumps({"type": "subscribe", "wards": ["w7"], "patients": ["p1"]}).decode())
    assert orjson.loads(await asyncio.wait_for(wide.recv(), 5))["type"] == "snapshot"
    await Registry(calm_ward.settings.registry_path, calm_ward.bus).admit("p1", "w8", "1")  # moved to ward w8
    await until(lambda: calm_ward.service.ward_of("p1") == "w8")
    ev = raised("p1")
    await send_events(calm_ward, [ev])
    assert [e["event_id"] for e in await collect_events(wide, 1)] == [ev.event_id]
    assert await collect_events(ws, 1, timeout=1.5) == [], "the w7 token sees no alarm of a w8 patient"
    await ws.send(orjson.dumps({"type": "subscribe", "wards": ["w7"], "patients": ["p1"], "since": snap["seq"]}).decode())
    reply = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    while reply["type"] in ("batch", "heartbeat"):
        reply = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    assert reply["type"] == "replay" and reply["events"] == []
    await ws.send(orjson.dumps({"type": "subscribe", "wards": ["w7"], "patients": ["p1"]}).decode())
    reply = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    while reply["type"] in ("batch", "heartbeat"):
        reply = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    assert reply["alarms"] == [] and "p1" not in {p["patient"] for p in reply["patients"]}
    await ws.close()
    await wide.close()
