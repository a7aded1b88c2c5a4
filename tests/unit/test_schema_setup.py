"""Switching a new connection to WAL while another process switches the same fresh file: SQLite answers that race
with "database is locked" at once (its busy handler is not called), so `enable_wal` asks again, within the busy
timeout; any other error, or one that outlasts the timeout, is raised. The real race runs in
tests/integration/control/test_schema_race.py."""

from __future__ import annotations

import sqlite3

import pytest

from keel.schema_setup import enable_wal


class Cursor:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.asked = 0

    def execute(self, sql: str) -> None:
        assert sql == "PRAGMA journal_mode=WAL"
        self.asked += 1
        if self.failures:
            raise self.failures.pop(0)


def test_a_locked_file_is_asked_again_until_it_switches():
    cursor = Cursor([sqlite3.OperationalError("database is locked")] * 3)
    enable_wal(cursor, 1_000, sleep=lambda s: None)
    assert cursor.asked == 4


def test_another_error_is_raised_at_once():
    cursor = Cursor([sqlite3.OperationalError("disk I/O error")])
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        enable_wal(cursor, 1_000, sleep=lambda s: None)
    assert cursor.asked == 1


def test_a_lock_that_outlasts_the_busy_timeout_is_raised():
    cursor = Cursor([sqlite3.OperationalError("database is locked")] * 1_000)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        enable_wal(cursor, 0, sleep=lambda s: None)
