import pytest

from wardwatch.auth import Forbidden, Role, TokenStore, Unauthorized, bearer


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
