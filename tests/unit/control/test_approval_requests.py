"""Approval requests in the control store on SQLite: the shared contract (`helpers.approval_contract`, also run on
PostgreSQL), the schema migration, and what only SQLite has (the change probe)."""

from __future__ import annotations

import json

import pytest

from helpers.approval_contract import ApprovalRequestContract, SchemaMigrationContract, decide, iid, request
from helpers.control_contract import at
from keel.control.records import ApprovalStatus
from keel.control.store import ControlStore


@pytest.fixture
def open_store(tmp_path):
    opened: list[ControlStore] = []

    def _open() -> ControlStore:
        store = ControlStore.open(f"sqlite:///{tmp_path / 'home' / 'control.db'}")
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


class TestApprovalRequestContractOnSqlite(ApprovalRequestContract):
    """Every approval-request contract test, on a SQLite file of its own."""


class TestSchemaMigrationOnSqlite(SchemaMigrationContract):
    """A store of schema 1 or 2 (only lacking tables) opens as schema 3."""


def test_every_write_to_a_request_moves_another_connections_change_probe(open_store):
    session, operator = open_store(), open_store()
    probe = session.change_probe()
    assert probe is not None
    seen = [probe()]
    writes = [
        lambda: operator.publish_request(request()),
        lambda: decide(operator),
        lambda: operator.settle_request(iid(1), status=ApprovalStatus.EXECUTED, reason=None, ts=at(20)),
    ]
    for write in writes:
        write()
        seen.append(probe())
    assert len(set(seen)) == len(seen)  # a session polling for decisions re-reads only when one was written
    session.approval_requests()
    assert probe() == seen[-1]


def test_a_request_is_plain_json_with_every_field_and_times_in_iso_8601():
    req = request(decided_by="alice", decided_ts=at(5), status=ApprovalStatus.APPROVED)
    data = json.loads(json.dumps(req.as_dict()))
    assert set(data) == set(req.__dataclass_fields__)
    assert (data["status"], data["decided_ts"], data["updated_ts"], data["preview"]) == (
        "approved",
        "2024-01-01T00:00:05+00:00",
        None,
        dict(req.preview),
    )
