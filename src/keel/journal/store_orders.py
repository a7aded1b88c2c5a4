"""Orders, fills and approvals: the intent store's rows of what was sent and what came back (a mixin of
`IntentStore`, working on its connection and its buffer)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select

from keel.domain.base import json_ts
from keel.domain.decisions import ApprovalDecision, ApprovalMode
from keel.domain.errors import JournalIntegrityError
from keel.domain.intents import Side
from keel.domain.orders import Fill, Order, OrderFacts, order_facts
from keel.journal import schema as s
from keel.journal.records import ApprovalRecord, FillRow
from keel.journal.schema import from_iso, iso_from_json, to_iso

#: What an orders row's payload holds: the order's facts that its columns do not (journal format 4). A row written
#: before holds all of them; `facts_from_row` reads both.
PAYLOAD_ONLY = ("schema_version", "broker_order_id", "limit_price", "notional_cap", "price_band", "reject_reason")


def order_payload(facts: OrderFacts) -> str:
    """The payload column of an orders row: the facts the columns do not hold (the rest would be said twice)."""
    return orjson.dumps({k: facts[k] for k in PAYLOAD_ONLY}).decode()


def facts_from_row(row: Mapping[str, Any]) -> OrderFacts:
    """The order's facts (`keel.domain.orders.order_facts`, what the log's order events carry) from its row: the
    columns and the payload together, or, for a row written before journal format 4, the payload alone."""
    extra = orjson.loads(row["payload"])
    if "symbol" in extra:
        return extra
    return {
        "schema_version": extra["schema_version"],
        "client_order_id": row["client_order_id"],
        "broker_order_id": extra["broker_order_id"],
        "symbol": row["symbol"],
        "side": row["side"],
        "order_type": row["order_type"],
        "quantity": row["quantity"],
        "limit_price": extra["limit_price"],
        "notional_cap": extra["notional_cap"],
        "price_band": extra["price_band"],
        "status": row["status"],
        "filled_quantity": row["filled_quantity"],
        "average_price": row["average_price"],
        "fees": row["fees"],
        "submitted_ts": json_ts(from_iso(row["submitted_ts"])),
        "updated_ts": json_ts(from_iso(row["updated_ts"])),
        "reject_reason": extra["reject_reason"],
    }


class OrderRows:
    """Orders, fills and approvals of `IntentStore`."""

    def record_order(self, order: Order, *, intent_id: str, run_id: str) -> None:
        """Insert an order, or update its status, fills, average price, fees and timestamp if it is known."""
        self.record_order_facts(order_facts(order), intent_id=intent_id, run_id=run_id)

    def record_order_facts(self, facts: OrderFacts, *, intent_id: str, run_id: str) -> None:
        """`record_order` from the order's facts (its JSON form, `keel.domain.orders.order_facts`): the payload as it
        is, and the columns read from it, so the row is what the event carrying the same facts says."""
        if self._write_through:
            self._write_row(self._upsert_order, _order_row(facts, intent_id, run_id))
        else:
            self._orders[facts["client_order_id"]] = (facts, intent_id, run_id)

    def record_fill(self, fill: Fill, *, run_id: str) -> None:
        """Insert a fill; a fill id already recorded is ignored, so a re-reported fill is never counted twice."""
        row = {
            "fill_id": fill.fill_id,
            "client_order_id": fill.client_order_id,
            "run_id": run_id,
            "symbol": fill.symbol,
            "side": fill.side.value,
            "quantity": fill.quantity,
            "price": fill.price,
            "fee": fill.fee,
            "ts": to_iso(fill.ts),
        }
        if self._write_through:
            self._write_row(self._ins_fill, row)
        else:
            self._fills.setdefault(fill.fill_id, row)

    def orders(self, run_id: str | None = None) -> list[Order]:
        """Committed orders, by submission time then client order id."""
        o = s.orders
        stmt = select(*o.c).order_by(o.c.submitted_ts, o.c.client_order_id)
        if run_id is not None:
            stmt = stmt.where(o.c.run_id == run_id)
        return [Order.model_validate(facts_from_row(row)) for row in self._query(stmt)]

    def count_orders(self, run_id: str) -> int:
        """How many orders of a run are committed (without decoding them)."""
        o = s.orders
        return int(self._query(select(func.count().label("n")).where(o.c.run_id == run_id))[0]["n"])

    def orders_by_intent(self, run_id: str | None = None) -> dict[str, list[Order]]:
        """Committed orders grouped by the intent they were recorded for (reconciliation checks one per intent)."""
        o = s.orders
        stmt = select(*o.c).order_by(o.c.submitted_ts, o.c.client_order_id)
        if run_id is not None:
            stmt = stmt.where(o.c.run_id == run_id)
        grouped: dict[str, list[Order]] = {}
        for row in self._query(stmt):
            grouped.setdefault(row["intent_id"], []).append(Order.model_validate(facts_from_row(row)))
        return grouped

    def fills(self, run_id: str | None = None) -> list[Fill]:
        """Committed fills, by time then fill id, each validated as a `Fill`."""
        return [
            Fill(
                fill_id=r.fill_id,
                client_order_id=r.client_order_id,
                symbol=r.symbol,
                side=r.side,
                quantity=r.quantity,
                price=r.price,
                fee=r.fee,
                ts=r.ts,
            )
            for r in self.fill_rows(run_id)
        ]

    def fill_rows(self, run_id: str | None = None, *, pending: bool = False) -> list[FillRow]:
        """Committed fills, by time then fill id, as plain typed rows: what a report reading tens of thousands
        of fills needs, without building a model for each. A column of the wrong type still raises. `pending` adds
        the fills of the batch not committed yet (a replay commits in large batches; a decision inside one must see
        them); in write-through mode there are none."""
        rows = self._fill_rows(run_id)
        if not pending or not self._fills:
            return rows
        known = {r.fill_id for r in rows}
        for row in self._fills.values():
            if (run_id is None or row["run_id"] == run_id) and row["fill_id"] not in known:
                rows.append(
                    FillRow(
                        row["fill_id"],
                        row["client_order_id"],
                        row["symbol"],
                        Side(row["side"]),
                        float(row["quantity"]),
                        float(row["price"]),
                        float(row["fee"]),
                        from_iso(row["ts"]),
                    )
                )
        return sorted(rows, key=lambda r: (r.ts, r.fill_id))

    def _fill_rows(self, run_id: str | None) -> list[FillRow]:
        f = s.fills
        stmt = select(f.c.fill_id, f.c.client_order_id, f.c.symbol, f.c.side, f.c.quantity, f.c.price, f.c.fee, f.c.ts)
        stmt = stmt.order_by(f.c.ts, f.c.fill_id)
        if run_id is not None:
            stmt = stmt.where(f.c.run_id == run_id)
        _, rows = self._tuples(stmt)
        side = Side
        try:
            return [
                FillRow(fid, coid, sym, side(sd), float(q), float(px), float(fee), from_iso(ts))
                for fid, coid, sym, sd, q, px, fee, ts in rows
            ]
        except (TypeError, ValueError) as exc:
            raise JournalIntegrityError(f"fills table: a row does not hold a valid fill ({exc})") from exc

    def record_approval(self, decision: ApprovalDecision, *, ts: datetime) -> None:
        """Record (or replace) the approval outcome of an intent: a pending approval is later approved, say."""
        row = {
            "intent_id": decision.intent_id,
            "mode": decision.mode.value,
            "outcome": decision.outcome,
            "approver": decision.approver,
            "reason": decision.reason.value if decision.reason is not None else None,
            "ts": to_iso(ts),
            "expires_ts": to_iso(decision.expires_at) if decision.expires_at is not None else None,
        }
        if self._write_through:
            self._write_row(self._upsert_approval, row)
        else:
            self._approvals[decision.intent_id] = row

    def approval(self, intent_id: str) -> ApprovalRecord | None:
        """The committed approval of an intent, if any."""
        rows = self._query(select(s.approvals).where(s.approvals.c.intent_id == intent_id))
        if not rows:
            return None
        row = rows[0]
        return ApprovalRecord(
            intent_id=row["intent_id"],
            mode=ApprovalMode(row["mode"]),
            outcome=row["outcome"],
            approver=row["approver"],
            reason=row["reason"],
            ts=from_iso(row["ts"]),
            expires_ts=from_iso(row["expires_ts"]) if row["expires_ts"] is not None else None,
        )


def _order_row(facts: OrderFacts, intent_id: str, run_id: str) -> dict[str, Any]:
    return {
        "client_order_id": facts["client_order_id"],
        "intent_id": intent_id,
        "run_id": run_id,
        "symbol": facts["symbol"],
        "side": facts["side"],
        "order_type": facts["order_type"],
        "quantity": facts["quantity"],
        "status": facts["status"],
        "filled_quantity": facts["filled_quantity"],
        "average_price": facts["average_price"],
        "fees": facts["fees"],
        "submitted_ts": stored_ts(facts["submitted_ts"]),
        "updated_ts": stored_ts(facts["updated_ts"]),
        "payload": order_payload(facts),
    }


_fromisoformat = datetime.fromisoformat


def stored_ts(text: str) -> str:
    """`iso_from_json(text)`: the storage form of a time an order's facts carry, exactly, and cheaply for the two
    spellings `json_ts` gives a UTC time (`…T12:34:56Z`, `…T12:34:56.123456Z`).

    A batch commit turns two of them into columns for every order, each a time no recent write converted, so the
    conversion caches rarely hold them and the `isoformat` behind a miss was most of an order row's cost. For those
    spellings the storage form is the same text with its fraction filled in and `Z` spelled `+00:00`. The text is still
    parsed, so a malformed time is refused as before; any other spelling takes `iso_from_json`.
    """
    n = len(text)
    if (
        (n == 20 or (n == 27 and text[19] == "."))
        and text[-1] == "Z"
        and text[4] == "-"
        and text[7] == "-"
        and text[10] == "T"
        and text[13] == ":"
        and text[16] == ":"
    ):
        _fromisoformat(text)  # validates: digits, ranges, a real date (raises ValueError as iso_from_json would)
        return text[:19] + ".000000+00:00" if n == 20 else text[:26] + "+00:00"
    return iso_from_json(text)
