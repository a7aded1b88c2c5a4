"""What a contract costs on the hot path: pydantic's strict validation against the lax constructor and against
building the object unchecked (`model_construct`), per contract the replay builds for every intent.

    .venv/bin/python benchmarks/contracts.py [--n 20000]

`Contract.strict` validates every field (types, bounds, validators); this shows it costs about what skipping the
checks costs, so the hot path never builds an unchecked contract.
"""

from __future__ import annotations

import argparse
import timeit
from datetime import UTC, datetime

from keel.domain.decisions import Decision, Verdict
from keel.domain.intents import Leg, OrderType, Side, TradeIntent
from keel.domain.orders import Fill, Order, OrderRequest, OrderStatus

NOW = datetime(2024, 1, 1, tzinfo=UTC)
CASES = {
    TradeIntent: dict(
        intent_id="it-" + "a" * 24,
        run_id="run-1",
        strategy_id="sma_cross",
        symbol="AAA",
        side=Side.BUY,
        leg=Leg.ENTRY,
        quantity=5.0,
        order_type=OrderType.MARKET,
        reference_price=100.0,
        reference_ts=NOW,
        decision_ts=NOW,
        rationale="cross",
        risk_checklist={"stop_present": False, "stop_waived": True},
        evidence_ids=("bar:AAA:1", "outlook:AAA:1"),
    ),
    Verdict: dict(
        intent_id="it-" + "a" * 24,
        decision=Decision.APPROVE,
        checks={f"check{i}": "pass" for i in range(13)},
        requested_quantity=5.0,
        approved_quantity=5.0,
    ),
    OrderRequest: dict(client_order_id="x", symbol="AAA", side=Side.BUY, quantity=5.0, price_band=(95.0, 105.0)),
    Order: dict(
        client_order_id="x",
        broker_order_id="paper-1",
        symbol="AAA",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=5.0,
        status=OrderStatus.WORKING,
        submitted_ts=NOW,
        updated_ts=NOW,
    ),
    Fill: dict(
        fill_id="x-f1", client_order_id="x", symbol="AAA", side=Side.BUY, quantity=5.0, price=100.0, fee=0.1, ts=NOW
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    n = parser.parse_args().n
    print(f"µs per object, best of 3 x {n:,}")
    print(f"{'contract':<14}{'strict':>10}{'lax':>10}{'unchecked':>11}")
    for cls, values in CASES.items():

        def best(fn):
            return min(timeit.repeat(fn, number=n, repeat=3)) / n * 1e6

        strict = best(lambda cls=cls, values=values: cls.strict(**values))
        lax = best(lambda cls=cls, values=values: cls(**values))
        unchecked = best(lambda cls=cls, values=values: cls.model_construct(**values))
        print(f"{cls.__name__:<14}{strict:>10.2f}{lax:>10.2f}{unchecked:>11.2f}")


if __name__ == "__main__":
    main()
