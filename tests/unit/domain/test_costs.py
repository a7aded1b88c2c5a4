"""The cost model's sizing stays exact, and always ends, where whole numbers no longer step by one.

An all-in account that compounds for millions of bars reaches budgets whose unit counts pass 2**53, where
`units - 1.0 == units`: the step-down after the division must still make progress (a replay of 4M bars once hung
there, in the allocator). The budgets below are ones where the division overshoots at such a size."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keel.domain.costs import CostModel

COSTS = CostModel(fee_rate=0.001, slip_rate=0.0005)


@pytest.mark.parametrize(
    ("budget", "price"),
    [(7.141117476593437e19, 0.01304480511791535), (1.8601140071120794e20, 0.5348226360984901)],
)
def test_affordable_units_ends_and_fits_past_2_to_the_53(budget: float, price: float) -> None:
    first_guess = math.floor(budget / COSTS.unit_estimate(price))
    assert first_guess >= 2**53 and COSTS.buy_estimate(first_guess, price) > budget  # the case that used to hang
    units = COSTS.affordable_units(budget, price)
    assert units.is_integer() and 0 < units < first_guess
    assert COSTS.buy_estimate(units, price) <= budget


def test_affordable_at_fill_ends_and_fits_past_2_to_the_53() -> None:
    budget, price = 2.18427948255233e16, 0.003230219027133408
    first_guess = math.floor(budget / (price * (1.0 + COSTS.fee_rate)))
    assert first_guess >= 2**53 and COSTS.fill_cost(first_guess, price) > budget
    units = COSTS.affordable_at_fill(budget, price)
    assert units.is_integer() and 0 < units < first_guess
    assert COSTS.fill_cost(units, price) <= budget


@given(
    st.floats(min_value=1.0, max_value=1e24, allow_nan=False),
    st.floats(min_value=1e-4, max_value=1e5, allow_nan=False),
)
def test_sizing_is_whole_fits_the_budget_and_leaves_no_more_than_a_unit_or_two(budget: float, price: float) -> None:
    for units, cost in (
        (COSTS.affordable_units(budget, price), lambda u: COSTS.buy_estimate(u, price)),
        (COSTS.affordable_at_fill(budget, price), lambda u: COSTS.fill_cost(u, price)),
    ):
        assert units.is_integer() and units >= 0
        assert cost(units) <= budget
        # the division may round either way by an ulp: never more than two steps below the most that fits
        step = max(1.0, math.ulp(units))
        assert cost(units + 2 * step) > budget
