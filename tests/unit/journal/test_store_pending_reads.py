"""The store's reads of the batch not committed yet (`pending=True`): what a decision inside a replay's batch sees of
the fills and intents written before it, while every other reader sees only what is committed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from journal_contract import RUN, T0, OpenStore, make_intent

from keel.domain.intents import Side
from keel.domain.orders import Fill


def fill(intent_id: str, fill_id: str, seconds: int, side: Side = Side.BUY) -> Fill:
    return Fill(
        fill_id=fill_id,
        client_order_id=intent_id,
        symbol="BTC-USD",
        side=side,
        quantity=1.0,
        price=42_000.0 + seconds,
        fee=0.5,
        ts=T0 + timedelta(seconds=seconds),
    )


def test_pending_reads_add_the_open_batch_in_order_and_committed_reads_do_not(open_store: OpenStore) -> None:
    store = open_store(False)  # buffered, as a replay
    first, second = make_intent(1), make_intent(2)
    store.create_intent(first, ts=T0)
    store.record_fill(fill(first.intent_id, "f-2", 20), run_id=RUN)
    store.commit()
    store.create_intent(second, ts=T0)
    store.record_fill(fill(second.intent_id, "f-1", 10, Side.SELL), run_id=RUN)  # earlier, still in the batch
    store.record_fill(fill(second.intent_id, "f-3", 30), run_id="run-other")
    assert [r.fill_id for r in store.fill_rows(RUN)] == ["f-2"]
    pending = store.fill_rows(RUN, pending=True)
    assert [(r.fill_id, r.side, r.price, r.ts) for r in pending] == [
        ("f-1", Side.SELL, 42_010.0, T0 + timedelta(seconds=10)),
        ("f-2", Side.BUY, 42_020.0, T0 + timedelta(seconds=20)),
    ]
    assert [r.fill_id for r in store.fill_rows(pending=True)] == ["f-1", "f-2", "f-3"]
    assert store.intent_legs(RUN) == {first.intent_id: "entry"}
    assert store.intent_legs(RUN, pending=True) == {first.intent_id: "entry", second.intent_id: "entry"}
    store.commit()
    assert store.fill_rows(RUN) == store.fill_rows(RUN, pending=True) == pending


@pytest.mark.parametrize("write_through", [True, False])
def test_a_fill_in_both_the_batch_and_the_table_is_read_once(open_store: OpenStore, write_through: bool) -> None:
    store = open_store(write_through)
    intent = make_intent(1)
    store.create_intent(intent, ts=T0)
    store.record_fill(fill(intent.intent_id, "f-1", 10), run_id=RUN)
    store.commit()
    store.record_fill(fill(intent.intent_id, "f-1", 10), run_id=RUN)  # re-reported: ignored on commit
    assert [r.fill_id for r in store.fill_rows(RUN, pending=True)] == ["f-1"]
