"""The sweep grid: ranges, lists and single values; every bad item reported with what is wrong; invalid pairs skipped."""

from __future__ import annotations

import pytest

from keel.domain.errors import ConfigError, InputError
from keel.research.sweep_grid import MAX_COMBINATIONS, parse_grid
from keel.strategies import get_strategy_class

SMA = get_strategy_class("sma_cross")
MR = get_strategy_class("mean_reversion")


def test_a_range_includes_both_ends():
    grid = parse_grid(SMA, ["fast=5:50:5", "slow=20:200:10"])
    assert grid.describe() == {"fast": list(range(5, 51, 5)), "slow": list(range(20, 201, 10))}
    assert grid.size == 10 * 19


def test_decimal_ranges_have_no_binary_residue():
    grid = parse_grid(MR, ["entry_z=1.5:3:0.5", "exit_z=-0.3:0.3:0.1"])
    assert grid.describe() == {"entry_z": [1.5, 2.0, 2.5, 3.0], "exit_z": [-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3]}


def test_lists_and_single_values():
    grid = parse_grid(SMA, ["fast=3,8,13", "slow=40"])
    assert grid.describe() == {"fast": [3, 8, 13], "slow": [40]}


def test_combinations_carry_fixed_parameters_and_skip_invalid_pairs():
    grid = parse_grid(MR, ["window=10,20"], {"entry_z": 2.5})
    combos = list(grid.combinations())
    assert combos == [{"entry_z": 2.5, "window": 10}, {"entry_z": 2.5, "window": 20}]
    pairs = list(parse_grid(SMA, ["fast=10,20,30", "slow=20"]).combinations())
    assert pairs[0] == {"fast": 10, "slow": 20}
    assert pairs[1:] == ["fast (20) must be below slow (20)", "fast (30) must be below slow (20)"]


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("fast=50:5:5", "start 50 is above stop 5"),
        ("fast=a:b", "'a:b' is not start:stop:step"),
        ("fast=a:9:1", "start 'a' is not a number"),
        ("fast=5:50:0", "the step must be above 0"),
        ("fast=5:50:-5", "the step must be above 0"),
        ("speed=1:3:1", "sma_cross has no parameter 'speed'; its parameters: fast, slow"),
        ("fast", "expected NAME=start:stop:step"),
        ("fast=", "expected NAME=start:stop:step"),
        ("fast=0:10:5", "fast=0: Input should be greater than or equal to 1"),
        ("fast=2.5", "fast=2.5: Input should be a valid integer"),
        ("fast=true", "expected a number, got a boolean"),
        ("fast=3,3", "repeats a value"),
        ("fast=3,,4", "has an empty value"),
    ],
)
def test_a_bad_item_is_an_error_naming_it(item, expected):
    with pytest.raises(ConfigError) as info:
        parse_grid(SMA, [item])
    assert f"--grid {item}" in info.value.message
    assert expected in info.value.message
    assert info.value.exit_code == 2


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        parse_grid(SMA, ["fast=50:5:5", "slow=x", "fast=1:2:1"], {"nope": 1})
    assert len(info.value.problems) == 3
    assert any("--param nope=1" in p for p in info.value.problems)


def test_a_parameter_is_varied_once_and_not_also_fixed():
    with pytest.raises(ConfigError, match="has a grid already"):
        parse_grid(SMA, ["fast=1:3:1", "fast=4:6:1"])
    with pytest.raises(ConfigError, match="also fixed by --param fast=3"):
        parse_grid(SMA, ["fast=1:3:1"], {"fast": 3})


def test_no_grid_and_huge_grids_are_refused():
    with pytest.raises(InputError, match="no --grid given"):
        parse_grid(SMA, [])
    with pytest.raises(InputError, match=f"more than {MAX_COMBINATIONS:,}"):
        parse_grid(SMA, ["fast=1:2000:1", "slow=1:2000:1"])
