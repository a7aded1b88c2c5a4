"""The settings that locate the control plane: `home` (never relative), `risk.operators`, and what `keel kill` can
still read of them when the configuration as a whole cannot be loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.backtest.run import run_id_for
from keel.data.synthetic import generate_regime_ohlcv
from keel.domain.errors import ConfigError
from keel.settings import Mode, Profile, check_settings, default_home, load_settings, salvage_control_config
from keel.strategies import build_strategy


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_default_home_follows_xdg_state_home_and_ignores_a_relative_one(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_home() == tmp_path / "xdg" / "keel"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    assert default_home() == tmp_path / "me" / ".local" / "state" / "keel"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert load_settings().home == tmp_path / "me" / ".local" / "state" / "keel"


def test_home_from_the_environment_or_the_file_and_tilde_expanded(in_tmp, monkeypatch):
    monkeypatch.setenv("HOME", str(in_tmp / "me"))
    (in_tmp / "keel.toml").write_text('home = "~/keel-state"\n')
    assert load_settings().home == in_tmp / "me" / "keel-state"
    monkeypatch.setenv("KEEL_HOME", str(in_tmp / "elsewhere"))
    assert load_settings().home == in_tmp / "elsewhere"


@pytest.mark.parametrize("home", ["var/state", ".", ""])
def test_a_relative_home_is_refused_naming_why(in_tmp, monkeypatch, home):
    monkeypatch.setenv("KEEL_HOME", home)
    problems = check_settings()
    assert len(problems) == 1 and problems[0].startswith("home: ")
    assert "absolute" in problems[0] or "empty" in problems[0]


def test_risk_operators_are_actor_ids(in_tmp):
    (in_tmp / "keel.toml").write_text('[risk]\noperators = ["alice", " bob "]\n')
    assert load_settings().risk.operators == ["alice", "bob"]
    (in_tmp / "keel.toml").write_text('[risk]\noperators = ["alice", " "]\n')
    with pytest.raises(ConfigError, match=r"risk\.operators"):
        load_settings()


def test_the_run_id_does_not_depend_on_home_or_who_may_lift_a_halt(tmp_path):
    frames = generate_regime_ohlcv(1, 300, seed=1)
    strategy = build_strategy("sma_cross", {})
    ids = {
        run_id_for(load_settings(**kw), strategy, frames, Mode.REPLAY, Profile.RESEARCH)
        for kw in ({}, {"home": tmp_path / "x"}, {"risk": {"operators": ["alice"]}})
    }
    assert len(ids) == 1


# -- salvaging the control plane's location from a configuration that cannot be loaded -------------------------------


def test_an_invalid_value_elsewhere_keeps_the_files_home_and_journal_url(in_tmp):
    (in_tmp / "keel.toml").write_text(
        f'home = "{in_tmp / "h"}"\n[journal]\nurl = "postgresql+psycopg://db/keel"\n[risk]\nmax_exposure = "lots"\n'
    )
    cfg = salvage_control_config()
    assert cfg.home == in_tmp / "h" and cfg.journal_url.get_secret_value() == "postgresql+psycopg://db/keel"
    assert cfg.sources == {"home": "keel.toml", "journal.url": "keel.toml", "var_dir": "default"}
    assert cfg.complete  # everything that locates the store was read


def test_a_file_that_is_not_toml_leaves_the_environment_and_the_defaults_and_says_it_is_incomplete(in_tmp, monkeypatch):
    (in_tmp / "keel.toml").write_text(f'home = "{in_tmp / "h"}"\n[risk\n')
    cfg = salvage_control_config()
    assert cfg.home == default_home() and cfg.sources["home"] == "default" and not cfg.complete
    monkeypatch.setenv("KEEL_HOME", str(in_tmp / "env-home"))
    cfg = salvage_control_config()
    assert cfg.home == in_tmp / "env-home" and cfg.sources["home"] == "env KEEL_HOME" and not cfg.complete


def test_an_invalid_control_key_falls_back_to_its_default_and_says_it_is_incomplete(in_tmp, monkeypatch):
    (in_tmp / "keel.toml").write_text('home = "relative"\n')
    cfg = salvage_control_config()
    assert cfg.home == default_home() and not cfg.complete
    monkeypatch.setenv("KEEL_HOME", "also-relative")
    assert salvage_control_config().sources["home"] == "default"


def test_a_missing_config_file_is_salvaged_from_the_environment(in_tmp, monkeypatch):
    monkeypatch.setenv("KEEL_HOME", str(in_tmp / "env-home"))
    cfg = salvage_control_config(in_tmp / "nope.toml")
    assert cfg.home == in_tmp / "env-home" and not cfg.complete


def test_an_unknown_key_still_lets_the_file_locate_the_store(in_tmp):
    (in_tmp / "keel.toml").write_text(f'home = "{in_tmp / "h"}"\ntypo = 1\n')
    cfg = salvage_control_config(Path("keel.toml"))
    assert cfg.home == in_tmp / "h" and cfg.complete
