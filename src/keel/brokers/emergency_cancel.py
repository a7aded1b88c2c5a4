"""The kill function's subset: cancel, at the venue, every open order of some markets or of one session (RTS 6
art. 12: "any or all of its unexecuted orders"), without halting the rest.

It talks to the venue directly, not through a session: a session that hangs, or whose process is gone, cannot keep
an order resting. A session whose order it cancelled reads the order's end at its next bar, as any cancel the venue
reports (an owed exit is proposed again; an entry is not). It verifies itself: the venue is asked again, and an order
still open after `ATTEMPTS` rounds is reported, never called cancelled. To stop a subset from trading again, halt
(`keel kill`): the trading state is one for the whole runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keel.brokers.base import Broker
    from keel.domain.orders import Order

#: cancel rounds before what is still open is reported
ATTEMPTS = 3


@dataclass(frozen=True)
class CancelReport:
    """What a subset cancel found and did: client order ids, each sorted."""

    matched: tuple[str, ...]  # open orders of the subset when it started
    cancelled: tuple[str, ...]  # those the venue reported cancelled (or already ended)
    still_open: tuple[str, ...]  # still open after every round: escalate
    attempts: int

    @property
    def ok(self) -> bool:
        return not self.still_open

    def as_dict(self) -> dict[str, Any]:
        return {
            "matched": list(self.matched),
            "cancelled": list(self.cancelled),
            "still_open": list(self.still_open),
            "attempts": self.attempts,
            "ok": self.ok,
        }


def cancel_subset(
    broker: Broker,
    *,
    symbols: Collection[str] | None = None,
    owned: Callable[[str], bool] | None = None,
) -> CancelReport:
    """Cancel every open order of the `symbols` (None: every market of the broker) whose client order id `owned`
    accepts (None: whoever sent it), then ask the venue again, up to `ATTEMPTS` rounds."""

    def subset() -> list[Order]:
        return [
            o
            for o in broker.open_orders()
            if (symbols is None or o.symbol in symbols) and (owned is None or owned(o.client_order_id))
        ]

    first = subset()
    matched = {o.client_order_id for o in first}
    cancelled: set[str] = set()
    still, attempts = first, 0
    while still and attempts < ATTEMPTS:
        attempts += 1
        for order in still:
            done = broker.cancel(order.client_order_id)
            if done is None or not done.status.is_open:  # None: the venue no longer has it open
                cancelled.add(order.client_order_id)
        still = subset()
        matched |= {o.client_order_id for o in still}  # one that arrived meanwhile is part of the subset too
    left = {o.client_order_id for o in still}
    return CancelReport(tuple(sorted(matched)), tuple(sorted(cancelled - left)), tuple(sorted(left)), attempts)
