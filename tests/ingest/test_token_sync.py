"""Ingest takes the tokens of every machine: one made or revoked with `wardwatch token` elsewhere
(its own token file, then the tokens topic) works, or stops working, here within 5 s."""

from __future__ import annotations

import asyncio
import time

from wardwatch.auth import TokenStore
from wardwatch.token_sync import publish_tokens


async def _status_within(client, token: str, want: int, seconds: float = 5.0) -> tuple[int, float]:
    t0 = time.monotonic()
    while True:
        status = (await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})).status_code
        if status == want or time.monotonic() - t0 > seconds:
            return status, time.monotonic() - t0
        await asyncio.sleep(0.1)


async def test_a_token_made_and_revoked_on_another_machine_is_taken_then_refused_within_5s(gateway, tmp_path):
    elsewhere = TokenStore(tmp_path / "other-machine" / "tokens.sqlite3")  # not the ingest's own file
    token, principal = elsewhere.create("admin", "operator-2")
    assert (await gateway.client.get("/metrics", headers={"Authorization": f"Bearer {token}"})).status_code == 401

    await publish_tokens(gateway.bus, [elsewhere.row(principal.token_id)])
    status, took = await _status_within(gateway.client, token, 200)
    assert status == 200 and took < 5.0, "ingest learns of the token from the topic"

    assert elsewhere.revoke(principal.token_id)
    await publish_tokens(gateway.bus, [elsewhere.row(principal.token_id)])
    status, took = await _status_within(gateway.client, token, 401)
    assert status == 401 and took < 5.0, "the revocation reaches ingest within 5 s"


async def test_a_token_made_elsewhere_carries_its_expiry_and_is_refused_here_once_it_expired(gateway, tmp_path):
    made_an_hour_ago = TokenStore(tmp_path / "other-machine" / "tokens.sqlite3", clock=lambda: time.time() - 3600)
    token, principal = made_an_hour_ago.create("admin", "operator-3", expires_in=60)
    await publish_tokens(gateway.bus, [made_an_hour_ago.row(principal.token_id)])
    t0 = time.monotonic()
    while True:  # unknown ("missing, invalid or revoked") until the row arrives, then expired: never 200
        r = await gateway.client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
        if r.json()["error"].startswith("token expired at ") or time.monotonic() - t0 > 5:
            break
        await asyncio.sleep(0.1)
    assert r.json()["error"].startswith("token expired at "), "the expiry travels with the row"
