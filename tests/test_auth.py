import json
import sqlite3
import time

import pytest

from wardwatch.auth import Expired, Forbidden, Role, TokenStore, Unauthorized, _digest, bearer


def test_tokens_are_stored_hashed_and_checked_by_role(tmp_path):
    store = TokenStore(tmp_path / "tokens.sqlite3")
    token, principal = store.create(Role.nurse, "ward-7 nurse", ("ward-7",))
    assert token not in (tmp_path / "tokens.sqlite3").read_bytes().decode(errors="ignore")
    assert store.check(token, {Role.nurse, Role.clinician}).wards == ("ward-7",)
    with pytest.raises(Forbidden):
        store.check(token, {Role.gateway})
    with pytest.raises(Unauthorized):
        store.check("ww_nurse_forged", {Role.nurse})
    with pytest.raises(Unauthorized):
        store.check(None, {Role.nurse})


def test_admin_passes_every_check_and_revocation_takes_effect(tmp_path):
    store = TokenStore(tmp_path / "t.sqlite3")
    token, principal = store.create("admin")
    assert store.check(token, {Role.gateway}).role is Role.admin
    assert store.revoke(principal.token_id)
    with pytest.raises(Unauthorized):
        store.check(token, {Role.gateway})


def test_bearer_header_parsing():
    assert bearer("Bearer abc") == "abc"
    assert bearer("bearer  abc ") == "abc"
    assert bearer("Basic abc") is None
    assert bearer(None) is None


def test_a_token_from_another_machine_works_here_and_its_revocation_is_never_undone(tmp_path):
    there, here = TokenStore(tmp_path / "a.sqlite3"), TokenStore(tmp_path / "b.sqlite3")
    token, principal = there.create(Role.nurse, "nurse-7", ("w7",))
    with pytest.raises(Unauthorized):
        here.check(token, {Role.nurse})  # unknown here, and remembered as unknown for a while
    created = there.row(principal.token_id)
    here.merge(created)
    assert here.check(token, {Role.nurse}).wards == ("w7",)
    assert there.revoke(principal.token_id)
    here.merge(there.row(principal.token_id))
    with pytest.raises(Unauthorized):
        here.check(token, {Role.nurse})
    here.merge(created)  # the older row, read again (a compacted topic replayed): still revoked
    with pytest.raises(Unauthorized):
        here.check(token, {Role.nurse})
    assert here.active({principal.token_id}) == set()


@pytest.mark.parametrize("wards", [("",), (",",), ("w7", ""), ("w7,w8",), (" w7",), ("w7\n",)])
def test_a_token_for_a_blank_or_malformed_ward_is_refused_never_widened_to_every_ward(tmp_path, wards):
    """A blank ward (an empty shell variable, say) was stored as no ward at all: a token for every ward."""
    store = TokenStore(tmp_path / "t.sqlite3")
    with pytest.raises(ValueError):
        store.create(Role.nurse, "nurse", wards)
    assert store.list() == []


def test_no_token_and_no_patient_can_have_the_ward_that_holds_the_patients_without_one(tmp_path):
    """The alert service files a patient the registry does not know (or discharged) under "unassigned":
    a token for a ward of that name would read every such patient, of every ward."""
    from pydantic import ValidationError

    from wardwatch.models import UNASSIGNED, PatientRecord

    store = TokenStore(tmp_path / "t.sqlite3")
    with pytest.raises(ValueError, match="holds the patients without one"):
        store.create(Role.nurse, "nurse", ("w7", UNASSIGNED))
    assert store.list() == []
    with pytest.raises(ValidationError):
        PatientRecord(patient="p1", ward=UNASSIGNED)


class Clock:
    """Wall-clock time a test moves on by hand: a token's whole lifetime passes without sleeping."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_a_nurse_token_is_refused_as_expired_once_its_lifetime_is_over_even_while_cached(tmp_path):
    clock = Clock()
    store = TokenStore(tmp_path / "t.sqlite3", clock=clock)
    token, principal = store.create(Role.nurse, "night nurse", ("w7",), expires_in=12 * 3600)
    assert store.check(token, {Role.nurse}).expires == principal.expires == clock.now + 12 * 3600  # cached valid
    assert store.active({principal.token_id}) == {principal.token_id}
    clock.now += 12 * 3600
    with pytest.raises(Expired, match=r"^token expired at 20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ$") as info:
        store.check(token, {Role.nurse})  # within the 5 s the valid cache holds it: refused all the same
    assert info.value.status == 401 and isinstance(info.value, Unauthorized)
    assert store.active({principal.token_id}) == set()  # what closes its open sockets
    assert [(r["expires"], r["expired"]) for r in store.list()] == [(principal.expires, True)]
    with pytest.raises(ValueError):
        store.create(Role.nurse, expires_in=0)


def test_a_token_row_from_before_expiry_existed_stays_valid(tmp_path):
    # A token file written before expiry existed: its table has no expires column.
    old = tmp_path / "old.sqlite3"
    db = sqlite3.connect(old)
    db.execute("CREATE TABLE tokens (id TEXT PRIMARY KEY, digest TEXT UNIQUE NOT NULL, role TEXT NOT NULL,"
               " name TEXT NOT NULL, wards TEXT NOT NULL DEFAULT '', created REAL NOT NULL, revoked REAL)")
    db.execute("INSERT INTO tokens VALUES ('0ld0', ?, 'nurse', 'old nurse', '', 1.0, NULL)", (_digest("ww_old"),))
    db.commit()
    db.close()
    clock = Clock()
    clock.now += 10 * 365 * 86400  # ten years on
    store = TokenStore(old, clock=clock)
    assert store.check("ww_old", {Role.nurse}).expires is None
    # A row of the tokens topic from an instance that predates expiry: no "expires" key at all.
    there = TokenStore(tmp_path / "there.sqlite3")
    token, principal = there.create(Role.clinician, "old clinician")
    row = there.row(principal.token_id)
    del row["expires"]
    store.merge(row)
    assert store.check(token, {Role.clinician}).name == "old clinician"
    assert [r["expired"] for r in store.list()] == [False, False]
    # And the other way round: a copy of an expiring row without its expiry never lifts it.
    expiring, p2 = there.create(Role.nurse, "expiring", expires_in=60)
    store.merge(there.row(p2.token_id))
    store.merge({k: v for k, v in there.row(p2.token_id).items() if k != "expires"})
    with pytest.raises(Expired):
        store.check(expiring, {Role.nurse})


def test_token_create_takes_a_lifetime_by_role_and_list_shows_it(tmp_path, monkeypatch, capsys):
    from app.cli import main

    monkeypatch.setenv("WARDWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("WARDWATCH_BACKEND", "embedded")  # nothing to share on a topic
    t0 = time.time()
    for args in (["--role", "nurse", "--expires-in", "90m"], ["--role", "nurse"], ["--role", "gateway"],
                 ["--role", "clinician", "--expires-in", "never"], ["--role", "admin", "--expires-in", "12h"]):
        assert main(["token", "create", *args]) == 0
    capsys.readouterr()
    assert main(["token", "list"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    lifetimes = [None if r["expires"] is None else round((r["expires"] - t0) / 60) for r in rows]
    assert lifetimes == [90, 7 * 24 * 60, None, None, 12 * 60]  # a nurse's default: a week; a gateway's: none
    assert not any(r["expired"] for r in rows)
    with pytest.raises(SystemExit):
        main(["token", "create", "--role", "nurse", "--expires-in", "tomorrow"])
    assert "not a duration" in capsys.readouterr().err
