"""The decision memory block: its bounds, its cut-off (nothing that closed at the decision bar or later), how an
objection is judged, and the round trips it is built from."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from keel.backtest.report import round_trips
from keel.data.frame import NS_PER_SECOND, OHLCV, datetime_to_ns
from keel.domain.intents import Side
from keel.journal.records import FillRow
from keel.llm.memory import VERSION, AdviceLedger, Advised, ClosedTrade, closed_trades, memory_block

T0 = datetime_to_ns(datetime(2024, 1, 1, tzinfo=UTC))
MIN = 60 * NS_PER_SECOND


def bars(n: int = 100, symbol: str = "AAA") -> OHLCV:
    ts = T0 + np.arange(n, dtype=np.int64) * MIN
    close = 100.0 + np.arange(n, dtype=np.float64)
    return OHLCV(symbol, ts, close - 0.5, close + 2.0, close - 3.0, close, np.full(n, 10.0))


def trade(k: int, *, entry: int, exit: int, pnl: float = 1.0, symbol: str = "AAA") -> ClosedTrade:
    return ClosedTrade(
        symbol=symbol,
        entry_intent_id=f"it-{k}",
        entry_ns=T0 + entry * MIN,
        exit_ns=T0 + exit * MIN,
        quantity=1.0,
        entry_price=100.0 + entry,
        exit_price=100.0 + entry + pnl,
        pnl=pnl,
        fees=0.0,
        exit_leg="exit",
    )


def advised(*ks: int, critic: str | None = None) -> dict[str, Advised]:
    return {f"it-{k}": Advised("AAA", T0 + k * MIN, strategist=True, critic=critic) for k in ks}


def block(trades, advice, decision: int, max_items: int = 10):
    return memory_block(trades, advice, decision_ns=T0 + decision * MIN, max_items=max_items, bars={"AAA": bars()})


def test_a_trade_closing_at_the_decision_bar_or_later_is_not_in_the_block():
    trades = [trade(1, entry=1, exit=9), trade(2, entry=3, exit=10), trade(3, entry=5, exit=11)]
    shown = block(trades, advised(1, 2, 3), decision=10)
    assert [t["exit_ts"] for t in shown["trades"]] == ["2024-01-01T00:09:00+00:00"]
    assert shown["as_of"] == "2024-01-01T00:10:00+00:00" and shown["version"] == VERSION == "memory/1"


def test_the_block_holds_the_latest_max_items_advised_trades_oldest_first():
    trades = [trade(k, entry=k, exit=k + 2) for k in range(1, 9)]
    shown = block(trades, advised(*range(1, 9)), decision=50, max_items=3)
    assert [t["entry_ts"][11:16] for t in shown["trades"]] == ["00:06", "00:07", "00:08"]
    assert shown["max_items"] == 3
    with pytest.raises(ValueError, match="at least 1"):
        block(trades, advised(1), decision=50, max_items=0)


def test_only_trades_a_model_advised_on_are_shown():
    trades = [trade(1, entry=1, exit=3), trade(2, entry=4, exit=6)]
    shown = block(trades, advised(2), decision=50)
    assert len(shown["trades"]) == 1 and shown["trades"][0]["entry_ts"].endswith("00:04:00+00:00")
    assert block(trades, {}, decision=50)["trades"] == []


def test_outcome_fields_are_computed_from_the_trade_and_the_bars_it_was_held():
    # bars: close 100+i, high close+2, low close-3; entry at bar 2 (price 102), exit at bar 5 (price 104)
    shown = block([trade(1, entry=2, exit=5, pnl=2.0)], advised(1), decision=6)
    (item,) = shown["trades"]
    assert item["pnl_pct"] == pytest.approx(2.0 / 102.0 * 100, abs=1e-6)
    # held over bars 2..4: lowest low 102-3 = 99, highest high 104+2 = 106
    assert item["mae_pct"] == pytest.approx((99 / 102 - 1) * 100, abs=1e-6)
    assert item["mfe_pct"] == pytest.approx((106 / 102 - 1) * 100, abs=1e-6)
    assert item["side"] == "long" and item["exit_leg"] == "exit" and item["advised_by"] == ["strategist"]


@pytest.mark.parametrize(
    ("verdict", "pnl", "objected", "right"),
    [
        ("APPROVE_WITH_CHANGES", -1.0, True, True),
        ("APPROVE_WITH_CHANGES", 1.0, True, False),
        ("APPROVE", -1.0, False, None),
        (None, -1.0, False, None),
    ],
)
def test_an_objection_proves_right_when_the_trade_lost(verdict, pnl, objected, right):
    (item,) = block([trade(1, entry=1, exit=3, pnl=pnl)], advised(1, critic=verdict), decision=9)["trades"]
    assert (item["critic_verdict"], item["critic_objected"], item["objection_proved_right"]) == (
        verdict,
        objected,
        right,
    )


def test_rejected_entries_are_counted_before_the_decision_bar_and_never_scored():
    advice = {
        "it-r1": Advised("AAA", T0 + 2 * MIN, critic="REJECT"),
        "it-r2": Advised("AAA", T0 + 10 * MIN, critic="REJECT"),  # at the decision bar: not yet
    }
    shown = block([], advice, decision=10)
    assert shown["critic_rejected"]["count"] == 1
    assert "unknown" in shown["critic_rejected"]["outcome"]
    assert shown["trades"] == []


def fill(n: int, coid: str, side: Side, qty: float, price: float, minute: int, fee: float = 0.1) -> FillRow:
    ts = datetime(2024, 1, 1, 0, minute, tzinfo=UTC)
    return FillRow(f"f{n}", coid, "AAA", side, qty, price, fee, ts)


def test_closed_trades_agree_with_the_reports_round_trips_and_name_the_entry_intent():
    fills = [
        fill(1, "in-1", Side.BUY, 1.0, 100.0, 1),
        fill(2, "in-1", Side.BUY, 1.0, 102.0, 2),  # a second fill of the same position
        fill(3, "out-1", Side.SELL, 2.0, 105.0, 5),
        fill(4, "in-2", Side.BUY, 1.0, 104.0, 7),  # still open: not a closed trade
    ]
    legs = {"in-1": "entry", "out-1": "stop", "in-2": "entry"}
    mine = closed_trades(fills, legs)
    (report,) = round_trips(fills, legs)
    (t,) = mine
    assert t.entry_intent_id == "in-1" and t.exit_leg == report["exit_leg"] == "stop"
    assert (t.pnl, t.entry_price, t.exit_price, t.quantity) == pytest.approx(
        (report["pnl"], report["entry_price"], report["exit_price"], report["quantity"])
    )
    assert t.exit_ns == datetime_to_ns(datetime.fromisoformat(report["exit_ts"]))


def test_the_ledger_reads_advice_back_from_journal_records():
    records = [
        {
            "event": "intent.proposed",
            "ts": "2024-01-01T00:03:00.000000+00:00",
            "payload": {"intent": {"intent_id": "it-a", "symbol": "AAA", "leg": "entry", "evidence_ids": ["llm:ab"]}},
        },
        {  # a deterministic entry: no model chose it
            "event": "intent.proposed",
            "ts": "2024-01-01T00:03:00.000000+00:00",
            "payload": {"intent": {"intent_id": "it-b", "symbol": "BBB", "leg": "entry", "evidence_ids": ["bar:x"]}},
        },
        {
            "event": "llm.call",
            "ts": "2024-01-01T00:03:00.000000+00:00",
            "payload": {
                "stage": "critic_llm",
                "used": True,
                "verdict": "REJECT",
                "about": {"intent_ids": ["it-c"], "symbols": ["CCC"]},
            },
        },
        {  # no usable answer: no advice
            "event": "llm.call",
            "ts": "2024-01-01T00:04:00.000000+00:00",
            "payload": {
                "stage": "critic_llm",
                "used": False,
                "verdict": None,
                "about": {"intent_ids": ["it-d"], "symbols": ["DDD"]},
            },
        },
    ]
    ledger = AdviceLedger()
    ledger.seed(records)
    assert set(ledger.advised) == {"it-a", "it-c"}
    assert ledger.advised["it-a"].strategist and ledger.advised["it-a"].critic is None
    assert ledger.advised["it-c"].critic == "REJECT" and ledger.advised["it-c"].decided_ns == T0 + 3 * MIN
