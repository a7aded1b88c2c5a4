"""Property: no stream of random intents, through the real pipeline, ever breaches a configured limit.

A seeded random strategy fires entries and exits (with and without stops) on several symbols; the limits and the
sizing method (all-in, fixed notional, volatility) are drawn at random. A broker wrapper checks every order the
executor sends, at the moment it is sent, against the limits the supervisor had to enforce: order notional
(an all-in order's notional cap), exposure counting open orders, open positions, order rate, and cash; and every
fill against its order (units, and an all-in order's cap). Afterwards the journal shows that every order sent is
within what the supervisor approved, in units and notional, and that the broker refused no approved buy for cash.
The wrapper only observes; the real paper broker does the work.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import Field

from helpers.scenarios import transitions
from keel.backtest.run import execute_run
from keel.brokers.paper import PaperBroker
from keel.data.synthetic import generate_regime_ohlcv
from keel.domain.intents import Side
from keel.domain.orders import SubmitOutcome
from keel.settings import Profile, load_settings
from keel.strategies.base import Signals, Strategy, StrategyParams, StrategyRules

TOL = 1e-6


class RandomParams(StrategyParams):
    seed: int = 0
    entry_p: float = Field(0.05, gt=0, lt=1)
    exit_p: float = Field(0.05, gt=0, lt=1)


class RandomStrategy(Strategy):
    """Random entries and exits; half the entries carry a stop a random distance below the close."""

    name: ClassVar[str] = "random_stream"
    Params: ClassVar[type[StrategyParams]] = RandomParams

    @classmethod
    def make_rules(cls, params):
        return StrategyRules(
            requires_stop=False,
            stop_waived=True,
            stop_waiver_reason="test stream",
            entry_rule="random entry",
            exit_rule="random exit",
            sizing_rule="allocator",
            halt_rule="none",
        )

    def signals(self, bars):
        n = len(bars)
        rng = np.random.default_rng(self.params.seed + int(bars.ts[0] % 1000))
        entry = rng.random(n) < self.params.entry_p
        exit_ = (rng.random(n) < self.params.exit_p) & ~entry
        stop = np.where(rng.random(n) < 0.5, bars.close * (1 - rng.uniform(0.001, 0.05, n)), np.nan)
        entry[:2] = exit_[:2] = False
        return Signals(entry, exit_, np.where(entry, stop, np.nan), np.full(n, np.nan), np.full(n, 0.5), warmup=2)


class LimitWatchingBroker(PaperBroker):
    """The real paper broker, plus an assertion at every accepted order that the limits held when it was sent."""

    def __init__(self, limits, **kwargs):
        super().__init__(**kwargs)
        self.limits = limits
        self.reserved: dict[str, float] = {}
        self.sent: deque[int] = deque()
        self.checked = 0

    def on_bar(self, symbol, ts, *bar):
        fills = super().on_bar(symbol, ts, *bar)
        for coid in list(self.reserved):
            order = self.status(coid)
            if order is not None and not order.status.is_open:
                del self.reserved[coid]
        return fills

    def submit(self, request):
        lim = self.limits
        now = int(max(self._quote_ts.values()).timestamp() * 1e9)
        known = self.status(request.client_order_id) is not None
        result = super().submit(request)
        if known or result.outcome is not SubmitOutcome.ACKNOWLEDGED:
            return result
        while self.sent and self.sent[0] <= now - 60 * 10**9:
            self.sent.popleft()
        assert len(self.sent) < lim.max_orders_per_minute, "order rate limit breached"
        self.sent.append(now)
        if request.side is Side.BUY:
            price = self.quote(request.symbol).last
            cap = request.notional_cap
            notional = cap if cap is not None else request.quantity * price
            positions = self.positions()
            exposure = sum(p.quantity * self.quote(s).last for s, p in positions.items()) + sum(self.reserved.values())
            assert notional <= lim.max_order_notional + TOL, f"order notional {notional} > {lim.max_order_notional}"
            assert exposure + notional <= lim.max_exposure + TOL, f"exposure {exposure + notional} > {lim.max_exposure}"
            holders = {s for s, p in positions.items() if p.quantity > 0} | {
                self.status(c).symbol for c in self.reserved
            }
            assert len(holders | {request.symbol}) <= lim.max_open_positions, "open positions limit breached"
            self.reserved[request.client_order_id] = notional
            self.checked += 1
        assert self.balance().cash >= -TOL
        return result

    def _apply(self, rec, ts, price, units, remaining):
        fill = super()._apply(rec, ts, price, units, remaining)
        r = rec.request
        assert rec.filled <= r.quantity + TOL, f"{r.client_order_id} filled {rec.filled} > ordered {r.quantity}"
        if r.notional_cap is not None:
            assert rec.cost + rec.fees <= r.notional_cap + TOL, f"{r.client_order_id} spent past its cap"
        return fill


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    max_order=st.floats(500, 20_000),
    exposure_mult=st.floats(1.0, 4.0),
    positions=st.integers(1, 3),
    rate=st.integers(1, 6),
    entry_p=st.floats(0.02, 0.3),
    sizing=st.sampled_from(["all_in", "fixed_notional", "volatility"]),
)
def test_no_random_intent_stream_breaches_a_limit(
    tmp_path_factory, seed, max_order, exposure_mult, positions, rate, entry_p, sizing
):
    tmp = tmp_path_factory.mktemp("prop")
    frames = generate_regime_ohlcv(3, 400, seed=seed)
    risk = {
        "max_order_notional": max_order,
        "max_exposure": max_order * exposure_mult,
        "max_open_positions": positions,
        "max_orders_per_minute": rate,
        "max_daily_loss": 1e9,
        "require_stop": False,
    }
    cfg = load_settings(
        var_dir=tmp / "var",
        risk=risk,
        sizing={"method": sizing, "fixed_notional": max_order * 1.5, "per_symbol_budget_pct": 100},
        broker={"cash": 50_000, "fees_bps": 2, "slippage_bps": 1, "participation_cap": None},
    )
    broker = LimitWatchingBroker(cfg.risk, cash=50_000, fees_bps=2, slippage_bps=1, participation_cap=None)
    strategy = RandomStrategy(RandomParams(seed=seed, entry_p=entry_p, exit_p=0.1))
    result = execute_run(frames, cfg, strategy, out_dir=tmp / "run", profile=Profile.PAPER, broker=broker)
    assert sum(result.summary.intents_by_state.values()) > 0
    assert broker.checked == result.summary.orders - _sells(result)  # every buy sent was checked
    _sent_within_approval(result)


def _sent_within_approval(result) -> None:
    """Every order sent carries at most the units and the notional the supervisor approved; no approved buy was
    refused by the broker for cash (the supervisor prices it exactly as the broker does)."""
    approved, sent = {}, {}
    for record in transitions(result):
        p = record["payload"]
        if p["to"] == "approved":
            approved[p["intent_id"]] = p
        elif p["from"] == "executing" and "order" in p:
            sent[p["intent_id"]] = p
    for iid, p in sent.items():
        order, verdict = p["order"], approved[iid]
        assert order["quantity"] <= verdict["approved_quantity"] + TOL, iid
        if order["notional_cap"] is not None:
            assert order["notional_cap"] <= verdict["approved_notional"] + TOL, iid
        if p["to"] == "failed":
            assert "insufficient cash" not in p["detail"], f"{iid}: approved, then refused for cash: {p['detail']}"


def _sells(result) -> int:
    import sqlite3

    with sqlite3.connect(result.run_dir / "keel.db") as con:
        return con.execute("select count(*) from orders where side = 'sell'").fetchone()[0]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    entry_p=st.floats(0.02, 0.3),
    sizing=st.sampled_from(["all_in", "fixed_notional", "volatility"]),
    daily_loss=st.sampled_from([100.0, 3.0, 1.0]),  # the floor, or tighter (a loss this small is reached)
)
def test_no_random_intent_stream_breaches_the_bounded_live_floor(tmp_path_factory, seed, entry_p, sizing, daily_loss):
    """The phase-1 floor live must run within ($50 an order, $500 exposure, 3 positions, $100 daily loss), as the
    configured limits of a paper session (live itself needs a venue this version does not ship): no order breaches
    them, and once the day's loss reached $100 no buy is sent again (the kill switch reduced trading to exits)."""
    from keel.settings import BOUNDED_LIVE_FLOOR

    tmp = tmp_path_factory.mktemp("floor")
    frames = generate_regime_ohlcv(3, 400, seed=seed, start_price=8.0)  # a few whole units fit in $50
    risk = {**BOUNDED_LIVE_FLOOR, "max_daily_loss": daily_loss, "max_orders_per_minute": 6, "require_stop": False}
    cfg = load_settings(
        var_dir=tmp / "var",
        risk=risk,
        sizing={"method": sizing, "fixed_notional": 75, "per_symbol_budget_pct": 100},
        broker={"cash": 5_000, "fees_bps": 2, "slippage_bps": 1, "participation_cap": None},
    )
    broker = LimitWatchingBroker(cfg.risk, cash=5_000, fees_bps=2, slippage_bps=1, participation_cap=None)
    strategy = RandomStrategy(RandomParams(seed=seed, entry_p=entry_p, exit_p=0.1))
    result = execute_run(frames, cfg, strategy, out_dir=tmp / "run", profile=Profile.PAPER, broker=broker)
    assert result.summary.orders > 0, result.summary.blocked_reasons  # the floor is exercised, not just refused
    assert broker.checked == result.summary.orders - _sells(result)
    _sent_within_approval(result)
    import orjson

    reduced = False
    for line in (result.run_dir / "events.jsonl").read_bytes().splitlines():
        record = orjson.loads(line)
        p = record["payload"]
        if record["event"] == "kill_switch.tripped" and p["trigger"] == "DAILY_LOSS_LIMIT":
            reduced = True
        elif reduced and record["event"] == "intent.transition" and p["to"] == "executing":
            assert p["intent_id"] not in _buys(result), f"a buy was sent after the day's loss reached $100: {p}"


def _buys(result) -> set[str]:
    import sqlite3

    with sqlite3.connect(result.run_dir / "keel.db") as con:
        return {r[0] for r in con.execute("select intent_id from intents where side = 'buy'")}
