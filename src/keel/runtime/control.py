"""The control plane: where every session reads the trading state, and where `keel kill` writes it.

One store, whose place never depends on the working directory: `<home>/control.db` (SQLite WAL; `home` defaults to
the user's state directory, see `keel.settings.default_home`), or, when `journal.url` names PostgreSQL, that
database, so that several hosts share one kill switch. A SQLite `journal.url` does not move it: that file is a
journal, and may be named relative to the working directory.

Every process that trades or steers trading (a session, `keel kill`, `reduce`, `resume`, `status`, `incidents`) opens
it through here; opening it also carries over a halt still recorded in the place versions before `home` used
(`keel.control.legacy`). Light on purpose: it wires only `keel.control` and the trading-state guard, so that the
operator's commands start fast, without the journal or the backtest stack.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from keel.control.legacy import LEGACY_FILE, LegacyReport, carry_over, inspect_legacy
from keel.control.store import ControlStore
from keel.risk.signal_file import HALT_FILE, SignalFile
from keel.risk.trading_state import TradingStateGuard
from keel.runtime.clock import WallClock
from keel.settings import ControlConfig, Settings, describe_url

#: The control store's file inside `home`.
CONTROL_DB = "control.db"


@dataclass(frozen=True)
class ControlLocation:
    """Where the control store is: its URL (a secret: it may hold a password), how to show it, and whether it is a
    shared database (PostgreSQL) or the SQLite file in `home`."""

    url: str
    where: str
    shared: bool
    #: the SQLite file (None for PostgreSQL)
    file: Path | None

    def __repr__(self) -> str:  # never the URL: it may hold a password
        return f"ControlLocation({self.where!r})"


def _config(source: Settings | ControlConfig) -> ControlConfig:
    return source if isinstance(source, ControlConfig) else ControlConfig.of(source)


def control_location(source: Settings | ControlConfig) -> ControlLocation:
    """The control store `source` names: `journal.url` when it is PostgreSQL, else `<home>/control.db`."""
    cfg = _config(source)
    if cfg.journal_url is not None:
        url = cfg.journal_url.get_secret_value()
        if make_url(url).get_backend_name() != "sqlite":
            return ControlLocation(url, describe_url(url), True, None)
    file = cfg.home / CONTROL_DB
    return ControlLocation(f"sqlite:///{file}", str(file), False, file)


def control_url(settings: Settings | ControlConfig) -> str:
    """The URL of the control store (see `control_location`)."""
    return control_location(settings).url


def legacy_path(source: Settings | ControlConfig) -> Path | None:
    """Where versions before `home` kept the trading state for these settings: the SQLite file of `journal.url`, else
    `<var_dir>/keel.db` under the working directory; None when `journal.url` is PostgreSQL (it has not moved)."""
    cfg = _config(source)
    if cfg.journal_url is not None:
        u = make_url(cfg.journal_url.get_secret_value())
        if u.get_backend_name() != "sqlite":
            return None
        if not u.database or u.database == ":memory:" or u.database.startswith("file:"):
            return None
        return Path(u.database).absolute()
    return (cfg.var_dir / LEGACY_FILE).absolute()


def ensure_home(home: Path) -> None:
    """Create `home` if it is missing, private to its user (0700): it holds the trading state and who changed it.
    An existing folder is left as it is."""
    if home.is_dir():
        return
    home.parent.mkdir(parents=True, exist_ok=True)
    try:
        home.mkdir(mode=0o700)
    except FileExistsError:
        return  # created meanwhile by another process
    os.chmod(home, 0o700)  # whatever the umask


@dataclass
class ControlPlane:
    """The opened control store (None: `read_only`, and it does not exist yet), where it is, and what the old place
    held (None: no old file there, or it records no state)."""

    store: ControlStore | None
    location: ControlLocation
    legacy: LegacyReport | None

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_control(
    source: Settings | ControlConfig,
    *,
    now: Callable[[], datetime] | None = None,
    read_only: bool = False,
    busy_timeout_ms: int = 5_000,
) -> ControlPlane:
    """Open the control store, creating `home` and the store when missing, and carry over a halt the old place still
    holds (`keel.control.legacy`; `now` stamps when, default the wall clock). `read_only` creates nothing and carries
    nothing over (what the old place holds is still reported); a store that does not exist yet is then None."""
    cfg = _config(source)
    location = control_location(cfg)
    old = legacy_path(cfg)
    if read_only:
        if location.file is not None and not location.file.is_file():
            return ControlPlane(None, location, inspect_legacy(old) if old is not None else None)
        store = ControlStore.open(location.url, busy_timeout_ms=busy_timeout_ms)
        try:
            return ControlPlane(store, location, inspect_legacy(old, store) if old is not None else None)
        except BaseException:
            store.close()
            raise
    if location.file is not None:
        ensure_home(cfg.home)
    store = ControlStore.open(location.url, busy_timeout_ms=busy_timeout_ms)
    try:
        clock = now or WallClock().now
        legacy = carry_over(store, old, now=clock()) if old is not None else None
    except BaseException:
        store.close()
        raise
    return ControlPlane(store, location, legacy)


def open_guard(settings: Settings | ControlConfig) -> tuple[ControlStore, TradingStateGuard]:
    """The control store, opened (see `open_control`), and a guard that re-reads its trading state only when another
    process changed it, and halts while the signal file is there (`keel.risk.signal_file`). The caller closes the
    store."""
    store = open_control(settings).store
    assert store is not None

    def read():
        rec = store.trading_state()
        return rec.state, rec.reason

    return store, TradingStateGuard(read, store.change_probe(), halt_signal=signal_file(settings, store))


def halt_file(source: Settings | ControlConfig) -> Path:
    """Where the kill switch's signal file is: `<home>/HALT`."""
    return _config(source).home / HALT_FILE


def signal_file(source: Settings | ControlConfig, store: ControlStore) -> SignalFile:
    """The signal file of this home, recording its halt in `store` the first time it is seen."""
    return SignalFile.halting(store, halt_file(source), now=WallClock().now)
