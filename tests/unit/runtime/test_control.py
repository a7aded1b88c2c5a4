"""Where the control plane is: `<home>/control.db`, or the PostgreSQL `journal.url`; never under the working
directory. `home` is created private to its user, and only when something is written."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime

import pytest

from keel.domain.decisions import TradingState
from keel.journal.store import IntentStore
from keel.runtime.control import control_location, legacy_path, open_control, open_guard
from keel.settings import load_settings

PG = "postgresql+psycopg://keel:hunter2@db.internal/keel"


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    return project


def test_the_store_is_in_home_whatever_the_working_directory(tmp_path, monkeypatch):
    home = tmp_path / "state" / "keel"
    monkeypatch.setenv("KEEL_HOME", str(home))
    seen = set()
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        seen.add(control_location(load_settings()).url)
    assert seen == {f"sqlite:///{home / 'control.db'}"}


def test_the_default_home_is_the_users_state_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert control_location(load_settings()).file == tmp_path / "xdg" / "keel" / "control.db"


def test_postgresql_journal_url_is_the_store_and_shown_without_its_password(cwd):
    loc = control_location(load_settings(journal={"url": PG}))
    assert loc.url == PG and loc.shared and loc.file is None
    assert loc.where == "postgresql+psycopg://keel:***@db.internal/keel"
    assert "hunter2" not in repr(loc)
    assert legacy_path(load_settings(journal={"url": PG})) is None  # it has not moved


def test_a_sqlite_journal_url_does_not_move_the_store_but_was_the_old_place(cwd, tmp_path):
    settings = load_settings(journal={"url": "sqlite:///shared/journal.db"}, home=tmp_path / "h")
    assert control_location(settings).file == tmp_path / "h" / "control.db"
    assert legacy_path(settings) == cwd / "shared" / "journal.db"


def test_the_old_place_is_var_keel_db_under_the_working_directory(cwd):
    assert legacy_path(load_settings()) == cwd / "var" / "keel.db"


def test_home_is_created_private_to_its_user_when_first_written(tmp_path):
    home = tmp_path / "deep" / "keel"
    settings = load_settings(home=home)
    plane = open_control(settings, read_only=True)
    assert plane.store is None and not home.exists()  # reading creates nothing
    old = os.umask(0o022)
    try:
        open_control(settings).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert (home / "control.db").is_file()


def test_an_existing_home_keeps_its_permissions(tmp_path):
    home = tmp_path / "keel"
    home.mkdir(mode=0o750)
    os.chmod(home, 0o750)
    open_control(load_settings(home=home)).close()
    assert stat.S_IMODE(home.stat().st_mode) == 0o750


def test_a_sessions_guard_carries_over_a_halt_of_the_old_place(cwd, tmp_path):
    old = IntentStore.open(f"sqlite:///{cwd / 'var' / 'keel.db'}", write_through=True)
    old.set_trading_state(TradingState.HALTED, reason="drill", actor="carol", ts=datetime(2024, 1, 1, tzinfo=UTC))
    old.close()
    store, guard = open_guard(load_settings(home=tmp_path / "h"))
    try:
        assert guard.current()[0] is TradingState.HALTED
    finally:
        store.close()
