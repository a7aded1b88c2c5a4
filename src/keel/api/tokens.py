"""API tokens: issued once, kept only as a hash, checked on every call.

A token is `keel_` followed by 43 URL-safe characters (256 random bits): recognisable in a leak scan, and too long to
guess, so a plain SHA-256 of it is enough to store (a slow password hash protects low-entropy secrets; this one is
not). The secret is returned once, at creation, and appears nowhere else: not in the store, not in a record, not in a
log or an error. A token's name is the actor it acts as — in the incident records, on a decision, in the API's call
records — so it must be a name a person could hold: never one Keel's own stages act under.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from keel.api.roles import ApiRole, parse_role
from keel.approval.service import STAGE_ACTORS
from keel.control.records import ApiToken
from keel.domain.errors import InputError

if TYPE_CHECKING:
    from keel.control.store import ControlStore

PREFIX = "keel_"
_SECRET_BYTES = 32
#: A name: a letter, then letters, digits or `._@-`, at most 64 characters (so never an id, never `keel:…`).
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._@-]{0,63}")
#: `last_used` is written at most this often per token, so reads do not each cost a write.
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Issued:
    """A token just created: its record, and its secret, which is never available again."""

    token: ApiToken
    secret: str

    def __repr__(self) -> str:  # never the secret
        return f"Issued({self.token.token_id}, {self.token.name!r}, {self.token.role!r})"


def digest(secret: str) -> str:
    """What the store keeps of a secret: its SHA-256, hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def check_name(name: str, *, stages: Iterable[str] = STAGE_ACTORS) -> str:
    """`name`, stripped, if a token may carry it; an `InputError` saying why not otherwise."""
    text = (name or "").strip()
    if not _NAME.fullmatch(text):
        raise InputError(
            f"'{text}' cannot name an API token: a name starts with a letter and has at most 64 letters, digits or "
            "._@- (it is the actor the token acts as)",
            hint="name it after the person or system that holds it, e.g. --name alice",
        )
    if text in set(stages):
        raise InputError(
            f"'{text}' is a name Keel's own stages act under: a token acts as a person and cannot carry it",
            hint="name it after the person or system that holds it",
        )
    return text


def create(
    store: ControlStore, *, name: str, role: ApiRole | str, actor: str, ts: datetime, stages: Iterable[str] = ()
) -> Issued:
    """Issue a token: its record (the hash of its secret stored) and the secret, shown once. `stages` adds the names
    the configuration's stages act under (`approval.auto_approver`) to Keel's own."""
    who = check_name(name, stages=STAGE_ACTORS | set(stages))
    kind = parse_role(role) if isinstance(role, str) else role
    secret = PREFIX + secrets.token_urlsafe(_SECRET_BYTES)
    token = store.add_token(name=who, role=kind.value, secret_sha256=digest(secret), actor=actor, ts=ts)
    return Issued(token, secret)


def find(store: ControlStore, ref: str) -> ApiToken:
    """The token `ref` names: an id, or the name of a live token. An `InputError` when none does."""
    text = (ref or "").strip()
    if text.isdigit():
        found = store.api_token(int(text))
        if found is None:
            raise InputError(f"no API token with id {text}", hint="`keel token list` shows them")
        return found
    every = store.api_tokens()
    live = [t for t in every if t.name == text and t.live]
    if live:
        return live[0]
    revoked = [str(t.token_id) for t in every if t.name == text]
    if revoked:
        raise InputError(
            f"no live API token is named '{text}' (revoked: id {', '.join(revoked)})",
            hint="`keel token list` shows them",
        )
    raise InputError(f"no API token named '{text}'", hint="`keel token list` shows them")


def revoke(store: ControlStore, ref: str, *, actor: str, ts: datetime) -> tuple[ApiToken, bool]:
    """Revoke the token `ref` names (`find`): it is refused from the next call on. The token as it stands, and
    whether this call revoked it (False: it already was)."""
    return store.revoke_token(find(store, ref).token_id, actor=actor, ts=ts)


def authenticate(store: ControlStore, secret: str, *, ts: datetime) -> ApiToken | None:
    """The token whose secret this is, live or revoked (the caller refuses a revoked one), or None. A live token's
    `last_used` moves to `ts` (at most every `TOUCH_EVERY`)."""
    if not secret.startswith(PREFIX):
        return None
    token = store.api_token_by_secret(digest(secret))
    if token is None or not token.live:
        return token
    if token.last_used_ts is None or ts - token.last_used_ts >= TOUCH_EVERY:
        store.touch_token(token.token_id, ts=ts)
    return token
