"""The session registry in the control store on SQLite: the shared contract (`helpers.approval_contract`, also run
on PostgreSQL), and its JSON form."""

from __future__ import annotations

import json

import pytest

from helpers.approval_contract import SessionRegistryContract, session
from helpers.control_contract import at
from keel.control.records import SessionStatus
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


class TestSessionRegistryContractOnSqlite(SessionRegistryContract):
    """Every session-registry contract test, on a SQLite file of its own."""


def test_a_session_record_is_plain_json_with_times_in_iso_8601():
    rec = session(status=SessionStatus.STOPPING, stop_requested_by="alice", stop_requested_ts=at(5), bars=3)
    data = json.loads(json.dumps(rec.as_dict()))
    assert data["status"] == "stopping" and data["started_ts"] == "2024-01-01T00:00:00+00:00"
    assert (data["stop_requested_ts"], data["ended_ts"], data["bars"], data["detail"]) == (
        "2024-01-01T00:00:05+00:00",
        None,
        3,
        {},
    )
    assert set(data) == {f for f in rec.__dataclass_fields__}
