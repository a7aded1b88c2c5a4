"""Run folders written through the journal's own API, as the runtime writes them: one that obeys every gate, and,
step by step, ones that break one. Not collected by itself (no `test_` prefix)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from keel.domain.intents import IntentState, Leg, Side, TradeIntent, make_intent_id
from keel.domain.orders import Fill, Order, OrderStatus
from keel.journal import Journal, RunStatus

S = IntentState
T0 = datetime(2024, 1, 2, 9, 30, tzinfo=UTC)
PASSED = {"kill_switch": "pass", "max_order_notional": "pass", "max_open_positions": "pass"}


class RunBuilder:
    """One run folder (`events.jsonl` and `keel.db`), written as a session or a replay writes one."""

    def __init__(self, folder: Path, *, mode: str = "paper", run_id: str = "run-exam0000000001") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.run_id, self.mode = folder, run_id, mode
        self.journal = Journal.open(
            url=f"sqlite:///{folder / 'keel.db'}", log_path=folder / "events.jsonl", log_id=run_id, write_through=True
        )
        self.journal.store.transition_rows = True
        self.k = 0
        self.orders = 0
        meta = {"run_id": run_id, "journal_format": 3, "transition_rows": True, "mode": mode}
        self.journal.store.start_run(run_id, mode=mode, config_hash=run_id, meta=meta, ts=T0)
        self.journal.event("runtime", "run.started", meta, ts=T0, run_id=run_id)

    def now(self) -> datetime:
        return T0 + timedelta(minutes=self.k)

    def intent(
        self,
        symbol: str = "AAA",
        *,
        quantity: float = 10.0,
        price: float = 100.0,
        leg: Leg = Leg.ENTRY,
        strategy: str = "sma_cross",
    ) -> TradeIntent:
        self.k += 1
        side = Side.BUY if leg is Leg.ENTRY else Side.SELL
        ts = self.now()
        intent = TradeIntent(
            intent_id=make_intent_id(self.run_id, strategy, symbol, side, ts, leg),
            run_id=self.run_id,
            strategy_id=strategy,
            symbol=symbol,
            side=side,
            leg=leg,
            quantity=quantity,
            reference_price=price,
            reference_ts=ts,
            decision_ts=ts,
            stop=None,
        )
        self.journal.create_intent(intent, ts=ts, stage="strategist")
        return intent

    def _step(
        self, intent: TradeIntent, src: S, dst: S, *, actor: str, stage: str, reason: str | None = None, **detail
    ) -> None:
        self.journal.transition(
            intent.intent_id,
            src,
            dst,
            ts=self.now(),
            actor=actor,
            reason=reason,
            stage=stage,
            run_id=self.run_id,
            detail=detail or None,
        )

    def approve(self, intent: TradeIntent, actor: str = "alice", *, kill_switch: str = "pass") -> None:
        """The supervisor allows it (its checks recorded), it waits for a person, `actor` approves it."""
        checks = {**PASSED, "kill_switch": kill_switch}
        if actor == "auto-policy" or intent.leg is not Leg.ENTRY:
            self._step(
                intent,
                S.PROPOSED,
                S.APPROVED,
                actor=actor,
                stage="approval",
                checks=checks,
                approved_quantity=intent.quantity,
                approved_notional=None,
            )
            return
        self._step(
            intent,
            S.PROPOSED,
            S.PENDING_APPROVAL,
            actor="approval",
            stage="approval",
            reason="APPROVAL_PENDING",
            checks=checks,
            approved_quantity=intent.quantity,
            approved_notional=None,
            would_auto_approve=True,
        )
        self._step(intent, S.PENDING_APPROVAL, S.APPROVED, actor=actor, stage="approval", decided_by=actor)

    def block(self, intent: TradeIntent, reason: str) -> None:
        self._step(
            intent,
            S.PROPOSED,
            S.BLOCKED,
            actor="supervisor",
            stage="supervisor",
            reason=reason,
            checks={"kill_switch": reason if reason == "KILL_SWITCH_ACTIVE" else "pass"},
        )

    def order(self, intent: TradeIntent, *, broker_id: str | None = None, filled: bool = False) -> Order:
        self.orders += 1
        return Order(
            client_order_id=intent.intent_id,
            broker_order_id=broker_id or f"paper-{self.orders}",
            symbol=intent.symbol,
            side=intent.side,
            order_type=intent.order_type,
            quantity=intent.quantity,
            status=OrderStatus.FILLED if filled else OrderStatus.WORKING,
            filled_quantity=intent.quantity if filled else 0.0,
            average_price=intent.reference_price if filled else None,
            submitted_ts=self.now(),
            updated_ts=self.now(),
        )

    def send(self, intent: TradeIntent, *, fill: bool = True) -> Order:
        """`approved → executing → executed` with the order as the broker took it, then (by default) its fill."""
        self._step(intent, S.APPROVED, S.EXECUTING, actor="executor", stage="executor")
        working = self.order(intent)
        facts = working.model_dump(mode="json")
        with self.journal.atomic():
            self._step(
                intent,
                S.EXECUTING,
                S.EXECUTED,
                actor="executor",
                stage="executor",
                broker_order_id=working.broker_order_id,
                order=facts,
            )
            self.journal.store.record_order_facts(facts, intent_id=intent.intent_id, run_id=self.run_id)
        if fill:
            self.fill(intent, working)
        return working

    def fill(self, intent: TradeIntent, working: Order) -> None:
        done = working.model_copy(
            update={
                "status": OrderStatus.FILLED,
                "filled_quantity": intent.quantity,
                "average_price": intent.reference_price,
            }
        )
        fill = Fill(
            fill_id=f"{intent.intent_id}-f1",
            client_order_id=intent.intent_id,
            symbol=intent.symbol,
            side=intent.side,
            quantity=intent.quantity,
            price=intent.reference_price,
            fee=0.0,
            ts=self.now(),
        )
        payload = {
            "client_order_id": intent.intent_id,
            "fill_id": fill.fill_id,
            "symbol": intent.symbol,
            "side": intent.side.value,
            "quantity": intent.quantity,
            "price": intent.reference_price,
            "fee": 0.0,
            "order_status": "filled",
        }
        self.journal.order_event("monitor", "order.fill", done, payload, ts=self.now(), run_id=self.run_id, fill=fill)

    def event(self, stage: str, event: str, **payload) -> None:
        self.journal.event(stage, event, payload, ts=self.now(), run_id=self.run_id)

    def trade(self, symbol: str = "AAA", actor: str = "alice", **kw) -> TradeIntent:
        """An entry proposed, approved by `actor`, sent and filled."""
        intent = self.intent(symbol, **kw)
        self.approve(intent, actor)
        self.send(intent)
        return intent

    def close_position(self, symbol: str = "AAA", **kw) -> TradeIntent:
        intent = self.intent(symbol, leg=Leg.EXIT, **kw)
        self.approve(intent, "auto-policy")
        self.send(intent)
        return intent

    def finish(self) -> Path:
        summary = {"run_id": self.run_id, "mode": self.mode}
        with self.journal.atomic():
            self.journal.event("reporter", "run.finished", summary, ts=self.now(), run_id=self.run_id)
            self.journal.store.finish_run(self.run_id, status=RunStatus.COMPLETE, summary=summary)
        self.journal.commit()
        self.journal.close()
        return self.folder
