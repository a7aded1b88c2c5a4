"""PaperBroker properties over random streams of submits, resubmits, cancels, marks and bars.

Invariants, checked after every step:
- cash >= 0 and every position quantity > 0 (long-only, never negative);
- no client order id fills more than its quantity, and an order's `filled_quantity` equals the sum of its fills;
- a client order id is one order: resubmits never create a second broker order;
- an independent ledger of the returned fills explains the account exactly:
  cash == initial − Σ buys (notional + fee) + Σ sells (notional − fee), fees_paid == Σ fees,
  position quantity == Σ bought − Σ sold per symbol;
- the average-cost identity: initial + realized PnL − fees paid == cash + Σ quantity × average price;
- fill ids are unique, and an order only fills on a bar that came after its submission;
- orders a bar ended without a fill are drained once each, in a terminal state.
And: snapshot (through JSON) + restore at any step, then the same tail ⇒ identical fills and state.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.brokers.paper import PaperBroker
from keel.domain.intents import OrderType, Side
from keel.domain.orders import OrderRequest

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SYMBOLS = ("AAA", "BBB")
COIDS = tuple(f"it-{i}" for i in range(20))
INITIAL_CASH = 10_000.0


def weighted(*choices: tuple[st.SearchStrategy, int]) -> st.SearchStrategy:
    """Pick a strategy with the given weights (`one_of` would pick each branch equally often)."""
    return st.sampled_from([s for s, weight in choices for _ in range(weight)]).flatmap(lambda s: s)


prices = st.floats(min_value=1.0, max_value=200.0, allow_nan=False, allow_infinity=False)
quantities = st.one_of(
    st.integers(min_value=1, max_value=60).map(float),
    st.floats(min_value=0.01, max_value=40.0, allow_nan=False),
)

bar_op = st.tuples(
    st.just("bar"),
    st.sampled_from(SYMBOLS),
    prices,
    st.floats(min_value=0.0, max_value=0.1),  # high above max(open, close), as a fraction
    st.floats(min_value=0.0, max_value=0.1),  # low below min(open, close), as a fraction
    prices,
    st.sampled_from([0.0, 3.0, 50.0, 1_000.0, 1e6]),
)
submit_op = st.tuples(
    st.just("submit"),
    st.sampled_from(COIDS),
    st.sampled_from(SYMBOLS),
    st.sampled_from([Side.BUY, Side.BUY, Side.BUY, Side.SELL]),
    quantities,
    st.one_of(st.none(), st.floats(min_value=0.8, max_value=1.2)),  # limit as a fraction of the reference
    weighted((st.none(), 3), (st.floats(min_value=1.0, max_value=20_000.0), 1)),  # notional cap
)
#: sells sized from the position, so sells actually fill (random quantities mostly exceed it)
sell_position_op = st.tuples(
    st.just("sell_position"),
    st.sampled_from(COIDS),
    st.sampled_from(SYMBOLS),
    st.sampled_from([0.5, 1.0]),
    st.one_of(st.none(), st.floats(min_value=0.9, max_value=1.1)),
)


ops = st.lists(
    weighted(
        (bar_op, 8),
        (submit_op, 5),
        (sell_position_op, 3),
        (st.tuples(st.just("resubmit"), st.sampled_from(COIDS)), 2),
        (st.tuples(st.just("cancel"), st.sampled_from(COIDS)), 1),
        (st.tuples(st.just("cancel_all"), st.sampled_from((None, *SYMBOLS))), 1),
        (st.tuples(st.just("mark"), st.sampled_from(SYMBOLS), prices), 1),
    ),
    min_size=10,
    max_size=50,
)
configs = st.fixed_dictionaries(
    {
        "cash": st.just(INITIAL_CASH),
        "fees_bps": st.sampled_from([0.0, 1.0, 7.5, 50.0]),
        "slippage_bps": st.sampled_from([0.0, 2.0, 25.0]),
        "participation_cap": st.sampled_from([None, 0.01, 0.1, 1.0]),
    }
)


class Run:
    """Applies ops to a broker and keeps an independent ledger of every fill it returned."""

    def __init__(self, broker: PaperBroker) -> None:
        self.b = broker
        self.step = 0
        self.first_request: dict[str, OrderRequest] = {}
        self.submitted_at: dict[str, int] = {}
        self.fills: list = []
        self.fill_step: list[int] = []
        self.silent: list = []

    def apply(self, op: tuple) -> None:
        self.step += 1
        kind = op[0]
        b = self.b
        ts = T0 + timedelta(minutes=self.step)
        if kind == "bar":
            _, symbol, o, up, down, c, volume = op
            got = b.on_bar(symbol, ts, o, max(o, c) * (1 + up), min(o, c) * (1 - down), c, volume)
            self.fills += got
            self.fill_step += [self.step] * len(got)
            self.silent += b.drain_silent_updates()
        elif kind == "submit":
            self._submit(*op[1:])
        elif kind == "sell_position":
            _, coid, symbol, fraction, limit_frac = op
            position = b.positions().get(symbol)
            if position is not None:
                self._submit(coid, symbol, Side.SELL, position.quantity * fraction, limit_frac, None)
        elif kind == "resubmit":
            if op[1] in self.first_request:
                b.submit(self.first_request[op[1]])
        elif kind == "cancel":
            b.cancel(op[1])
        elif kind == "cancel_all":
            b.cancel_all(op[1])
        elif kind == "mark":
            b.mark(op[1], ts, op[2])

    def _submit(
        self, coid: str, symbol: str, side: Side, qty: float, limit_frac: float | None, cap: float | None
    ) -> None:
        quote = self.b.quote(symbol)
        ref = quote.last if quote is not None else 100.0
        if cap is not None and side is Side.BUY:
            qty = float(max(1, round(qty)))  # capped buys are whole-unit (the fractional reject is unit-tested)
        request = OrderRequest(
            client_order_id=coid,
            symbol=symbol,
            side=side,
            quantity=qty,
            order_type=OrderType.LIMIT if limit_frac is not None else OrderType.MARKET,
            limit_price=None if limit_frac is None else ref * limit_frac,
            notional_cap=cap,
        )
        self.first_request.setdefault(coid, request)
        self.submitted_at.setdefault(coid, self.step)
        self.b.submit(request)

    def check(self) -> None:
        b = self.b
        balance = b.balance()
        assert balance.cash >= 0.0
        positions = b.positions()
        assert all(p.quantity > 0.0 for p in positions.values())

        filled: dict[str, float] = defaultdict(float)
        held: dict[str, float] = defaultdict(float)
        cash, fees = INITIAL_CASH, 0.0
        for f in self.fills:
            filled[f.client_order_id] += f.quantity
            notional = f.quantity * f.price
            if f.side is Side.BUY:
                cash -= notional + f.fee
                held[f.symbol] += f.quantity
            else:
                cash += notional - f.fee
                held[f.symbol] -= f.quantity
            fees += f.fee
        for coid in self.first_request:
            order = b.status(coid)
            assert order is not None
            assert order.filled_quantity <= order.quantity
            assert order.filled_quantity == pytest.approx(filled[coid], rel=1e-9, abs=1e-9)
        assert len({b.status(c).broker_order_id for c in self.first_request}) == len(self.first_request)
        assert balance.cash == pytest.approx(cash, rel=1e-9, abs=1e-6)
        assert balance.fees_paid == pytest.approx(fees, rel=1e-9, abs=1e-9)
        for symbol in SYMBOLS:
            qty = positions[symbol].quantity if symbol in positions else 0.0
            assert qty == pytest.approx(held[symbol], rel=1e-9, abs=1e-9)

        cost_basis = sum(p.quantity * p.average_price for p in positions.values())
        assert INITIAL_CASH + b.realized_pnl() - balance.fees_paid == pytest.approx(
            balance.cash + cost_basis, rel=1e-9, abs=1e-6
        )
        assert len({f.fill_id for f in self.fills}) == len(self.fills)
        assert all(
            step > self.submitted_at[f.client_order_id] for f, step in zip(self.fills, self.fill_step, strict=True)
        )
        assert all(o.status.is_open for o in b.open_orders())
        assert all(not o.status.is_open for o in self.silent)  # orders a bar ended without a fill, each once
        assert len({o.client_order_id for o in self.silent}) == len(self.silent)


#: one bar per symbol, then a position in each, so most submits have a reference price and sells can fill
OPENING = [
    ("bar", "AAA", 100.0, 0.01, 0.01, 100.0, 1e6),
    ("bar", "BBB", 20.0, 0.01, 0.01, 20.0, 1e6),
    ("submit", "seed-a", "AAA", Side.BUY, 20.0, None, None),
    ("submit", "seed-b", "BBB", Side.BUY, 100.0, None, None),
    ("bar", "AAA", 100.0, 0.01, 0.01, 100.0, 1e6),
    ("bar", "BBB", 20.0, 0.01, 0.01, 20.0, 1e6),
]

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(config=configs, script=ops)
def test_random_streams_keep_cash_positions_fills_and_accounting_consistent(config, script):
    run = Run(PaperBroker(**config))
    for op in OPENING + script:
        run.apply(op)
        run.check()


@FAST
@given(config=configs, script=ops, cut=st.integers(min_value=0, max_value=52))
def test_snapshot_restore_at_any_step_continues_identically(config, script, cut):
    script = OPENING + script
    cut = min(cut, len(script))
    straight = Run(PaperBroker(**config))
    for op in script:
        straight.apply(op)

    first = Run(PaperBroker(**config))
    for op in script[:cut]:
        first.apply(op)
    snap = json.loads(json.dumps(first.b.snapshot()))
    first.b = PaperBroker.restore(snap, **config)
    for op in script[cut:]:
        first.apply(op)

    assert first.fills == straight.fills
    assert first.b.snapshot() == straight.b.snapshot()
    assert first.b.balance() == straight.b.balance()
    assert first.b.positions() == straight.b.positions()
    assert first.b.open_orders() == straight.b.open_orders()
