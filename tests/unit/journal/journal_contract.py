"""The intent-store contract, written once and run against every backend, plus the helpers journal tests share.

Not collected by itself (no `test_` prefix). The journal conftests put this folder on `sys.path` (test folders are
not packages under `--import-mode=importlib`); `test_store_sqlite.py` and the PostgreSQL integration module
subclass `StoreContract`, each providing the `open_store` fixture (`open_store(write_through) -> IntentStore`,
every call a new connection to the same per-test database, as a second process would open it).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from keel.domain.decisions import ApprovalDecision, ApprovalMode, TradingState
from keel.domain.errors import IllegalTransition, InputError, JournalIntegrityError, StaleState, UnknownIntent
from keel.domain.intents import TRANSITIONS, IntentState, Leg, OrderType, Side, TradeIntent, make_intent_id
from keel.domain.orders import Fill, Order, OrderStatus
from keel.domain.reasons import ReasonCode
from keel.journal import DuplicateIntentConflict, DuplicateRun, IntentStore, RunStatus, UnknownRun

S = IntentState
T0 = datetime(2024, 1, 2, 9, 30, tzinfo=UTC)
RUN = "run-1"

OpenStore = Callable[[bool], IntentStore]

#: Every edge of the table, and every pair that is not one: generated, so the tests follow the table.
LEGAL_EDGES = [(a, b) for a in IntentState for b in IntentState if b in TRANSITIONS[a]]
ILLEGAL_PAIRS = [(a, b) for a in IntentState for b in IntentState if b not in TRANSITIONS[a]]
MODES = [pytest.param(True, id="write_through"), pytest.param(False, id="buffered")]


def make_intent(k: int = 0, *, run_id: str = RUN, quantity: float = 1.0, rationale: str = "") -> TradeIntent:
    """A valid intent whose id is derived like the runtime derives it; `k` makes it unique within a run."""
    ts = T0 + timedelta(seconds=k)
    return TradeIntent(
        intent_id=make_intent_id(run_id, "sma_cross", "BTC-USD", Side.BUY, ts, Leg.ENTRY),
        run_id=run_id,
        strategy_id="sma_cross",
        symbol="BTC-USD",
        side=Side.BUY,
        leg=Leg.ENTRY,
        quantity=quantity,
        reference_price=42_000.0,
        reference_ts=ts,
        decision_ts=ts,
        stop=41_000.0,
        rationale=rationale,
    )


def make_order(intent_id: str, *, status: OrderStatus = OrderStatus.FILLED, filled: float = 1.0) -> Order:
    return Order(
        client_order_id=intent_id,
        broker_order_id="b-" + intent_id[3:11],
        symbol="BTC-USD",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=1.0,
        status=status,
        filled_quantity=filled,
        average_price=42_010.0 if filled else None,
        fees=0.42 if filled else 0.0,
        submitted_ts=T0,
        updated_ts=T0 + timedelta(seconds=1),
    )


def path_to(target: IntentState) -> list[IntentState]:
    """The shortest sequence of states from `proposed` to `target` along the table (breadth-first)."""
    previous: dict[IntentState, IntentState | None] = {S.PROPOSED: None}
    queue = deque([S.PROPOSED])
    while queue:
        state = queue.popleft()
        for nxt in sorted(TRANSITIONS[state]):
            if nxt not in previous:
                previous[nxt] = state
                queue.append(nxt)
    path: list[IntentState] = []
    node: IntentState | None = target
    while node is not None:
        path.append(node)
        node = previous[node]
    return path[::-1]


def reachable_states() -> set[IntentState]:
    """Every state the table can reach from `proposed`."""
    seen, queue = {S.PROPOSED}, deque([S.PROPOSED])
    while queue:
        for nxt in TRANSITIONS[queue.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def drive(store: IntentStore, intent_id: str, target: IntentState) -> None:
    """Move an intent from `proposed` to `target` along the shortest legal path."""
    for k, (a, b) in enumerate(pairwise(path_to(target)), start=1):
        store.transition(intent_id, a, b, ts=T0 + timedelta(minutes=k), actor="driver")


class StoreContract:
    """Behaviour every backend must show. Subclasses provide `open_store`."""

    # -- the transition table ------------------------------------------------------------------------

    @pytest.mark.parametrize("write_through", MODES)
    @pytest.mark.parametrize(("source", "target"), LEGAL_EDGES, ids=lambda s: s.value)
    def test_every_legal_edge_moves_the_intent_and_records_it(
        self, open_store: OpenStore, write_through: bool, source: IntentState, target: IntentState
    ) -> None:
        store = open_store(write_through)
        intent = make_intent()
        store.create_intent(intent, ts=T0)
        drive(store, intent.intent_id, source)
        store.transition(intent.intent_id, source, target, ts=T0 + timedelta(hours=1), actor="x", reason="why")
        assert store.state(intent.intent_id) is target
        store.commit()
        record = store.get(intent.intent_id)
        assert record.state is target
        assert record.version == len(path_to(source)) + 1  # 1 at creation, +1 per transition
        assert record.last_reason == "why"
        last = store.transitions(intent.intent_id)[-1]
        assert (last.from_state, last.to_state, last.actor) == (source, target, "x")

    @pytest.mark.parametrize("write_through", MODES)
    @pytest.mark.parametrize("source", list(IntentState), ids=lambda s: s.value)
    def test_every_illegal_pair_raises_and_leaves_the_intent_untouched(
        self, open_store: OpenStore, write_through: bool, source: IntentState
    ) -> None:
        """One test per source state, trying every target the table does not allow from it."""
        store = open_store(write_through)
        intent = make_intent()
        store.create_intent(intent, ts=T0)
        drive(store, intent.intent_id, source)
        targets = [b for a, b in ILLEGAL_PAIRS if a is source]
        assert targets  # every state has at least itself as an illegal target
        not_refused = []
        for target in targets:
            try:
                store.transition(intent.intent_id, source, target, ts=T0, actor="x")
            except IllegalTransition as exc:
                assert intent.intent_id in str(exc) and f"{source.value} → {target.value}" in str(exc)
            else:
                not_refused.append(target.value)
        assert not_refused == []
        store.commit()
        assert store.state(intent.intent_id) is source
        assert len(store.transitions(intent.intent_id)) == len(path_to(source)) - 1

    # -- compare-and-set -----------------------------------------------------------------------------

    def test_cas_loses_when_state_moved_underneath(self, open_store: OpenStore) -> None:
        mine, theirs = open_store(True), open_store(True)
        intent = make_intent()
        mine.create_intent(intent, ts=T0)
        drive(mine, intent.intent_id, S.APPROVED)
        theirs.transition(intent.intent_id, S.APPROVED, S.EXECUTING, ts=T0, actor="worker-2")
        with pytest.raises(StaleState) as caught:
            mine.transition(intent.intent_id, S.APPROVED, S.EXECUTING, ts=T0, actor="worker-1")
        assert intent.intent_id in str(caught.value)
        assert "expected state approved, found executing" in str(caught.value)
        assert [t.actor for t in mine.transitions(intent.intent_id)][-1] == "worker-2"

    def test_two_workers_racing_for_the_same_intents_each_claim_a_disjoint_share(self, open_store: OpenStore) -> None:
        """Real concurrency: two connections in two threads claim `approved → executing` for the same intents.
        Every intent is claimed exactly once; the loser of each race gets `StaleState`, never a second claim."""
        setup = open_store(True)
        ids = []
        for k in range(12):
            intent = make_intent(k)
            setup.create_intent(intent, ts=T0)
            drive(setup, intent.intent_id, S.APPROVED)
            ids.append(intent.intent_id)
        stores = [open_store(True), open_store(True)]
        start = threading.Barrier(2)
        claimed: list[list[str]] = [[], []]
        errors: list[BaseException] = []

        def claim(worker: int) -> None:
            try:
                start.wait(timeout=10)
                for iid in ids:
                    try:
                        stores[worker].transition(iid, S.APPROVED, S.EXECUTING, ts=T0, actor=f"worker-{worker}")
                    except StaleState:
                        continue
                    claimed[worker].append(iid)
            except BaseException as exc:  # surfaced below: a thread must not swallow a failure
                errors.append(exc)

        threads = [threading.Thread(target=claim, args=(w,)) for w in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert errors == []
        assert sorted(claimed[0] + claimed[1]) == sorted(ids)
        assert not set(claimed[0]) & set(claimed[1])
        for iid in ids:
            assert [t.to_state for t in setup.transitions(iid)].count(S.EXECUTING) == 1

    def test_buffered_cas_is_judged_when_called_not_at_commit(self, open_store: OpenStore) -> None:
        store = open_store(False)
        intent = make_intent()
        store.create_intent(intent, ts=T0)
        store.transition(intent.intent_id, S.PROPOSED, S.APPROVED, ts=T0, actor="x")
        with pytest.raises(StaleState, match="expected state proposed, found approved"):
            store.transition(intent.intent_id, S.PROPOSED, S.BLOCKED, ts=T0, actor="x")
        store.commit()
        assert store.state(intent.intent_id) is S.APPROVED

    def test_buffered_cas_sees_intents_committed_by_an_earlier_batch_or_another_store(
        self, open_store: OpenStore
    ) -> None:
        other, store = open_store(True), open_store(False)
        intent = make_intent()
        other.create_intent(intent, ts=T0)
        store.transition(intent.intent_id, S.PROPOSED, S.PENDING_APPROVAL, ts=T0, actor="x")
        store.commit()
        store.transition(intent.intent_id, S.PENDING_APPROVAL, S.APPROVED, ts=T0, actor="x")
        store.commit()
        assert other.state(intent.intent_id) is S.APPROVED

    @pytest.mark.parametrize("write_through", MODES)
    def test_unknown_intent_id_raises_unknown_intent_naming_it(
        self, open_store: OpenStore, write_through: bool
    ) -> None:
        store = open_store(write_through)
        missing = make_intent(99).intent_id
        with pytest.raises(UnknownIntent, match=missing):
            store.state(missing)
        with pytest.raises(UnknownIntent, match=missing):
            store.transition(missing, S.PROPOSED, S.APPROVED, ts=T0, actor="x")
        with pytest.raises(UnknownIntent, match=missing):
            store.get(missing)
        assert UnknownIntent(missing).exit_code == 2

    # -- idempotent creation -------------------------------------------------------------------------

    @pytest.mark.parametrize("write_through", MODES)
    def test_duplicate_create_with_same_payload_returns_false_and_changes_nothing(
        self, open_store: OpenStore, write_through: bool
    ) -> None:
        store = open_store(write_through)
        intent = make_intent()
        assert store.create_intent(intent, ts=T0) is True
        assert store.create_intent(intent, ts=T0 + timedelta(hours=1)) is False  # same batch (buffered)
        store.commit()
        store.transition(intent.intent_id, S.PROPOSED, S.APPROVED, ts=T0, actor="x")
        store.commit()
        assert store.create_intent(intent, ts=T0 + timedelta(hours=2)) is False  # after commit
        store.commit()
        record = store.get(intent.intent_id)
        assert (record.state, record.version, record.created_ts) == (S.APPROVED, 2, T0)
        assert len(store.list_intents(run_id=RUN)) == 1

    @pytest.mark.parametrize("write_through", MODES)
    def test_duplicate_create_with_other_parameters_raises_conflict_naming_the_id(
        self, open_store: OpenStore, write_through: bool
    ) -> None:
        store = open_store(write_through)
        intent = make_intent()
        store.create_intent(intent, ts=T0)
        changed = intent.model_copy(update={"quantity": 2.0})
        with pytest.raises(DuplicateIntentConflict) as caught:
            store.create_intent(changed, ts=T0)
        assert intent.intent_id in str(caught.value)
        assert caught.value.differences == ["quantity"]
        assert isinstance(caught.value, InputError) and caught.value.exit_code == 2
        store.commit()
        with pytest.raises(DuplicateIntentConflict, match=intent.intent_id):
            store.create_intent(changed, ts=T0)
        assert store.get(intent.intent_id).intent.quantity == 1.0

    def test_duplicate_create_from_a_second_store_is_recognised(self, open_store: OpenStore) -> None:
        first, second = open_store(True), open_store(False)
        intent = make_intent()
        first.create_intent(intent, ts=T0)
        assert second.create_intent(intent, ts=T0) is False
        with pytest.raises(DuplicateIntentConflict):
            second.create_intent(intent.model_copy(update={"rationale": "other"}), ts=T0)

    # -- buffered batches ----------------------------------------------------------------------------

    def test_buffered_commit_writes_everything_in_call_order(self, open_store: OpenStore) -> None:
        store, reader = open_store(False), open_store(True)
        a, b = make_intent(1), make_intent(2)
        store.create_intent(a, ts=T0)
        store.transition(a.intent_id, S.PROPOSED, S.APPROVED, ts=T0 + timedelta(seconds=1), actor="approval")
        store.create_intent(b, ts=T0 + timedelta(seconds=2))
        store.transition(b.intent_id, S.PROPOSED, S.BLOCKED, ts=T0, actor="supervisor", reason="MAX_EXPOSURE")
        store.transition(a.intent_id, S.APPROVED, S.EXECUTING, ts=T0 + timedelta(seconds=3), actor="executor")
        store.record_order(
            make_order(a.intent_id, status=OrderStatus.WORKING, filled=0.0), intent_id=a.intent_id, run_id=RUN
        )
        store.record_order(make_order(a.intent_id), intent_id=a.intent_id, run_id=RUN)
        store.record_fill(_fill(a.intent_id, "f-1"), run_id=RUN)
        store.transition(a.intent_id, S.EXECUTING, S.EXECUTED, ts=T0 + timedelta(seconds=4), actor="executor")
        store.save_checkpoint(RUN, 5, {"cash": 1.0}, ts=T0)
        store.set_head(RUN, 7, "ab" * 32)
        assert store.pending > 0
        assert reader.list_intents() == [] and reader.head(RUN) is None and reader.load_checkpoint(RUN) is None

        store.commit()
        assert store.pending == 0
        assert reader.intent_states(RUN) == {a.intent_id: S.EXECUTED, b.intent_id: S.BLOCKED}
        assert [(t.from_state, t.to_state) for t in reader.transitions(a.intent_id)] == [
            (S.PROPOSED, S.APPROVED),
            (S.APPROVED, S.EXECUTING),
            (S.EXECUTING, S.EXECUTED),
        ]
        # a and b were created in this batch: each row is inserted once, already in its latest state
        record = reader.get(a.intent_id)
        assert (record.version, record.updated_ts, record.intent) == (4, T0 + timedelta(seconds=4), a)
        assert (reader.get(b.intent_id).version, reader.get(b.intent_id).last_reason) == (2, "MAX_EXPOSURE")
        [order] = reader.orders(RUN)
        assert order.status is OrderStatus.FILLED  # the later upsert of the same order won
        assert [f.fill_id for f in reader.fills(RUN)] == ["f-1"]
        assert reader.load_checkpoint(RUN) == (5, {"cash": 1.0})
        assert reader.head(RUN) == (7, "ab" * 32)
        assert reader.reason_counts(RUN) == {"MAX_EXPOSURE": 1}

    def test_buffered_rollback_discards_the_whole_batch(self, open_store: OpenStore) -> None:
        store = open_store(False)
        kept, dropped = make_intent(1), make_intent(2)
        store.create_intent(kept, ts=T0)
        store.commit()
        store.transition(kept.intent_id, S.PROPOSED, S.APPROVED, ts=T0, actor="x")
        store.create_intent(dropped, ts=T0)
        store.save_checkpoint(RUN, 9, {}, ts=T0)
        store.rollback()
        assert store.pending == 0
        assert store.state(kept.intent_id) is S.PROPOSED
        with pytest.raises(UnknownIntent):
            store.state(dropped.intent_id)
        store.commit()
        assert store.intent_states(RUN) == {kept.intent_id: S.PROPOSED}
        assert store.load_checkpoint(RUN) is None
        # the discarded intent can be created again, and the kept one moved again
        assert store.create_intent(dropped, ts=T0) is True
        store.transition(kept.intent_id, S.PROPOSED, S.APPROVED, ts=T0, actor="x")
        store.commit()
        assert store.intent_states(RUN) == {kept.intent_id: S.APPROVED, dropped.intent_id: S.PROPOSED}

    def test_commit_aborts_whole_batch_when_another_store_moved_an_intent_underneath(
        self, open_store: OpenStore
    ) -> None:
        batch, other = open_store(False), open_store(True)
        moved, fresh = make_intent(1), make_intent(2)
        batch.create_intent(moved, ts=T0)
        batch.commit()
        batch.transition(moved.intent_id, S.PROPOSED, S.APPROVED, ts=T0, actor="replay")
        batch.transition(moved.intent_id, S.APPROVED, S.EXECUTING, ts=T0, actor="replay")
        batch.create_intent(fresh, ts=T0)
        batch.transition(fresh.intent_id, S.PROPOSED, S.SHADOWED, ts=T0, actor="replay")
        batch.set_head(RUN, 3, "cd" * 32)
        other.transition(moved.intent_id, S.PROPOSED, S.BLOCKED, ts=T0, actor="supervisor")

        with pytest.raises(JournalIntegrityError) as caught:
            batch.commit()
        assert moved.intent_id in str(caught.value)
        assert "expected proposed, found blocked" in str(caught.value)
        assert other.intent_states(RUN) == {moved.intent_id: S.BLOCKED}  # nothing half-written
        assert [t.actor for t in other.transitions(moved.intent_id)] == ["supervisor"]
        assert other.head(RUN) is None
        assert batch.pending == 0 and batch.state(moved.intent_id) is S.BLOCKED

    def test_commit_aborts_when_another_store_created_a_buffered_intent_first(self, open_store: OpenStore) -> None:
        batch, other = open_store(False), open_store(True)
        intent, sibling = make_intent(1), make_intent(2)
        batch.create_intent(intent, ts=T0)
        batch.create_intent(sibling, ts=T0)
        other.create_intent(intent, ts=T0)
        with pytest.raises(JournalIntegrityError, match="already existed"):
            batch.commit()
        assert other.intent_states(RUN) == {intent.intent_id: S.PROPOSED}

    # -- trading state -------------------------------------------------------------------------------

    def test_trading_state_is_active_with_reason_initial_when_nothing_was_written(self, open_store: OpenStore) -> None:
        record = open_store(True).trading_state()
        assert (record.state, record.reason, record.ts) == (TradingState.ACTIVE, "initial", None)

    def test_trading_state_commits_at_once_even_in_buffered_mode_and_another_store_sees_it(
        self, open_store: OpenStore
    ) -> None:
        store, operator_console = open_store(False), open_store(True)
        store.create_intent(make_intent(), ts=T0)  # a pending batch must not hold the kill switch back
        store.set_trading_state(TradingState.HALTED, reason="daily loss", actor="risk-bot", ts=T0)
        seen = operator_console.trading_state()
        assert (seen.state, seen.reason, seen.actor, seen.ts) == (TradingState.HALTED, "daily loss", "risk-bot", T0)
        store.rollback()
        assert operator_console.trading_state().state is TradingState.HALTED
        operator_console.set_trading_state(TradingState.ACTIVE, reason="cleared", actor="alice", ts=T0)
        assert store.trading_state().state is TradingState.ACTIVE  # read from the database, never cached

    def test_trading_state_change_without_reason_or_actor_is_refused(self, open_store: OpenStore) -> None:
        store = open_store(True)
        with pytest.raises(InputError):
            store.set_trading_state(TradingState.HALTED, reason=" ", actor="x", ts=T0)
        with pytest.raises(InputError):
            store.set_trading_state(TradingState.HALTED, reason="x", actor="", ts=T0)
        assert store.trading_state().state is TradingState.ACTIVE

    # -- runs, checkpoints, orders, approvals --------------------------------------------------------

    @pytest.mark.parametrize("write_through", MODES)
    def test_checkpoint_round_trips_and_the_last_save_wins(self, open_store: OpenStore, write_through: bool) -> None:
        store = open_store(write_through)
        assert store.load_checkpoint(RUN) is None
        store.save_checkpoint(RUN, 10, {"positions": {"BTC-USD": 0.5}, "cash": 99.5}, ts=T0)
        store.commit()
        assert store.load_checkpoint(RUN) == (10, {"positions": {"BTC-USD": 0.5}, "cash": 99.5})
        store.save_checkpoint(RUN, 20, {"cash": 1.0}, ts=T0 + timedelta(minutes=1))
        store.commit()
        assert store.load_checkpoint(RUN) == (20, {"cash": 1.0})

    @pytest.mark.parametrize("write_through", MODES)
    def test_run_is_started_at_once_and_finished_with_the_batch_it_summarises(
        self, open_store: OpenStore, write_through: bool
    ) -> None:
        store, reader = open_store(write_through), open_store(True)
        store.create_intent(make_intent(), ts=T0)  # a pending batch (buffered mode) does not hold the run rows back
        store.start_run(RUN, mode="replay", config_hash="abc", meta={"symbols": ["BTC-USD"]}, ts=T0)
        started = reader.get_run(RUN)
        assert started is not None and started.status is RunStatus.RUNNING and started.summary is None
        with pytest.raises(DuplicateRun, match=RUN):
            store.start_run(RUN, mode="replay", config_hash="abc", meta={}, ts=T0)
        store.finish_run(RUN, status="failed", summary={"error": "data"})
        if not write_through:
            # Buffered: the end of a run commits with its last batch, never before it (a crash in between would
            # leave a run marked finished without the events it summarises).
            store.rollback()
            assert reader.get_run(RUN).status is RunStatus.RUNNING
            store.finish_run(RUN, status="failed", summary={"error": "data"})
            store.commit()
        run = reader.get_run(RUN)
        assert run is not None
        assert (run.status, run.mode, run.config_hash, run.created_ts) == (RunStatus.FAILED, "replay", "abc", T0)
        assert run.meta == {"symbols": ["BTC-USD"]} and run.summary == {"error": "data"}
        with pytest.raises(UnknownRun):
            store.finish_run("nope", status=RunStatus.COMPLETE, summary={})

    @pytest.mark.parametrize("write_through", MODES)
    def test_order_is_upserted_by_client_order_id_and_a_repeated_fill_counts_once(
        self, open_store: OpenStore, write_through: bool
    ) -> None:
        store = open_store(write_through)
        iid = make_intent().intent_id
        store.record_order(make_order(iid, status=OrderStatus.WORKING, filled=0.0), intent_id=iid, run_id=RUN)
        store.commit()
        store.record_order(make_order(iid), intent_id=iid, run_id=RUN)
        store.record_fill(_fill(iid, "f-1"), run_id=RUN)
        store.record_fill(_fill(iid, "f-1"), run_id=RUN)
        store.commit()
        store.record_fill(_fill(iid, "f-1"), run_id=RUN)
        store.commit()
        assert store.orders(RUN) == [make_order(iid)]
        assert store.fills(RUN) == [_fill(iid, "f-1")]
        assert store.orders("other-run") == [] and store.fills() == [_fill(iid, "f-1")]
        assert store.orders_by_intent(RUN) == {iid: [make_order(iid)]}
        assert (store.count_orders(RUN), store.count_orders("other-run")) == (1, 0)
        [row] = store.fill_rows(RUN)
        assert row._asdict() == {k: v for k, v in _fill(iid, "f-1").model_dump().items() if k != "schema_version"}

    @pytest.mark.parametrize("write_through", MODES)
    def test_approval_is_recorded_and_replaced_by_the_later_outcome(
        self, open_store: OpenStore, write_through: bool
    ) -> None:
        store = open_store(write_through)
        iid = make_intent().intent_id
        pending = ApprovalDecision(
            intent_id=iid,
            mode=ApprovalMode.MANUAL,
            outcome="pending",
            approver="-",
            reason=ReasonCode.APPROVAL_PENDING,
            expires_at=T0 + timedelta(minutes=5),
        )
        store.record_approval(pending, ts=T0)
        store.record_approval(pending.model_copy(update={"outcome": "approved", "approver": "alice"}), ts=T0)
        store.commit()
        record = store.approval(iid)
        assert record is not None
        assert (record.outcome, record.approver, record.reason) == ("approved", "alice", "APPROVAL_PENDING")
        assert record.expires_ts == T0 + timedelta(minutes=5)
        assert store.approval("it-" + "0" * 24) is None

    def test_head_round_trips_and_is_absent_for_an_unknown_log(self, open_store: OpenStore) -> None:
        store = open_store(True)
        assert store.head(RUN) is None
        store.set_head(RUN, 1, "0f" * 32)
        store.set_head(RUN, 2, "1e" * 32)
        assert store.head(RUN) == (2, "1e" * 32)

    # -- reads ---------------------------------------------------------------------------------------

    def test_listing_counts_and_reasons_reflect_committed_intents(self, open_store: OpenStore) -> None:
        store = open_store(True)
        intents = [make_intent(k) for k in range(4)] + [make_intent(0, run_id="run-2")]
        for intent in intents:
            store.create_intent(intent, ts=T0 + timedelta(seconds=intents.index(intent)))
        store.transition(intents[0].intent_id, S.PROPOSED, S.BLOCKED, ts=T0, actor="s", reason="MAX_EXPOSURE")
        store.transition(intents[1].intent_id, S.PROPOSED, S.BLOCKED, ts=T0, actor="s", reason="MAX_EXPOSURE")
        drive(store, intents[2].intent_id, S.PENDING_APPROVAL)
        store.transition(
            intents[2].intent_id, S.PENDING_APPROVAL, S.REJECTED, ts=T0, actor="bob", reason="APPROVAL_REJECTED"
        )
        assert store.counts_by_state(RUN) == {"blocked": 2, "proposed": 1, "rejected": 1}
        assert store.reason_counts(RUN) == {"APPROVAL_REJECTED": 1, "MAX_EXPOSURE": 2}
        assert [r.intent.intent_id for r in store.list_intents(run_id=RUN)] == [i.intent_id for i in intents[:4]]
        assert [r.intent.intent_id for r in store.list_intents(state=S.BLOCKED, limit=1)] == [intents[0].intent_id]
        assert store.list_intents(run_id="run-2")[0].intent == intents[4]

    def test_naive_timestamp_is_refused_before_anything_is_written(self, open_store: OpenStore) -> None:
        store = open_store(True)
        with pytest.raises(InputError, match="time zone"):
            store.create_intent(make_intent(), ts=datetime(2024, 1, 1))
        assert store.list_intents() == []


def _fill(intent_id: str, fill_id: str) -> Fill:
    return Fill(
        fill_id=fill_id,
        client_order_id=intent_id,
        symbol="BTC-USD",
        side=Side.BUY,
        quantity=1.0,
        price=42_010.0,
        fee=0.42,
        ts=T0 + timedelta(seconds=1),
    )
