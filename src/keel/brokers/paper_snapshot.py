"""Snapshots of the paper broker: everything needed to rebuild it after a crash, as JSON-native values.

A restore must rebuild the same broker or refuse: under another configuration (fees, caps) it would silently diverge
from the run it continues, so the snapshot carries its configuration and a restore checks it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keel.brokers.paper_records import OrderRecord, PositionRecord, RequestRecord
from keel.domain.errors import BrokerError
from keel.domain.orders import Order, OrderRequest, OrderStatus

if TYPE_CHECKING:
    from keel.brokers.paper import PaperBroker

SNAPSHOT_KIND = "keel.paper_broker"
SNAPSHOT_VERSION = 1
#: Default of `restore`'s configuration arguments: take the value the snapshot recorded.
_FROM_SNAPSHOT: Any = object()


class Snapshots:
    """The crash-recovery half of `PaperBroker` (a mixin: it works on the broker's own state)."""

    def snapshot(self, *, finished: bool = True) -> dict[str, Any]:
        """Everything needed to rebuild this broker, as JSON-native values (floats round-trip exactly).

        `finished=False` leaves out orders that can no longer change: a run that checkpoints often keeps those in
        its journal instead (each checkpoint then costs the open orders, not the whole history) and hands them
        back to `restore(finished_orders=...)`.
        """
        # Only orders that can still change, unless asked for all: a checkpoint must cost the open orders, not
        # the whole history (it runs many times over a long replay).
        kept = self._orders.values() if finished else [*self._open.values(), *self._silent]
        return {
            "kind": SNAPSHOT_KIND,
            "schema_version": SNAPSHOT_VERSION,
            "config": self._config(),
            "cash": self._cash,
            "fees_paid": self._fees_paid,
            "realized_pnl": self._realized,
            "next_id": self._next_id,
            "silent": [r.request.client_order_id for r in self._silent],
            "quotes": {s: {"ts": self._quote_ts[s].isoformat(), "price": p} for s, p in self._quote_px.items()},
            "positions": {
                s: {"quantity": p.quantity, "average_price": p.average_price, "realized_pnl": p.realized_pnl}
                for s, p in self._positions.items()
            },
            "orders": [
                {
                    "request": r.request.to_json(),
                    "broker_order_id": r.broker_order_id,
                    "status": r.status.value,
                    "unit_cost": r.unit_cost,
                    "submitted_ts": r.submitted_ts.isoformat(),
                    "updated_ts": r.updated_ts.isoformat(),
                    "reject_reason": r.reject_reason,
                    "filled": r.filled,
                    "cost": r.cost,
                    "fees": r.fees,
                    "fills": r.fills,
                }
                for r in kept
            ],
        }

    @classmethod
    def restore(
        cls,
        snapshot: dict[str, Any],
        *,
        cash: float = _FROM_SNAPSHOT,
        fees_bps: float = _FROM_SNAPSHOT,
        slippage_bps: float = _FROM_SNAPSHOT,
        participation_cap: float | None = _FROM_SNAPSHOT,
        name: str = _FROM_SNAPSHOT,
        finished_orders: Iterable[Order] = (),
    ) -> PaperBroker:
        """Rebuild a broker from `snapshot()`. Configuration not given is taken from the snapshot; what is given
        must match it, because a restore under other fees or caps would silently diverge from the run it continues.
        `finished_orders` (from the journal) are remembered so their client order ids are never filled again.
        """
        try:
            if snapshot["kind"] != SNAPSHOT_KIND or snapshot["schema_version"] != SNAPSHOT_VERSION:
                raise BrokerError(
                    f"not a paper broker snapshot v{SNAPSHOT_VERSION}: "
                    f"{snapshot['kind']!r} v{snapshot['schema_version']!r}"
                )
            saved = snapshot["config"]
            given = {
                "cash": cash,
                "fees_bps": fees_bps,
                "slippage_bps": slippage_bps,
                "participation_cap": participation_cap,
                "name": name,
                "no_volume": _FROM_SNAPSHOT,
            }
            broker = cls(**{k: saved[k] if v is _FROM_SNAPSHOT else v for k, v in given.items()})
            if saved != broker._config():
                raise BrokerError(
                    "snapshot was taken under another broker configuration",
                    hint=f"restore with {snapshot['config']}",
                )
            broker._load(snapshot)
            for order in finished_orders:
                if order.client_order_id not in broker._orders and not order.status.is_open:
                    broker._settled[order.client_order_id] = order
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BrokerError(f"paper broker snapshot is malformed: {exc!r}") from exc
        return broker

    def _config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cash": self._initial_cash,
            "fees_bps": self._fees_bps,
            "slippage_bps": self._slippage_bps,
            "participation_cap": self._participation,
            "no_volume": sorted(self._no_volume),
        }

    def _load(self, snap: dict[str, Any]) -> None:
        self._cash = float(snap["cash"])
        self._fees_paid = float(snap["fees_paid"])
        self._realized = float(snap["realized_pnl"])
        self._next_id = int(snap["next_id"])
        for s, q in snap["quotes"].items():
            self._quote_px[s] = float(q["price"])
            self._quote_ts[s] = datetime.fromisoformat(q["ts"])
        for s, p in snap["positions"].items():
            self._positions[s] = PositionRecord(
                float(p["quantity"]), float(p["average_price"]), float(p["realized_pnl"])
            )
        for o in snap["orders"]:
            request = OrderRequest.model_validate(o["request"])
            rec = OrderRecord(
                RequestRecord(request),
                o["broker_order_id"],
                status=OrderStatus(o["status"]),
                unit_cost=float(o["unit_cost"]),
                submitted_ts=datetime.fromisoformat(o["submitted_ts"]),
                updated_ts=datetime.fromisoformat(o["updated_ts"]),
                reject_reason=o["reject_reason"],
                filled=float(o["filled"]),
                cost=float(o["cost"]),
                fees=float(o["fees"]),
                fills=int(o["fills"]),
            )
            self._orders[request.client_order_id] = rec
            if rec.status.is_open:
                self._open[request.client_order_id] = rec
                self._by_symbol.setdefault(request.symbol, []).append(rec)
        self._silent = [self._orders[c] for c in snap["silent"]]
