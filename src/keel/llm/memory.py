"""Decision memory: what became of the models' earlier advice in this run, shown to them again as a bounded block.

With `llm.memory.enabled` the strategist's and the critic's contexts carry a `memory` block (`memory/1`): the last
`llm.memory.max_items` closed trades of the run that a model advised on, each with its outcome (PnL %, MAE/MFE %, how
it ended) and, when the critic model reviewed it, whether it objected and whether the objection proved right.

Everything in it is computed from the run's own journal, nothing is stored apart:

- **trades** are the round trips of the run's journalled fills (committed, and the batch not yet committed), by the
  rule of the run's report (`keel.backtest.report.round_trips`): a trade opens with the first buy fill of a flat
  symbol and closes when the symbol is flat again; its entry intent is that first fill's order;
- **advice** is what the models said about those entry intents: the strategist model chose it (its intent carries
  the `llm:` evidence tag) and the critic model's verdict (its `llm.call` event). It is noted as the answers are used;
  a resumed run first reads it back from the journal's committed records;
- **no look-ahead**: only trades whose exit fill is *before* the decision bar enter the block. A trade that closes at
  the decision bar (its exit filled at that bar's open) or later does not; its excursions are measured over the bars
  it was held, all of them before its exit.

The block is part of the prompt's context, so a request's key (and a cassette's) covers it: a replay with memory is
as deterministic as one without. A REJECT blocked its entry, so what the trade would have made is unknown: rejected
entries are counted, never scored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.backtest.report import round_trips
from keel.data.frame import OHLCV, datetime_to_ns, ns_to_datetime
from keel.domain.run import Trade
from keel.journal.records import FillRow
from keel.journal.schema import from_iso
from keel.research.scorecard import excursions

if TYPE_CHECKING:
    from keel.runtime.context import RunContext

VERSION = "memory/1"
#: where a run keeps its ledger of advice (`RunContext.extras`)
EXTRAS_KEY = "llm.memory"
#: the evidence tag the strategist model's chosen intents carry (`keel.llm.roles.advise_entries`)
STRATEGIST_TAG = "llm:"
REJECT = "REJECT"
OBJECTION = "APPROVE_WITH_CHANGES"
REJECTED_OUTCOME = "unknown: a rejected entry was not traded"


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """One round trip of the journalled fills, with the intent that opened it."""

    symbol: str
    entry_intent_id: str
    entry_ns: int
    exit_ns: int
    quantity: float
    entry_price: float
    exit_price: float
    pnl: float  # net of fees
    fees: float
    exit_leg: str


def closed_trades(fills: Sequence[FillRow], legs: Mapping[str, str]) -> list[ClosedTrade]:
    """The closed round trips of `fills` (in time order), by the report's rule (`round_trips`), keeping the entry's
    intent id. `legs` (intent id → leg) names how each ended."""
    return [
        ClosedTrade(
            symbol=t["symbol"],
            entry_intent_id=t["entry_id"],
            entry_ns=_ns(t["entry_ts"]),
            exit_ns=_ns(t["exit_ts"]),
            quantity=t["quantity"],
            entry_price=t["entry_price"],
            exit_price=t["exit_price"],
            pnl=t["pnl"],
            fees=t["fees"],
            exit_leg=t["exit_leg"],
        )
        for t in round_trips(fills, legs, entry_ids=True)
    ]


@dataclass(slots=True)
class Advised:
    """What the models said about one entry intent."""

    symbol: str
    decided_ns: int
    strategist: bool = False  # the strategist model chose it (and its size)
    critic: str | None = None  # the critic model's verdict; None: no critic model reviewed it


@dataclass(slots=True)
class AdviceLedger:
    """Entry intent id → the models' advice about it, in the order it was given."""

    advised: dict[str, Advised] = field(default_factory=dict)
    _block: tuple[int, dict[str, Any]] | None = None  # the last block built (the strategist and critic share a bar)

    def note_strategist(self, intent_id: str, symbol: str, decided_ns: int) -> None:
        self._entry(intent_id, symbol, decided_ns).strategist = True
        self._block = None

    def note_critic(self, intent_id: str, symbol: str, decided_ns: int, verdict: str) -> None:
        self._entry(intent_id, symbol, decided_ns).critic = verdict
        self._block = None

    def _entry(self, intent_id: str, symbol: str, decided_ns: int) -> Advised:
        found = self.advised.get(intent_id)
        if found is None:
            found = self.advised[intent_id] = Advised(symbol, decided_ns)
        return found

    def seed(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Read back the advice a journal's records hold (a resumed run): the strategist model's intents by their
        evidence tag, the critic model's verdicts from its `llm.call` events."""
        for r in records:
            payload = r.get("payload")
            if not isinstance(payload, Mapping):
                continue
            if r.get("event") == "intent.proposed":
                intent = payload.get("intent") or {}
                if intent.get("leg") == "entry" and any(
                    str(e).startswith(STRATEGIST_TAG) for e in intent.get("evidence_ids") or ()
                ):
                    self.note_strategist(str(intent["intent_id"]), str(intent["symbol"]), _ns(str(r["ts"])))
            elif r.get("event") == "llm.call" and payload.get("stage") == "critic_llm" and payload.get("used"):
                about = payload.get("about") or {}
                ids, symbols = about.get("intent_ids") or [], about.get("symbols") or []
                if ids and symbols and payload.get("verdict"):
                    self.note_critic(str(ids[0]), str(symbols[0]), _ns(str(r["ts"])), str(payload["verdict"]))


def memory_block(
    trades: Sequence[ClosedTrade],
    advised: Mapping[str, Advised],
    *,
    decision_ns: int,
    max_items: int,
    bars: Mapping[str, OHLCV],
) -> dict[str, Any]:
    """The `memory/1` block for a decision at `decision_ns`: the last `max_items` model-advised trades that closed
    before it (oldest first), and how many entries the critic model rejected before it."""
    if max_items < 1:
        raise ValueError(f"max_items must be at least 1, got {max_items}")
    eligible = [t for t in trades if t.exit_ns < decision_ns and t.entry_intent_id in advised]
    eligible.sort(key=lambda t: (t.exit_ns, t.entry_intent_id))
    last = eligible[-max_items:]
    held = [
        Trade(
            symbol=t.symbol,
            entry_ts=ns_to_datetime(t.entry_ns).isoformat(),
            exit_ts=ns_to_datetime(t.exit_ns).isoformat(),
            quantity=t.quantity,
            entry_price=t.entry_price,
            exit_price=t.exit_price,
            pnl=t.pnl,
            fees=t.fees,
            exit_leg=t.exit_leg,
        )
        for t in last
    ]
    items = [
        _item(t, h, x, advised[t.entry_intent_id]) for t, h, x in zip(last, held, excursions(held, bars), strict=True)
    ]
    rejected = sum(1 for a in advised.values() if a.critic == REJECT and a.decided_ns < decision_ns)
    return {
        "version": VERSION,
        "as_of": ns_to_datetime(decision_ns).isoformat(),
        "max_items": max_items,
        "trades": items,
        "critic_rejected": {"count": rejected, "outcome": REJECTED_OUTCOME},
    }


def _item(t: ClosedTrade, held: Trade, x: Any, advice: Advised) -> dict[str, Any]:
    notional = t.quantity * t.entry_price
    objected = advice.critic == OBJECTION
    return {
        "symbol": t.symbol,
        "side": "long",
        "entry_ts": held.entry_ts,
        "exit_ts": held.exit_ts,
        "pnl_pct": _r(t.pnl / notional * 100.0) if notional > 0 else None,
        "mae_pct": _r(x.mae_pct) if x is not None else None,
        "mfe_pct": _r(x.mfe_pct) if x is not None else None,
        "exit_leg": t.exit_leg,
        "advised_by": [r for r, on in (("strategist", advice.strategist), ("critic", advice.critic)) if on],
        "critic_verdict": advice.critic,
        "critic_objected": objected,
        # an objection (approve with changes) proved right when the trade lost money, net of fees
        "objection_proved_right": (t.pnl < 0) if objected else None,
    }


# -- in a run -------------------------------------------------------------------------------------------------------


def enabled(ctx: RunContext) -> bool:
    return ctx.settings.llm.memory.enabled


def ledger(ctx: RunContext) -> AdviceLedger:
    """The run's ledger, created on first use from the journal's committed records (empty unless resumed)."""
    found = ctx.extras.get(EXTRAS_KEY)
    if found is None:
        found = ctx.extras[EXTRAS_KEY] = AdviceLedger()
        found.seed(_committed_records(ctx))
    return found


def block_for(ctx: RunContext, decision_ns: int) -> dict[str, Any]:
    """The memory block of a decision at `decision_ns` in this run (built once per bar)."""
    book = ledger(ctx)
    if book._block is not None and book._block[0] == decision_ns:
        return book._block[1]
    store = ctx.journal.store
    # the batch a replay has not committed yet holds the latest fills: the decision must see them
    trades = closed_trades(store.fill_rows(ctx.run_id, pending=True), store.intent_legs(ctx.run_id, pending=True))
    bars = {s: v.bars for s, v in ctx.market.views.items()}
    block = memory_block(
        trades, book.advised, decision_ns=decision_ns, max_items=ctx.settings.llm.memory.max_items, bars=bars
    )
    book._block = (decision_ns, block)
    return block


def _committed_records(ctx: RunContext) -> Iterator[Mapping[str, Any]]:
    from keel.journal.eventlog import iter_records

    head = ctx.journal.committed_head[0]
    path = Path(ctx.journal.log.path)
    if head <= 0 or not path.exists():
        return iter(())
    return (r for r in iter_records(path, upto_seq=head) if r.get("run_id") == ctx.run_id)


def _ns(iso: str) -> int:
    return datetime_to_ns(from_iso(iso))


def _r(x: float) -> float | None:
    return round(float(x), 6) if math.isfinite(float(x)) else None
