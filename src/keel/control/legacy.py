"""The place versions before `home` kept the trading state, read so that a halt recorded there is not forgotten.

Before the control store had a home, the trading state lived in `<var_dir>/keel.db` under the working directory (or
in the SQLite file `journal.url` named). An operator who halted there and then upgrades must not find the halt gone.
So whenever the control plane is opened from a directory where such a file exists, its last trading state is read
(read-only: the file is never changed) and:

* **carried over** when it is stricter than the control store's current state (halted beats reducing beats active)
  and was recorded after the store's last change: the state is written to the control store with its original time,
  actor and reason (trigger `legacy-store`, an incident record like any other trip), so the halt now holds every
  session, wherever it runs, and its cooldown counts from when it was first recorded;
* otherwise **reported**, if it is not `active`: the old file still says halted (or reducing) but the control store
  changed since, and the old file is no longer read — the caller says so until the file is removed.

Carrying over only ever tightens: a state from the old place never loosens the control store.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from keel.control.records import IncidentRecord, Trigger, severity, to_iso
from keel.control.store import ControlStore
from keel.domain.decisions import TradingState
from keel.domain.errors import StaleState

#: The file name the control store had under `var_dir`.
LEGACY_FILE = "keel.db"


@dataclass(frozen=True, slots=True)
class LegacyState:
    """The last trading state recorded in the old place."""

    path: Path
    state: TradingState
    reason: str
    actor: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class LegacyReport:
    """What the old place held, and what was done with it: `carried` is the record of the carry-over (None when
    nothing was carried); `problem` says why the old file could not be read (then `found` is None)."""

    path: Path
    found: LegacyState | None
    carried: IncidentRecord | None = None
    problem: str | None = None
    #: the state was carried over before, by an earlier opening
    already: bool = False

    @property
    def still_strict(self) -> bool:
        """The old place says halted or reducing, and that was never carried over (the control store changed after
        it, or nothing carried it yet): the caller warns."""
        found = self.found
        return (
            found is not None and found.state is not TradingState.ACTIVE and self.carried is None and not self.already
        )


def read_legacy(path: Path) -> LegacyState | None:
    """The last trading state in the old control file, or None when it records none. Opened read-only; raises
    `sqlite3.Error` (or `ValueError` for a row that is not a trading state) when the file cannot be read."""
    uri = path.absolute().as_uri() + "?mode=ro"
    con = sqlite3.connect(uri, uri=True)
    try:
        has_table = con.execute("select 1 from sqlite_master where type = 'table' and name = 'kill_switch'").fetchone()
        if not has_table:
            return None
        row = con.execute("select state, reason, actor, ts from kill_switch order by id desc limit 1").fetchone()
    finally:
        con.close()
    if row is None:
        return None
    state, reason, actor, ts = row
    return LegacyState(path, TradingState(state), str(reason), str(actor), datetime.fromisoformat(ts))


def inspect_legacy(path: Path, store: ControlStore | None = None) -> LegacyReport | None:
    """What the old control file at `path` holds, read-only (and whether `store` already took it over): None when
    there is no such file or it records no state."""
    if not path.is_file():
        return None
    try:
        found = read_legacy(path)
    except (sqlite3.Error, ValueError) as exc:
        return LegacyReport(path, None, problem=f"{type(exc).__name__}: {exc}")
    if found is None:
        return None
    return LegacyReport(path, found, already=store is not None and _carried_before(store, found))


def _carried_before(store: ControlStore, found: LegacyState) -> bool:
    return any(
        rec.ts == found.ts and rec.detail.get("from") == str(found.path)
        for rec in store.records(trigger=Trigger.LEGACY_STORE)
    )


def carry_over(store: ControlStore, path: Path, *, now: datetime) -> LegacyReport | None:
    """Read the old control file at `path` and carry its state into `store` where it is stricter and newer (see the
    module docstring); None when there is no old file, or it records no state."""
    report = inspect_legacy(path, store)
    if report is None or report.found is None:
        return report
    found = report.found
    if report.already:
        return report
    for _ in range(3):  # another process may be carrying the same state over at the same moment
        current = store.trading_state()
        newer = current.ts is None or found.ts > current.ts
        if not newer or severity(found.state) <= severity(current.state):
            return report
        try:
            record = store.change_state(
                found.state,
                trigger=Trigger.LEGACY_STORE,
                actor=found.actor,
                reason=f"carried over from {path}: {found.reason}",
                ts=found.ts,
                expected_change=current.change_id,
                detail={"from": str(path), "carried_at": to_iso(now), "reason": found.reason},
            )
        except StaleState:
            continue
        return LegacyReport(path, found, carried=record)
    return report
