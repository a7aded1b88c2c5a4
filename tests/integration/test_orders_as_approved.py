"""What is sent is what the supervisor approved, and what fills stays inside it: all-in orders within their
limits, market orders within the collar, buys the broker will accept, exits that close what is held."""

from __future__ import annotations

from helpers.scenarios import bars, events, fills, run, scripted, transitions
from keel.settings import Profile

FLAT = [100.0] * 6


def _approved(result) -> dict[str, dict]:
    """intent id -> the verdict detail carried by its approval."""
    return {e["payload"]["intent_id"]: e["payload"] for e in transitions(result) if e["payload"]["to"] == "approved"}


def _sent(result) -> dict[str, dict]:
    """intent id -> the order the executor sent, as the journal recorded it."""
    return {
        e["payload"]["intent_id"]: e["payload"]["order"]
        for e in transitions(result)
        if e["payload"]["to"] == "executed"
    }


def test_all_in_order_never_exceeds_the_approved_units_or_the_notional_limit(tmp_path):
    # Cash 10,100, limits 10,000: the all-in cap must come down to the limit, and a fill at 97 (inside the
    # collar) buys what 10,000 pays for, not what the cash pays for.
    frame = bars("AAA", [100.0, 100.0, 100.0, 100.0], opens=[100.0, 100.0, 97.0, 100.0])
    result = run(
        [frame],
        tmp_path / "run",
        scripted(entries={"AAA": (1,)}),
        risk={"max_order_notional": 10_000, "max_exposure": 10_000, "require_stop": False},
        sizing={"method": "all_in"},
        broker={"cash": 10_100, "fees_bps": 1, "slippage_bps": 1, "participation_cap": None},
    )
    ((iid, order),) = _sent(result).items()
    verdict = _approved(result)[iid]
    assert order["quantity"] <= verdict["approved_quantity"]
    assert order["notional_cap"] <= verdict["approved_notional"] <= 10_000
    (fill,) = fills(result)
    _, side, qty, price, fee, _ = fill
    assert side == "buy" and qty <= order["quantity"]
    assert qty * price + fee <= 10_000  # today: 104 units at 97.01 = 10,089
    assert qty == 103


def test_a_market_buy_never_fills_outside_the_collar(tmp_path):
    # A +20 % gap at the fill bar with a 5 % collar: the broker refuses the fill, the order ends cancelled.
    frame = bars("AAA", [100.0, 100.0, 120.0, 120.0], opens=[100.0, 100.0, 120.0, 120.0])
    result = run(
        [frame],
        tmp_path / "run",
        scripted(entries={"AAA": (1,)}),
        risk={"price_collar_pct": 5.0, "require_stop": False},
        sizing={"method": "fixed_notional", "fixed_notional": 10_000},
    )
    assert fills(result) == []  # today: 100 units at 120
    (ended,) = events(result, "order.ended")
    assert ended["payload"]["order_status"] == "cancelled"
    assert "price band" in ended["payload"]["reason"]
    assert ended["payload"]["order"]["price_band"] == [95.0, 105.0]
    assert result.summary.open_at_end == 0


def test_an_all_in_buy_gapping_down_outside_the_collar_is_refused_too(tmp_path):
    frame = bars("AAA", [100.0, 100.0, 80.0, 80.0], opens=[100.0, 100.0, 80.0, 80.0])
    result = run(
        [frame],
        tmp_path / "run",
        scripted(entries={"AAA": (1,)}),
        profile=Profile.RESEARCH,
        sizing={"method": "all_in"},
    )
    assert fills(result) == []
    (order,) = _sent(result).values()
    assert order["quantity"] == 100_000 // 95  # the most units the cap can buy inside the band


def test_the_supervisor_and_the_broker_price_a_buy_the_same_way(tmp_path):
    # Fees and slippage of 1 % each compound: 100 units at 100 cost 10,201, not 10,200. With 10,200 of cash
    # the supervisor must size 99 units, or the broker refuses the order for cash after it was approved.
    frame = bars("AAA", FLAT)
    result = run(
        [frame],
        tmp_path / "run",
        scripted(entries={"AAA": (1,)}),
        risk={"max_order_notional": 50_000, "max_exposure": 50_000, "require_stop": False},
        sizing={"method": "fixed_notional", "fixed_notional": 20_000},
        broker={"cash": 10_200, "fees_bps": 100, "slippage_bps": 100, "participation_cap": None},
    )
    assert result.summary.intents_by_state == {"executed": 1}
    (order,) = _sent(result).values()
    assert order["status"] == "working" and order["quantity"] == 99


def test_an_entry_without_cash_for_one_unit_is_refused_for_cash_not_for_its_size(tmp_path):
    frame = bars("AAA", FLAT)
    result = run(
        [frame],
        tmp_path / "run",
        scripted(entries={"AAA": (1,)}),
        sizing={"method": "all_in"},
        risk={"require_stop": False},
        broker={"cash": 50, "fees_bps": 1, "slippage_bps": 1, "participation_cap": None},
    )
    assert result.summary.intents_by_state == {"blocked": 1}
    assert result.summary.blocked_reasons == {"INSUFFICIENT_CASH": 1}  # today: INVALID_SIZE


def test_an_exit_during_a_partially_filled_entry_cancels_it_and_closes_what_is_held(tmp_path):
    # 250 units wanted, 100 fill per bar (10 % of 1,000): the exit at bar 2 comes after 100 have filled.
    frame = bars("AAA", [100.0] * 8, volumes=[1_000.0] * 8)
    result = run(
        [frame],
        tmp_path / "run",
        scripted(entries={"AAA": (1,)}, exits={"AAA": (2,)}),
        risk={"max_order_notional": 50_000, "max_exposure": 50_000, "require_stop": False},
        sizing={"method": "fixed_notional", "fixed_notional": 25_000},
        broker={"cash": 100_000, "fees_bps": 0, "slippage_bps": 0, "participation_cap": 0.1},
    )
    assert result.summary.open_at_end == 0  # today: 60 long, no exit pending
    cancelled = events(result, "order.cancelled")
    assert [c["payload"]["why"] for c in cancelled] == ["exit"]
    bought = sum(q for _, side, q, *_ in fills(result) if side == "buy")
    sold = sum(q for _, side, q, *_ in fills(result) if side == "sell")
    assert bought == sold == 100.0
