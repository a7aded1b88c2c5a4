"""Tokens: a recognisable high-entropy secret shown once, only its hash stored, names unique among live tokens."""

from __future__ import annotations

import re

import pytest

from helpers.control_contract import at
from keel.api import tokens
from keel.api.roles import ApiRole
from keel.domain.errors import InputError


def test_a_token_is_a_prefixed_random_secret_and_the_store_keeps_only_its_hash(store, settings):
    issued = tokens.create(store, name="alice", role="operator", actor="root", ts=at(1))
    other = tokens.create(store, name="bob", role=ApiRole.VIEWER, actor="root", ts=at(2))
    assert re.fullmatch(r"keel_[A-Za-z0-9_-]{43}", issued.secret) and issued.secret != other.secret
    assert issued.secret not in repr(issued) and "secret" not in issued.token.as_dict()
    assert (issued.token.name, issued.token.role, issued.token.created_by, issued.token.created_ts) == (
        "alice",
        "operator",
        "root",
        at(1),
    )
    raw = b"".join(p.read_bytes() for p in settings.home.glob("control.db*"))
    assert issued.secret.encode() not in raw and tokens.digest(issued.secret).encode() in raw


def test_a_name_is_unique_among_live_tokens_and_free_again_once_revoked(store):
    first = tokens.create(store, name="alice", role="operator", actor="root", ts=at(1))
    with pytest.raises(InputError, match="a live API token is already named 'alice' \\(id 1\\); nothing was created"):
        tokens.create(store, name="alice", role="admin", actor="root", ts=at(2))
    assert [t.name for t in store.api_tokens()] == ["alice"]
    revoked, changed = tokens.revoke(store, "alice", actor="root", ts=at(3))
    assert changed and revoked.revoked_ts == at(3) and revoked.revoked_by == "root"
    again = tokens.create(store, name="alice", role="viewer", actor="root", ts=at(4))
    assert again.token.token_id != first.token.token_id
    assert tokens.find(store, "alice") == again.token  # a name names the live token
    assert tokens.find(store, "1") == revoked  # an id names any


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "cannot name an API token"),
        ("42", "cannot name an API token"),  # would read as an id
        ("keel:approval", "cannot name an API token"),
        ("two words", "cannot name an API token"),
        ("a" * 65, "cannot name an API token"),
        ("approval", "Keel's own stages act under"),
        ("auto-policy", "Keel's own stages act under"),
        ("robo", "Keel's own stages act under"),  # the configured auto_approver
    ],
)
def test_a_name_a_person_could_not_hold_is_refused(store, name, why):
    with pytest.raises(InputError, match=why):
        tokens.create(store, name=name, role="operator", actor="root", ts=at(1), stages=["robo"])
    assert store.api_tokens() == []


def test_revoking_is_by_name_or_id_once_and_an_unknown_one_is_named(store):
    tokens.create(store, name="alice", role="operator", actor="root", ts=at(1))
    assert tokens.revoke(store, "1", actor="root", ts=at(2))[1] is True
    token, changed = tokens.revoke(store, "1", actor="other", ts=at(3))
    assert not changed and (token.revoked_ts, token.revoked_by) == (at(2), "root")
    with pytest.raises(InputError, match=r"no live API token is named 'alice' \(revoked: id 1\)"):
        tokens.revoke(store, "alice", actor="root", ts=at(4))
    with pytest.raises(InputError, match="no API token named 'zed'"):
        tokens.find(store, "zed")
    with pytest.raises(InputError, match="no API token with id 9"):
        tokens.find(store, "9")


def test_authenticating_finds_live_and_revoked_tokens_and_notes_use_at_most_once_a_minute(store):
    issued = tokens.create(store, name="alice", role="operator", actor="root", ts=at(0))
    assert tokens.authenticate(store, "keel_" + "x" * 43, ts=at(1)) is None
    assert tokens.authenticate(store, "not-even-a-keel-token", ts=at(1)) is None
    assert tokens.authenticate(store, issued.secret, ts=at(10)).token_id == issued.token.token_id
    assert store.api_token(1).last_used_ts == at(10)
    tokens.authenticate(store, issued.secret, ts=at(40))
    assert store.api_token(1).last_used_ts == at(10)
    tokens.authenticate(store, issued.secret, ts=at(70))
    assert store.api_token(1).last_used_ts == at(70)
    tokens.revoke(store, "alice", actor="root", ts=at(80))
    seen = tokens.authenticate(store, issued.secret, ts=at(200))
    assert seen is not None and not seen.live and seen.last_used_ts == at(70)
