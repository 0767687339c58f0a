"""The access table enforced, case by case, on the real stack (Kafka, InfluxDB, the alert service, ingest).

The cases come from ``wardwatch.access.TABLE``: every route and socket message, for every caller
(no token, forged, revoked, each role ward-scoped to w7 and not) and, where the action is ward-
scoped, on a patient of the caller's ward (w7) and of another (w8). Then the issue's scenarios:
cross-ward actions only after escalation, limits that cannot switch an alarm off, revocation,
floods, methods and headers.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from pathlib import Path

import httpx
import orjson
import pytest
import websockets

from alerts.guards import ACTIONS_PER_10S, REPLAY_MAX, SUBSCRIBES_PER_10S
from detectors.engine import DetectorEngine
from wardwatch.alarm_rules import DEFAULT_RULES, apply_override
from wardwatch import access
from wardwatch.auth import Role, TokenStore
from wardwatch.models import AlertEventType, Priority, alert_id, now_ms

from ..alerts.conftest import raised, send_events
from ..detectors.helpers import columns
from .conftest import answer, authed, until

pytestmark = pytest.mark.integration
README = Path(__file__).resolve().parents[2] / "README.md"
CALLERS = ["no token", "forged token", "revoked token"] + [f"{r.value}{s}" for r in Role for s in ("", " w7")]
PATIENT = {"w7": "p1", "w8": "p4"}
ALARM_ACTIONS = {"ack", "pause", "resolve"}
CASES = [(a.name, ward, caller) for a in access.TABLE for ward in (("w7", "w8") if a.ward_scoped else ("w7",))
         for caller in CALLERS]


def expected(action: access.Action, caller, ward: str) -> int | None:
    """What the table says: 401, 403, or None (allowed)."""
    if action.is_open:
        return None
    if caller.role is None:
        return 401
    if caller.role not in action.roles:
        return 403
    if action.ward_scoped and caller.wards and ward not in caller.wards:
        # An alarm of another ward is answered as an unknown one, so that a guessed id tells nothing.
        return 404 if action.name in ALARM_ACTIONS else 403
    return None


def message(name: str, ward: str, stack) -> dict:
    patient, alarm = PATIENT[ward], stack.alarms[ward]
    return {"ping": {}, "subscribe": {"wards": [ward]}, "ack": {"alert_id": alarm}, "pause": {"alert_id": alarm},
            "resolve": {"alert_id": alarm},
            "set_limits": {"patient": patient, "limits": {"spo2": {"low": 88}}, "why": "access table"},
            "disable_alarm": {"patient": patient, "condition": "hr_high", "why": "access table",
                              "until": now_ms() + 3600_000}}[name] | {"type": name}


INGEST_BODIES = {"ingest.json": {"readings": []}, "ingest.fhir": {"resourceType": "Bundle", "type": "collection", "entry": []},
                 "ingest.hl7v2": "MSH|^~\\&|GW||WW||20240101000000||ORU^R01|1|P|2.6", "ingest.admit": {"patient": "p10", "ward": "w9"},
                 "ingest.assign": {"device": "mon-0"}, "ingest.discharge": {}}


def http_requests(action: access.Action, ward: str) -> list[tuple[str, str, dict, object]]:
    method, paths = action.surface.split(" ", 1)
    now = now_ms()
    params = {"patient": PATIENT[ward]} | ({"start": now - 3600_000, "stop": now} if action.name.startswith("history") else {})
    out = []
    for path in paths.split(", "):
        path = path.replace("*", "nurse.js").replace("{patient}", "p9" if action.name.endswith("discharge") else "p0")
        out.append((method, path, params if action.ward_scoped else {}, INGEST_BODIES.get(action.name)))
    return out


async def send(stack, action: access.Action, request: tuple, headers: dict) -> httpx.Response:
    """One of ``http_requests``' requests to the service the action belongs to."""
    method, path, params, body = request
    if action.service == "ingest":
        kw = {"content": body} if isinstance(body, str) else {"json": body} if body is not None else {}
        return await stack.ingest.request(method, path, params=params, headers=headers, **kw)
    base = stack.detect_http if action.service == "detect" else stack.http
    async with httpx.AsyncClient(base_url=base) as http:
        return await http.request(method, path.replace(":9108", ""), params=params, headers=headers)


async def outcome(stack, action: access.Action, caller, ward: str):
    """401/403 as the service answered, None when allowed, anything else as found (so a mismatch shows it)."""
    if action.surface.startswith("ws "):
        ws, code = await authed(stack.url, caller.token)
        if ws is None:
            return {4401: 401, 4403: 403}.get(code, f"close {code}")
        try:
            if action.name == "auth":
                return None
            reply = await answer(ws, message(action.name, ward, stack))
        finally:
            await ws.close()
        if action.name == "subscribe":  # narrowed rather than refused: never another ward's patients
            seen = {p["ward"] for p in reply["patients"]}
            return 403 if not seen and caller.wards and ward not in caller.wards else (None if seen <= {ward} else seen)
        return reply.get("code", reply["message"]) if reply["type"] == "error" else None
    results = set()
    headers = {"Authorization": f"Bearer {caller.token}"} if caller.token else {}
    for request in http_requests(action, ward):
        r = await send(stack, action, request, headers)
        ok = r.status_code < 500 or action.name.endswith("healthz")
        results.add(r.status_code if r.status_code in (401, 403) else None if ok else r.status_code)
    assert len(results) == 1, results
    return results.pop()


@pytest.mark.parametrize("name,ward,caller", CASES, ids=[f"{n}-{w}-{c}" for n, w, c in CASES])
async def test_the_table_is_what_is_enforced(stack, name, ward, caller):
    action, who = access.ACTIONS[name], next(c for c in stack.callers if c.label == caller)
    assert await outcome(stack, action, who, ward) == expected(action, who, ward)


def test_every_caller_is_covered_and_every_action_has_a_request():
    assert {c for _, _, c in CASES} == set(CALLERS)
    for a in access.TABLE:
        assert a.surface.startswith(("ws ", "GET ", "POST ")), a
        assert a.name in access.SOCKET_MESSAGES or http_requests(a, "w7")


def test_readme_access_section_is_the_rendered_table():
    section = README.read_text().split("## Access", 1)[1].split("\n## ", 1)[0]
    table = "".join(line + "\n" for line in section.splitlines() if line.startswith("|"))
    assert table == access.render_markdown()


async def test_healthz_is_open_and_says_nothing_about_patients(stack):
    async with httpx.AsyncClient(base_url=stack.http) as http:
        body = (await http.get("/healthz")).json()
    assert set(body) <= {"ok", "consuming", "store_ok", "clients", "seq", "tasks", "monitoring", "outbox", "outbox_ok",
                         "copying", "escalates", "monitor_history"}
    assert set(body.get("monitor_history", {})) <= {"writes", "behind", "ok"}
    assert not re.search(r"p\d|w\d", orjson.dumps(body).decode())


async def test_never_subscribed_ward7_nurse_acts_on_ward8_alarm_only_once_it_escalated(ward):
    token = TokenStore(ward.settings.tokens_path).create(Role.nurse, "nurse-w7", ("w7",))[0]
    ev = raised("p4", priority=Priority.medium)  # p4 is on ward w8
    await send_events(ward, [ev])
    await until(lambda: ward.service.log.alarm(ev.alert.id))
    ws, _ = await authed(ward.url, token)  # and never subscribes
    for kind in ("ack", "pause", "resolve"):
        reply = await answer(ws, {"type": kind, "alert_id": ev.alert.id})
        never = await answer(ws, {"type": kind, "alert_id": alert_id("p9", "spo2_low", 1_000)})
        assert reply == never == {"type": "error", "code": 404, "message": "unknown alarm, or not on your wards"}, \
            "another ward's alarm and an alarm that never was get the same answer"
    assert ward.service.log.alarm(ev.alert.id)[0].state.value == "active"
    await until(lambda: ward.service.log.alarm(ev.alert.id)[0].escalation_level > 0)
    assert (await answer(ws, {"type": "ack", "alert_id": ev.alert.id}))["type"] == "pong"
    assert ward.service.log.alarm(ev.alert.id)[0].state.value == "acknowledged"
    row = next(r for r in ward.service.log.audit_rows() if r["target"] == ev.alert.id)
    assert (row["who"], row["action"]) == ("nurse-w7", "acknowledged")
    assert orjson.loads(row["detail"]) == {"patient": "p4", "cross_ward": True}
    await ws.close()


async def limits_docs(stack) -> list[dict]:
    consumer = stack.bus.consumer(stack.bus.topics.limits, group_id=None)
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=3000, max_records=10_000)
    finally:
        await consumer.stop()
    return [orjson.loads(m.value) for msgs in batches.values() for m in msgs]


async def test_limits_are_ward_scoped_validated_and_cannot_switch_an_alarm_off(stack):
    scoped = next(c for c in stack.callers if c.label == "clinician w7")
    ws, _ = await authed(stack.url, scoped.token)
    good = {"type": "set_limits", "patient": "p2", "limits": {"spo2": {"low": 88}}, "why": "COPD"}
    assert (await answer(ws, good | {"patient": "p5"}))["code"] == 403  # ward w8
    bad = [({"spo2": {"low": -1e308}}, 400), ({"spo2": {"low": 49}}, 400), ({"spo2": {"low": 101}}, 400),
           ({"spo2": {"low": "88"}}, 400), ({"spo2": {"low": True}}, 400), ({"spo2": {"mid": 90}}, 400),
           ({"heart_rate": {"low": 130, "high": 120}}, 400), ({"glucose": {"low": 4}}, 400), ({}, 400), ([], 400)]
    for limits, code in bad:
        reply = await answer(ws, good | {"limits": limits})
        assert reply["type"] == "error" and reply["code"] == code, (limits, reply)
    for raw in ('{"type":"set_limits","patient":"p2","limits":{"spo2":{"low":NaN}},"why":"x"}',
                '{"type":"set_limits","patient":"p2","limits":{"spo2":{"low":1e999}},"why":"x"}'):
        await ws.send(raw)
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "error"
    assert (await answer(ws, good | {"why": ""}))["code"] == 400
    admin = next(c for c in stack.callers if c.label == "admin")
    ws_admin, _ = await authed(stack.url, admin.token)
    assert (await answer(ws_admin, good | {"patient": "nobody"}))["code"] == 404  # not admitted
    assert await answer(ws, good) == {"type": "limits_set", "patient": "p2"}
    until_ms = now_ms() + 3600_000
    disable = {"type": "disable_alarm", "patient": "p2", "condition": "spo2_low", "why": "palliative", "until": until_ms}
    for wrong in ({"why": ""}, {"until": now_ms() + 25 * 3600_000}, {"until": now_ms() - 1}, {"until": None},
                  {"condition": "everything"}):
        assert (await answer(ws, disable | wrong))["code"] == 400, wrong
    assert (await answer(ws, disable | {"patient": "p5"}))["code"] == 403
    assert (await answer(ws, disable))["type"] == "alarm_disabled"
    await ws.close()
    await ws_admin.close()
    docs = [d for d in await limits_docs(stack) if d["patient"] == "p2" and d["why"] in ("COPD", "palliative")]
    assert [d["why"] for d in docs] == ["COPD", "palliative"]  # nothing refused was published
    published = docs[-1]["limits"]
    assert published == {"spo2": {"low": 88}, "disabled": {"spo2_low": until_ms}}  # the limit kept, the disable added
    audit = [r for r in stack.service.log.audit_rows() if r["target"] == "p2"]
    assert audit[0]["action"] == "disable_alarm" and orjson.loads(audit[0]["detail"])["until"] == until_ms
    # What the detectors make of it: spo2_low off until then (the critical rule still on), back on after.
    rules = {r.condition: r.limit for r in apply_override(DEFAULT_RULES, published)}
    assert rules["spo2_low"] == -math.inf and rules["spo2_critical"] == 85
    assert {r.condition: r.limit for r in apply_override(DEFAULT_RULES, published, until_ms + 1)}["spo2_low"] == 88
    engine = DetectorEngine(stale_after_ms=10**12)
    engine.set_limits("p2", published)
    t0 = now_ms() - 120_000
    out = engine.process(columns("p2", "spo2", [86.0] * 60, [t0 + 1000 * i for i in range(60)]))
    assert not [e for e in out.events if e.alert.condition == "spo2_low"]


async def test_revoking_a_token_closes_its_sockets_within_5s(stack):
    tokens = TokenStore(stack.settings.tokens_path)  # as `wardwatch token revoke` would, from elsewhere
    token, principal = tokens.create(Role.nurse, "to-revoke")
    subscribed, _ = await authed(stack.url, token)
    await answer(subscribed, {"type": "subscribe", "wards": ["*"]})
    silent, _ = await authed(stack.url, token)  # never subscribes
    t0 = time.monotonic()
    tokens.revoke(principal.token_id)
    for ws in (subscribed, silent):
        with pytest.raises(websockets.ConnectionClosed) as info:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (4401, "token revoked")
    assert time.monotonic() - t0 < 5


async def test_a_nurse_token_that_has_expired_is_refused_on_every_route(stack):
    """Made an hour ago with a minute's lifetime: every route and the socket say 401, "token expired"."""
    made_an_hour_ago = TokenStore(stack.settings.tokens_path, clock=lambda: time.time() - 3600)
    token, _ = made_an_hour_ago.create(Role.nurse, "expired-nurse", expires_in=60)
    headers = {"Authorization": f"Bearer {token}"}
    checked = []
    for action in (a for a in access.TABLE if not a.is_open):
        if action.surface.startswith("ws "):
            continue  # every message comes after the auth below
        for request in http_requests(action, "w7"):
            r = await send(stack, action, request, headers)
            assert r.status_code == 401 and "token expired at " in r.text, (request[1], r.status_code, r.text)
            checked.append(action.name)
    ws = await websockets.connect(stack.url)
    await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
    with pytest.raises(websockets.ConnectionClosed) as info:
        await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd.code == 4401 and info.value.rcvd.reason.startswith("token expired at ")
    assert {"metrics", "history", "audit", "ingest.json", "ingest.metrics", "detect.metrics"} <= set(checked)


async def test_an_open_nurse_socket_is_closed_when_its_token_expires(stack):
    from alerts.service import REVOKE_CHECK_S

    token, principal = TokenStore(stack.settings.tokens_path).create(Role.nurse, "short-lived", expires_in=4.0)
    subscribed, _ = await authed(stack.url, token)
    await answer(subscribed, {"type": "subscribe", "wards": ["*"]})
    silent, _ = await authed(stack.url, token)  # never subscribes
    now = now_ms()
    history = {"patient": "p1", "start": now - 3600_000, "stop": now}
    async with httpx.AsyncClient(base_url=stack.http, headers={"Authorization": f"Bearer {token}"}) as http:
        assert (await http.get("/api/history", params=history)).status_code == 200  # now in the valid cache
        for ws in (subscribed, silent):
            with pytest.raises(websockets.ConnectionClosed) as info:
                while time.time() < principal.expires + REVOKE_CHECK_S + 2:  # heartbeats come meanwhile
                    await asyncio.wait_for(ws.recv(), 5)
            assert info.value.rcvd.code == 4401 and info.value.rcvd.reason.startswith("token expired at ")
        r = await http.get("/api/history", params=history)  # within 5 s of its lookup: the cache holds it no longer
        assert r.status_code == 401 and r.json()["error"].startswith("token expired at ")


async def ping_rtts(ws, stop: asyncio.Event) -> list[float]:
    rtts = []
    while not stop.is_set():
        t0 = time.perf_counter()
        await answer(ws, {"type": "ping"})
        rtts.append(time.perf_counter() - t0)
        await asyncio.sleep(0.02)
    return rtts


async def test_subscribe_flood_is_limited_and_others_stay_responsive(stack):
    events = [raised("p0", condition="flood", onset=10_000_000 + i) for i in range(REPLAY_MAX + 100)]
    await send_events(stack, events)
    await until(lambda: stack.service.log.alarm(events[-1].alert.id), 20)
    nurse = next(c for c in stack.callers if c.label == "nurse")
    flooder, _ = await authed(stack.url, nurse.token)
    other, _ = await authed(stack.url, nurse.token)
    stop = asyncio.Event()
    watcher = asyncio.create_task(ping_rtts(other, stop))
    for _ in range(300):
        await flooder.send(orjson.dumps({"type": "subscribe", "wards": ["*"], "since": 0}).decode())
    replies = []
    while len(replies) < 300:
        msg = orjson.loads(await asyncio.wait_for(flooder.recv(), 10))
        if msg["type"] not in ("batch", "heartbeat"):
            replies.append(msg)
    stop.set()
    rtts = await watcher
    kinds = [m["type"] if m["type"] != "error" else m["code"] for m in replies]
    assert kinds.count("snapshot") == SUBSCRIBES_PER_10S and kinds.count(429) == 300 - SUBSCRIBES_PER_10S
    assert "replay" not in kinds  # since 0 is further back than REPLAY_MAX events: a snapshot instead
    assert rtts and max(rtts) < 0.5, max(rtts)
    await flooder.close()
    await other.close()


async def test_ack_flood_is_stored_once_and_limited(stack):
    ev = raised("p0", condition="ackflood", onset=20_000_000)
    await send_events(stack, [ev])
    await until(lambda: stack.service.log.alarm(ev.alert.id))
    nurse = next(c for c in stack.callers if c.label == "nurse")
    flooder, _ = await authed(stack.url, nurse.token)
    watcher_ws, _ = await authed(stack.url, nurse.token)
    await answer(watcher_ws, {"type": "subscribe", "wards": ["w7"]})
    stop = asyncio.Event()
    rtts = asyncio.create_task(ping_rtts(watcher_ws, stop))
    for _ in range(2000):
        await flooder.send(orjson.dumps({"type": "ack", "alert_id": ev.alert.id}).decode())
    replies = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while len(replies) < 2000 - 1 and loop.time() < deadline:  # the one stored ack has no reply of its own
        msg = orjson.loads(await asyncio.wait_for(flooder.recv(), 10))
        if msg["type"] in ("unchanged", "error"):
            replies.append(msg)
    stop.set()
    times = await rtts
    assert sum(m["type"] == "unchanged" for m in replies) == ACTIONS_PER_10S - 1
    assert sum(m.get("code") == 429 for m in replies) == 2000 - ACTIONS_PER_10S
    with stack.service.log._lock:
        stored = stack.service.log._db.execute("SELECT COUNT(*) FROM events WHERE alert_id=? AND type=?",
                                               (ev.alert.id, AlertEventType.acknowledged.value)).fetchone()[0]
    assert stored == 1
    assert max(times) < 0.5, max(times)
    await flooder.close()
    await watcher_ws.close()


async def test_unknown_methods_get_405_out_of_range_history_400_and_pages_a_csp(stack):
    admin = next(c for c in stack.callers if c.label == "admin")
    auth = {"Authorization": f"Bearer {admin.token}"}
    async with httpx.AsyncClient(base_url=stack.http) as http:
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"):
            for path in ("/", "/api/history", "/metrics", "/healthz"):
                r = await http.request(method, path, headers=auth)
                assert (r.status_code, r.headers.get("allow")) == (405, "GET"), (method, path)
        now = now_ms()
        ok = {"patient": "p1", "start": now - 3600_000, "stop": now}
        assert (await http.get("/api/history", params=ok, headers=auth)).status_code == 200
        for wrong in ({"start": -5}, {"stop": 10**20}, {"start": "abc"}, {"every": 0}, {"every": 10**15},
                      {"start": now - 400 * 86_400_000}, {"patient": "p1; drop"}, {"patient": ""},
                      {"start": now, "stop": now - 1}, {"stop": "1e999"}):
            r = await http.get("/api/history", params=ok | wrong, headers=auth)
            assert r.status_code == 400, (wrong, r.status_code)
        for path in ("/", "/nurse", "/history", "/static/nurse.js", "/api/history"):
            r = await http.get(path, headers=auth)
            assert r.headers["content-security-policy"] == "default-src 'self'; frame-ancestors 'none'", path
            assert r.headers["x-frame-options"] == "DENY", path


async def next_reply(ws) -> dict:
    """The next message that answers something (not a feed frame nor a monitoring notice)."""
    while True:
        reply = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        if reply["type"] not in ("batch", "heartbeat", "monitoring"):
            return reply


async def test_pausing_an_alarm_already_resolved_changes_nothing_and_records_nothing(stack):
    ev = raised("p0", condition="pause_after_resolve", onset=30_000_000)
    await send_events(stack, [ev])
    await until(lambda: stack.service.log.alarm(ev.alert.id))
    nurse = next(c for c in stack.callers if c.label == "nurse w7")
    ws, _ = await authed(stack.url, nurse.token)
    assert (await answer(ws, {"type": "resolve", "alert_id": ev.alert.id}))["type"] == "pong"
    assert stack.service.log.alarm(ev.alert.id)[0].state.value == "resolved"
    for _ in range(3):
        reply = await answer(ws, {"type": "pause", "alert_id": ev.alert.id})
        assert reply == {"type": "unchanged", "alert_id": ev.alert.id, "state": "resolved"}
    await ws.close()
    with stack.service.log._lock:
        paused = stack.service.log._db.execute("SELECT COUNT(*) FROM events WHERE alert_id=? AND type=?",
                                               (ev.alert.id, AlertEventType.audio_paused.value)).fetchone()[0]
    assert paused == 0
    assert [r["action"] for r in stack.service.log.audit_rows() if r["target"] == ev.alert.id] == ["resolved"]


async def test_malformed_and_unknown_socket_messages_get_a_400_and_the_socket_stays_open(stack):
    nurse = next(c for c in stack.callers if c.label == "nurse w7")
    ws, _ = await authed(stack.url, nurse.token)
    for raw in ("not json", '{"type": "ack", ', "[1, 2]", '"ack"', "42", "null", b"\x00\xff\x80",
                '{"no": "type"}', '{"type": "teleport"}', '{"type": ["ack"]}', '{"type": "auth", "token": "x"}',
                '{"type": "subscribe", "wards": 5}', '{"type": "subscribe", "patients": 7}'):
        await ws.send(raw)
        reply = await next_reply(ws)
        assert reply["type"] == "error" and reply["code"] == 400 and reply["message"], (raw, reply)
    assert (await answer(ws, {"type": "ping"}))["type"] == "pong"
    await ws.close()


async def test_a_revoked_token_whose_client_ignores_the_close_can_act_no_more(stack):
    """A client that is not a browser need not answer the server's close: its socket then stays half
    open for the close timeout, and whatever it sends meanwhile must not be acted on."""
    from websockets.client import ClientProtocol
    from websockets.uri import parse_uri

    ev = raised("p0", condition="revoked_acts", onset=40_000_000)
    await send_events(stack, [ev])
    await until(lambda: stack.service.log.alarm(ev.alert.id))
    tokens = TokenStore(stack.settings.tokens_path)
    token, principal = tokens.create(Role.nurse, "revoked-while-open")
    proto = ClientProtocol(parse_uri(stack.url))
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.settings.alerts_port)

    async def flush() -> None:
        for data in proto.data_to_send():
            writer.write(data)
        await writer.drain()

    proto.send_request(proto.connect())
    await flush()
    while not proto.events_received() and proto.handshake_exc is None:  # the handshake's response
        proto.receive_data(await asyncio.wait_for(reader.read(65536), 5))
    proto.send_text(orjson.dumps({"type": "auth", "token": token}))
    await flush()
    assert b"hello" in await asyncio.wait_for(reader.read(65536), 5)
    tokens.revoke(principal.token_id)
    await asyncio.sleep(2.5)  # the service has found it revoked and sent its close, which this client ignores
    proto.send_text(orjson.dumps({"type": "resolve", "alert_id": ev.alert.id}))
    await flush()
    await asyncio.sleep(1.0)
    writer.close()
    assert stack.service.log.alarm(ev.alert.id)[0].state.value == "active"
    assert not [r for r in stack.service.log.audit_rows() if r["who"] == "revoked-while-open"]
