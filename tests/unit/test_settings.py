"""Settings: precedence, unknown keys, wrong types, every problem at once, secrets masked."""

from __future__ import annotations

import pytest

from keel.domain.errors import ConfigError
from keel.settings import (
    StrategySettings,
    check_settings,
    describe_settings,
    describe_url,
    load_settings,
    setting_sources,
    value_problem,
)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults_load_without_any_file(in_tmp):
    s = load_settings()
    assert s.mode.value == "replay" and s.risk.max_order_notional == 10_000


def test_precedence_explicit_over_env_over_file_over_default(in_tmp, monkeypatch):
    (in_tmp / "keel.toml").write_text("[risk]\nmax_order_notional = 111\nmax_exposure = 9999\n[broker]\ncash = 5000\n")
    monkeypatch.setenv("KEEL_RISK__MAX_ORDER_NOTIONAL", "222")
    s = load_settings()
    assert s.risk.max_order_notional == 222  # env beats file
    assert s.risk.max_exposure == 9999  # file beats default
    assert s.broker.cash == 5000
    s = load_settings(risk={"max_order_notional": 333, "max_exposure": 9999})
    assert s.risk.max_order_notional == 333  # explicit beats env


def test_show_names_the_source_of_each_key(in_tmp, monkeypatch):
    (in_tmp / "keel.toml").write_text("[broker]\ncash = 5000\n")
    monkeypatch.setenv("KEEL_BROKER__FEES_BPS", "3")
    rows = {k: (v, src) for k, v, src in describe_settings()}
    assert rows["broker.cash"] == (5000.0, "keel.toml")
    assert rows["broker.fees_bps"] == (3.0, "env KEEL_BROKER__FEES_BPS")
    assert rows["broker.slippage_bps"][1] == "default"


def test_secrets_are_masked(in_tmp, monkeypatch):
    monkeypatch.setenv("KEEL_JOURNAL__URL", "postgresql+psycopg://u:hunter2@db/keel")
    rows = {k: v for k, v, _ in describe_settings()}
    assert rows["journal.url"] == "**********"
    assert "hunter2" not in repr(load_settings())


def test_unknown_key_in_file_is_an_error_naming_the_key(in_tmp):
    (in_tmp / "keel.toml").write_text("[risk]\nmax_order_notionall = 5\n")
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert "risk.max_order_notionall" in str(exc.value) and "unknown key" in str(exc.value)


def test_unknown_env_variable_is_an_error(in_tmp, monkeypatch):
    monkeypatch.setenv("KEEL_RISK__MAX_ORDERS", "5")
    problems = check_settings()
    assert any("KEEL_RISK__MAX_ORDERS" in p for p in problems)


def test_wrong_type_names_key_and_value(in_tmp):
    (in_tmp / "keel.toml").write_text('[broker]\ncash = "lots"\n')
    problems = check_settings()
    assert len(problems) == 1 and problems[0].startswith("broker.cash:") and "'lots'" in problems[0]


def test_check_lists_every_problem_at_once(in_tmp, monkeypatch):
    (in_tmp / "keel.toml").write_text(
        'mode = "moon"\n[risk]\nmax_open_positions = 0\nbogus = 1\n[broker]\nfees_bps = -1\n'
    )
    monkeypatch.setenv("KEEL_NOPE", "1")
    problems = check_settings()
    joined = "\n".join(problems)
    for key in ("mode", "risk.max_open_positions", "risk.bogus", "broker.fees_bps", "KEEL_NOPE"):
        assert key in joined
    assert len(problems) == 5


def test_semantic_problems_are_reported(in_tmp):
    (in_tmp / "keel.toml").write_text('mode = "live"\n[risk]\nmax_order_notional = 10\nmax_exposure = 5\n')
    problems = check_settings()
    assert any(p.startswith("risk.max_order_notional") for p in problems)
    assert any(p.startswith("mode:") for p in problems)


@pytest.mark.parametrize(
    ("limit", "value", "floor"),
    [
        ("max_order_notional", 51, 50),
        ("max_exposure", 501, 500),
        ("max_daily_loss", 101, 100),
        ("max_open_positions", 4, 3),
    ],
)
def test_live_refuses_any_limit_looser_than_the_bounded_live_floor(in_tmp, limit, value, floor):
    tight = {"max_order_notional": 50, "max_exposure": 500, "max_daily_loss": 100, "max_open_positions": 3}
    risk = "\n".join(f"{k} = {value if k == limit else v}" for k, v in tight.items())
    (in_tmp / "keel.toml").write_text(f'mode = "live"\n[risk]\n{risk}\n')
    problems = [p for p in check_settings() if not p.startswith("mode:")]
    assert problems == [
        f"risk.{limit}: {value:g} is looser than the bounded-live floor ({floor:g}); live allows at most that"
    ]


def test_live_may_tighten_the_bounded_live_floor(in_tmp):
    tight = "max_order_notional = 20\nmax_exposure = 100\nmax_daily_loss = 30\nmax_open_positions = 1\n"
    (in_tmp / "keel.toml").write_text(f'mode = "live"\n[risk]\n{tight}')
    assert [p for p in check_settings() if not p.startswith("mode:")] == []


def test_the_floor_binds_live_only(in_tmp):
    (in_tmp / "keel.toml").write_text('mode = "paper"\n[risk]\nmax_exposure = 1000000\nmax_order_notional = 10000\n')
    assert check_settings() == []


def test_approver_may_not_be_the_proposer(in_tmp):
    (in_tmp / "keel.toml").write_text('[approval]\nauto_approver = "sma_cross"\n')
    assert any("approver must never be the proposer" in p for p in check_settings())


def test_malformed_toml_is_reported_with_the_file(in_tmp):
    (in_tmp / "keel.toml").write_text("[risk\n")
    problems = check_settings()
    assert len(problems) == 1 and "keel.toml" in problems[0] and "TOML" in problems[0]


def test_missing_explicit_config_file_is_an_error(in_tmp):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(in_tmp / "nope.toml")


def test_keel_config_env_points_at_the_file(in_tmp, monkeypatch):
    other = in_tmp / "other.toml"
    other.write_text("[broker]\ncash = 1234\n")
    monkeypatch.setenv("KEEL_CONFIG", str(other))
    assert load_settings().broker.cash == 1234


def test_setting_sources_name_what_env_and_file_set_and_nothing_else(in_tmp, monkeypatch):
    (in_tmp / "keel.toml").write_text(
        'profile = "paper"\n[broker]\ncash = 5000\n[strategy]\nname = "mean_reversion"\nparams = { window = 20 }\n'
    )
    monkeypatch.setenv("KEEL_BROKER__CASH", "6000")
    monkeypatch.setenv("KEEL_SIZING__METHOD", "fixed_notional")
    sources = setting_sources()
    assert sources == {
        "profile": "keel.toml",
        "broker.cash": "env KEEL_BROKER__CASH",  # env beats file
        "strategy.name": "keel.toml",
        "strategy.params": "keel.toml",  # a table of params is one key
        "sizing.method": "env KEEL_SIZING__METHOD",
    }
    assert "risk.max_exposure" not in sources  # a default is not configured


def test_setting_sources_without_env_or_file_is_empty(in_tmp):
    assert setting_sources() == {}


def test_an_explicit_model_replaces_a_table_instead_of_merging_into_it(in_tmp):
    (in_tmp / "keel.toml").write_text('[strategy]\nname = "mean_reversion"\nparams = { window = 20 }\n')
    merged = load_settings(strategy={"name": "sma_cross", "params": {"fast": 5}})
    assert merged.strategy.params == {"window": 20, "fast": 5}  # what a plain dict override does
    replaced = load_settings(strategy=StrategySettings(name="sma_cross", params={"fast": 5}))
    assert replaced.strategy.params == {"fast": 5}
    rows = {k: src for k, _, src in describe_settings(strategy=StrategySettings(name="sma_cross"))}
    assert rows["strategy.name"] == "explicit"


def test_infinite_or_nan_money_is_refused(in_tmp):
    (in_tmp / "keel.toml").write_text("[broker]\ncash = inf\nfees_bps = nan\n")
    problems = check_settings()
    assert len(problems) == 2
    assert problems[0].startswith("broker.cash:") and "finite" in problems[0]
    assert problems[1].startswith("broker.fees_bps:") and "finite" in problems[1]


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("broker.cash", float("inf"), "finite"),
        ("broker.cash", float("nan"), "finite"),
        ("broker.cash", -5.0, "greater than 0"),
        ("broker.fees_bps", -1.0, "greater than or equal to 0"),
        ("broker.slippage_bps", 5_000.0, "less than or equal to 1000"),
        ("broker.cash", 10.0, None),
    ],
)
def test_value_problem_checks_one_typed_value_like_the_file(key, value, problem):
    found = value_problem(key, value)
    assert found is None if problem is None else problem in found


def test_value_problem_of_an_unknown_key_is_a_programming_error():
    with pytest.raises(KeyError):
        value_problem("broker.kash", 1.0)


def test_malformed_json_in_a_table_env_variable_is_a_problem_not_a_crash(in_tmp, monkeypatch):
    monkeypatch.setenv("KEEL_STRATEGY__PARAMS", "{not json")
    problems = check_settings()
    assert len(problems) == 1 and problems[0].startswith("environment:")
    with pytest.raises(ConfigError):
        load_settings()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg://keel:hunter2@db.internal:5432/keel",
            "postgresql+psycopg://keel:***@db.internal:5432/keel",
        ),
        ("postgresql+psycopg://db.internal/keel", "postgresql+psycopg://db.internal/keel"),
        ("postgresql://keel:p@ss@db/keel?sslmode=require", "postgresql://keel:***@db/keel?sslmode=require"),
        ("sqlite://", "in memory (sqlite)"),
    ],
)
def test_describe_url_masks_the_password(url, shown):
    assert describe_url(url) == shown


def test_describe_url_of_sqlite_is_the_file(in_tmp):
    assert describe_url("sqlite:///var/keel.db") == str(in_tmp / "var" / "keel.db")
    assert describe_url(f"sqlite:///{in_tmp / 'x.db'}") == str(in_tmp / "x.db")
