"""The replay driver against an independent, deliberately simple loop for `sma_cross`.

Next-open fills, all-in whole units, no fees: both must produce the same trades and the same final equity to
the cent. The reference below shares no code with Keel: its SMA is a plain mean over a window.
"""

from __future__ import annotations

import math

import pytest

from keel.backtest.run import execute_run
from keel.data.synthetic import generate_regime_ohlcv
from keel.settings import Profile, load_settings
from keel.strategies import build_strategy


def naive_sma(values: list[float], n: int, i: int) -> float | None:
    if i + 1 < n:
        return None
    return sum(values[i + 1 - n : i + 1]) / n


def reference_backtest(opens, closes, fast, slow, cash):
    units = 0
    trades = []
    entry = None
    pending = None  # "buy" or "sell", decided at a close, filled at the next open
    for i in range(len(closes)):
        if pending == "buy":
            qty = math.floor(cash / opens[i])
            if qty > 0:
                cash -= qty * opens[i]
                units = qty
                entry = (i, opens[i])
        elif pending == "sell" and units:
            cash += units * opens[i]
            trades.append((entry[0], i, units, entry[1], opens[i]))
            units = 0
        pending = None
        f0, s0 = naive_sma(closes, fast, i - 1), naive_sma(closes, slow, i - 1)
        f1, s1 = naive_sma(closes, fast, i), naive_sma(closes, slow, i)
        if None in (f0, s0, f1, s1):
            continue
        if f0 <= s0 and f1 > s1 and units == 0:
            pending = "buy"
        elif f0 >= s0 and f1 < s1 and units > 0:
            pending = "sell"
    return trades, cash + units * closes[-1]


@pytest.mark.parametrize(("seed", "fast", "slow"), [(11, 10, 30), (12, 5, 20)])
def test_replay_matches_reference_loop_to_the_cent(tmp_path, seed, fast, slow):
    frame = generate_regime_ohlcv(1, 4_000, seed=seed)[0]
    settings = load_settings(
        var_dir=tmp_path / "var",
        broker={"cash": 10_000, "fees_bps": 0, "slippage_bps": 0},
        sizing={"method": "all_in"},
        strategy={"name": "sma_cross", "params": {"fast": fast, "slow": slow}},
    )
    strategy = build_strategy("sma_cross", {"fast": fast, "slow": slow})
    result = execute_run([frame], settings, strategy, out_dir=tmp_path / "run", profile=Profile.RESEARCH)

    opens, closes = frame.open.tolist(), frame.close.tolist()
    ref_trades, ref_equity = reference_backtest(opens, closes, fast, slow, 10_000.0)
    ts = frame.ts.tolist()
    from keel.data.frame import ns_to_datetime

    expected = [
        (ns_to_datetime(ts[a]).isoformat(), ns_to_datetime(ts[b]).isoformat(), float(q), pa, pb)
        for a, b, q, pa, pb in ref_trades
    ]
    trades = result.summary.trade_list
    assert len(expected) > 20, "the data must exercise many round trips"
    assert [(t.entry_ts, t.exit_ts, t.quantity) for t in trades] == [e[:3] for e in expected]
    for t, (_, _, q, pa, pb) in zip(trades, expected, strict=True):
        # Keel's average fill price is cost / quantity: equal to the open up to the last bit of a float.
        assert t.entry_price == pytest.approx(pa, rel=1e-12) and t.exit_price == pytest.approx(pb, rel=1e-12)
        assert round(t.pnl, 2) == round(q * (pb - pa), 2)
    assert result.summary.final_equity == round(ref_equity, 2)
