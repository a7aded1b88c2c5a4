"""User strategies: loading `file.py:Class`, `module:Class` and entry points, and every way a user's code is refused."""

from __future__ import annotations

import hashlib
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

from keel.backtest.run import run_id_for
from keel.data.synthetic import generate_regime_ohlcv
from keel.domain.errors import ConfigError, InputError
from keel.settings import Mode, Profile, Settings
from keel.strategies import available_strategies, build_strategy, get_strategy_class
from keel.strategies.loader import checked_signals, entry_point_names

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "strategies" / "breakout.py"
FIXTURES = ROOT / "tests" / "fixtures" / "strategies"
CONTRACT = FIXTURES / "malformed" / "contract.py"
#: the line of contract.py where RaisesInSignals reads past the end of the bars
RAISING_LINE = next(n for n, line in enumerate(CONTRACT.read_text().splitlines(), 1) if "one bar past the end" in line)


@pytest.fixture(scope="module")
def bars():
    return generate_regime_ohlcv(1, 1_500, seed=3)[0]


def _refused(reference: str, params: dict | None = None) -> InputError:
    with pytest.raises(InputError) as err:
        build_strategy(reference, params or {})
    assert err.value.exit_code == 2
    return err.value


def test_example_strategy_loads_from_its_file_and_describes_its_source():
    strategy = build_strategy(f"{EXAMPLE}:Breakout", {"channel": 40})
    described = strategy.describe()
    assert described["name"] == "breakout" and described["params"]["channel"] == 40
    assert described["rules"]["requires_stop"] is True
    assert described["source"] == {
        "kind": "file",
        "class": "Breakout",
        "sha256": hashlib.sha256(EXAMPLE.read_bytes()).hexdigest(),
    }


def test_built_in_strategies_describe_no_source_so_their_run_ids_do_not_change():
    assert "source" not in build_strategy("sma_cross", {}).describe()


def test_loading_a_file_registers_nothing_and_is_done_once():
    first = get_strategy_class(f"{EXAMPLE}:Breakout")
    assert get_strategy_class(f"{EXAMPLE}:Breakout") is first
    assert available_strategies() == ["mean_reversion", "sma_cross"]


def test_example_strategy_signals_keep_the_contract(bars):
    strategy = build_strategy(f"{EXAMPLE}:Breakout", {})
    signals = checked_signals(strategy, bars)
    assert len(signals) == len(bars) and signals.entry.any() and signals.exit.any()
    assert np.isfinite(signals.stop[signals.entry]).all()  # every entry carries its stop
    assert set(strategy.indicators(bars)) == {"upper", "lower", "atr"}


def test_bad_parameter_values_of_a_user_strategy_are_all_reported():
    with pytest.raises(ConfigError) as err:
        build_strategy(f"{EXAMPLE}:Breakout", {"channel": 0, "stop_atr": "far", "chanel": 3})
    problems = err.value.problems
    assert len(problems) == 3 and err.value.exit_code == 2
    assert any("'channel' = 0" in p for p in problems)
    assert any("'stop_atr' = 'far'" in p for p in problems)
    assert any("unknown parameter 'chanel'" in p and "channel, exit_channel" in p for p in problems)


def test_rule_between_parameters_of_a_user_strategy_is_reported():
    with pytest.raises(ConfigError, match=r"exit_channel \(30\) must not exceed channel \(20\)"):
        build_strategy(f"{EXAMPLE}:Breakout", {"channel": 20, "exit_channel": 30})


def test_run_id_changes_with_the_file_contents_not_with_its_place(tmp_path, bars):
    settings = Settings()
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    shutil.copy(EXAMPLE, one / "breakout.py")
    shutil.copy(EXAMPLE, two / "breakout.py")

    def run_id(path: Path) -> str:
        strategy = build_strategy(f"{path}:Breakout", {})
        return run_id_for(settings, strategy, [bars], Mode.REPLAY, Profile.RESEARCH)

    original = run_id(one / "breakout.py")
    assert run_id(two / "breakout.py") == original  # the same code elsewhere: the same run
    edited = one / "breakout.py"
    edited.write_text(edited.read_text().replace("SETTLED = 1e-6", "SETTLED = 1e-7"))
    assert run_id(edited) != original


@pytest.mark.parametrize(
    ("reference", "needle"),
    [
        ("nowhere/missing.py:Thing", "strategy file 'nowhere/missing.py' does not exist"),
        (f"{FIXTURES / 'malformed' / 'strategy.txt'}:Thing", "is not a Python file (.py)"),
        (f"{FIXTURES / 'malformed'}:Thing", "is a directory"),
        (f"{EXAMPLE}", "name the class too, as path/to/file.py:ClassName"),
        (f"{EXAMPLE}:", "name the class too"),
        (f"{EXAMPLE}:not-a-name", "'not-a-name' is not a class name"),
        (f"{EXAMPLE}:Breakot", "has no 'Breakot'; strategies it defines: Breakout"),
        (f"{CONTRACT}:NOT_A_CLASS", "'NOT_A_CLASS' is a int, not a class"),
        (f"{CONTRACT}:NotAStrategy", "NotAStrategy is not a Strategy subclass"),
        (f"{CONTRACT}:NoRules", "NoRules must declare its rules: a classmethod make_rules(params) -> StrategyRules"),
        (f"{CONTRACT}:NoParams", "NoParams.Params must be a StrategyParams subclass"),
        (f"{CONTRACT}:BadName", "BadName.name must be a lowercase identifier, got 'Bad Name'"),
        (f"{CONTRACT}:TakenName", "its name 'sma_cross' is taken by the built-in strategy SmaCross; choose another"),
        (f"{CONTRACT}:BadRules", "its rules are not valid with these parameters"),
        (f"{CONTRACT}:RulesNotRules", "make_rules must return StrategyRules, got dict"),
        ("no_such_strategy", "unknown strategy 'no_such_strategy'"),
        ("9bad:Thing", "'9bad' is neither a Python file nor a module name"),
    ],
)
def test_a_strategy_that_cannot_be_loaded_is_refused_saying_what_to_do(reference, needle):
    error = _refused(reference)
    assert needle in error.message, error.message
    assert error.hint


def test_an_unknown_name_hints_at_the_file_form():
    error = _refused("sma_crosss")
    assert "mean_reversion, sma_cross" in error.message
    assert "path/to/file.py:ClassName" in (error.hint or "")


def test_every_contract_problem_of_a_class_is_reported_at_once(tmp_path):
    path = tmp_path / "two_problems.py"
    path.write_text(
        textwrap.dedent(
            """
            from keel.strategies import Strategy

            class Two(Strategy):
                name = "Two"
            """
        )
    )
    message = _refused(f"{path}:Two").message
    assert f"strategy {path}:Two does not keep the strategy contract" in message
    for needle in ("lowercase identifier", "Params must be", "must declare its rules", "must compute its signals"):
        assert needle in message, needle


def test_a_syntax_error_names_the_file_the_line_and_the_code(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("from keel.strategies import Strategy\n\nclass Broken(Strategy)\n    name = 'broken'\n")
    error = _refused(f"{path}:Broken")
    assert error.message.startswith(f"strategy file '{path}', line 3: syntax error:")
    assert "class Broken(Strategy)" in error.message


def test_an_exception_while_running_the_file_names_the_file_and_line(tmp_path):
    path = tmp_path / "fails.py"
    path.write_text("x = 1\nraise RuntimeError('configured wrongly')\n")
    error = _refused(f"{path}:Anything")
    assert f"strategy file '{path}', line 2: running it raised RuntimeError: configured wrongly" in error.message


def test_a_missing_import_names_the_file_and_line_and_says_to_install_it():
    path = FIXTURES / "malformed" / "imports_missing.py"
    error = _refused(f"{path}:Anything")
    assert f"'{path}', line 5: running it raised ModuleNotFoundError" in error.message
    assert "keel_no_such_package" in error.message
    assert "install" in (error.hint or "")


def test_a_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "latin.py"
    path.write_bytes(b"name = '\xe9t\xe9'\n")
    assert "is not UTF-8 text" in _refused(f"{path}:Anything").message


@pytest.mark.parametrize(
    ("class_name", "needle"),
    [
        ("RaisesInSignals", f"line {RAISING_LINE}: signals() raised IndexError"),
        ("WrongLength", "signals() returned 1,499 bars for SYN0's 1,500"),
        ("NotSignals", "signals() returned dict, not Signals"),
    ],
)
def test_signals_that_break_the_contract_are_input_errors_naming_the_class(bars, class_name, needle):
    strategy = build_strategy(f"{CONTRACT}:{class_name}", {})
    with pytest.raises(InputError) as err:
        checked_signals(strategy, bars)
    assert f"{CONTRACT}:{class_name}" in err.value.message
    assert needle in err.value.message, err.value.message


def _package(root: Path, module: str, body: str, entry_points: str | None = None) -> None:
    (root / f"{module}.py").write_text(textwrap.dedent(body))
    if entry_points is not None:
        info = root / "keel_test_plugins-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: keel-test-plugins\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


def test_an_installed_entry_point_is_a_strategy_name(tmp_path, monkeypatch):
    _package(
        tmp_path,
        "keel_test_plugin_mod",
        EXAMPLE.read_text(),
        "[keel.strategies]\nplugin_breakout = keel_test_plugin_mod:Breakout\nplugin_broken = keel_test_plugin_mod\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert {"plugin_breakout", "plugin_broken"} <= set(entry_point_names())
    strategy = build_strategy("plugin_breakout", {"channel": 30})
    source = strategy.describe()["source"]
    assert source["kind"] == "entry_point" and source["package"] == "keel-test-plugins 1.2.3"
    assert source["entry_point"] == "plugin_breakout = keel_test_plugin_mod:Breakout"
    assert source["sha256"] == hashlib.sha256((tmp_path / "keel_test_plugin_mod.py").read_bytes()).hexdigest()
    assert "not package.module:ClassName" in _refused("plugin_broken").message
    assert "installed: plugin_breakout, plugin_broken" in _refused("plugin_nothing").message


def test_a_module_and_class_load_from_the_environment(tmp_path, monkeypatch):
    _package(tmp_path, "keel_test_module_strategy", EXAMPLE.read_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    strategy = build_strategy("keel_test_module_strategy:Breakout", {})
    assert strategy.describe()["source"]["kind"] == "module"
    error = _refused("keel_test_no_such_module:Breakout")
    assert "strategy module 'keel_test_no_such_module' cannot be imported: ModuleNotFoundError" in error.message


def test_a_one_letter_class_name_is_a_class_not_a_windows_drive(tmp_path):
    with pytest.raises(InputError, match=r"strategy file '.*nothere\.py' does not exist"):
        build_strategy(f"{tmp_path / 'nothere.py'}:X")
