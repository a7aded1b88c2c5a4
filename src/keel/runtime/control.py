"""The control plane: where sessions read the trading state (the operator's kill switch).

Every process that trades or steers trading (a session, `keel kill`, `reduce`, `resume`, `status`) opens the same
control database through here. Light on purpose: it wires only the journal's `IntentStore` and
`keel.risk.trading_state.TradingStateGuard`, so the operator's commands start fast, without the backtest stack.
"""

from __future__ import annotations

from keel.journal.store import IntentStore
from keel.risk.trading_state import TradingStateGuard
from keel.settings import Settings

CONTROL_DB = "keel.db"


def control_url(settings: Settings) -> str:
    """The database holding the trading state (kill switch) every session reads."""
    if settings.journal.url is not None:
        return settings.journal.url.get_secret_value()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{settings.var_dir / CONTROL_DB}"


def open_guard(settings: Settings) -> tuple[IntentStore, TradingStateGuard]:
    """The control store, opened, and a guard that re-reads its trading state only when another process changed it.
    The caller closes the store."""
    store = IntentStore.open(control_url(settings), write_through=True)

    def read():
        rec = store.trading_state()
        return rec.state, rec.reason

    return store, TradingStateGuard(read, store.change_probe())
