"""Runs, checkpoints, the log head and the trading state: the intent store's rows about the run itself and about
trading (a mixin of `IntentStore`, working on its connection and its buffer)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select

from keel.domain.decisions import TradingState
from keel.domain.errors import InputError
from keel.journal import schema as s
from keel.journal.errors import DuplicateRun, UnknownRun
from keel.journal.records import RunRecord, RunStatus, TradingStateRecord
from keel.journal.schema import from_iso, stored_json, to_iso


class RunRows:
    """Runs, checkpoints, heads and the trading state of `IntentStore`."""

    def trading_state(self) -> TradingStateRecord:
        """The current trading state, read from the database every time (another process may have changed it)."""
        rows = self._read(self._sel_trading_state, {})
        if not rows:
            return TradingStateRecord(TradingState.ACTIVE, "initial", "system", None)
        state, reason, actor, ts = rows[0]
        return TradingStateRecord(TradingState(state), reason, actor, from_iso(ts))

    def set_trading_state(self, state: TradingState, *, reason: str, actor: str, ts: datetime) -> None:
        """Append a trading-state change and commit it at once, in every mode: a kill switch never waits in a
        buffer. Every change names who made it and why."""
        if not reason.strip() or not actor.strip():
            raise InputError("a trading state change needs a non-empty reason and actor")
        if self._atomic:
            raise InputError("set_trading_state cannot join an atomic() block: it always commits on its own")
        row = {"state": TradingState(state).value, "reason": reason, "actor": actor, "ts": to_iso(ts)}
        try:
            self._exec(self._ins_kill_switch, row)
            self._dbapi.commit()
        except BaseException:
            self._dbapi.rollback()
            raise

    def change_probe(self) -> Callable[[], int] | None:
        """A cheap function whose value changes whenever *another* connection commits to this database, so a reader
        can re-read the trading state only then (SQLite's `PRAGMA data_version`). None where no such probe exists
        (PostgreSQL): read every time. Commits made through this same store do not move the probe."""
        if self.dialect != "sqlite":
            return None
        cursor = self._dbapi.cursor()

        def probe() -> int:
            return int(cursor.execute("PRAGMA data_version").fetchone()[0])

        return probe

    # -- runs, checkpoints, head ---------------------------------------------------------------------

    def start_run(self, run_id: str, *, mode: str, config_hash: str, meta: Mapping[str, Any], ts: datetime) -> None:
        """Record a new run in status `running`, committed at once in every mode (like the trading state, a run's
        existence is control data: another process must see it); `DuplicateRun` if the id is taken (a run is
        resumed from its checkpoint, never started twice)."""
        row = {
            "run_id": run_id,
            "created_ts": to_iso(ts),
            "mode": mode,
            "config_hash": config_hash,
            "status": RunStatus.RUNNING.value,
            "meta": stored_json(dict(meta)),
            "summary": None,
        }
        if self._write_row(self._ins_run, row) != 1:
            raise DuplicateRun(run_id)

    def finish_run(self, run_id: str, *, status: RunStatus | str, summary: Mapping[str, Any]) -> None:
        """Close a run with its final status and summary. Write-through: at once (or with the open `atomic()`
        block). Buffered: with the batch, so `complete` is committed together with the last events it summarises
        and never without them."""
        row = {"b_run": run_id, "b_status": RunStatus(status).value, "b_summary": stored_json(dict(summary))}
        if not self._write_through:
            if self.get_run(run_id) is None:
                raise UnknownRun(run_id)
            self._run_updates[run_id] = row
            return
        if self._write_row(self._upd_run, row) != 1:
            raise UnknownRun(run_id)

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._query(select(s.runs).where(s.runs.c.run_id == run_id))
        if not rows:
            return None
        row = rows[0]
        return RunRecord(
            run_id=row["run_id"],
            created_ts=from_iso(row["created_ts"]),
            mode=row["mode"],
            config_hash=row["config_hash"],
            status=RunStatus(row["status"]),
            meta=orjson.loads(row["meta"]),
            summary=orjson.loads(row["summary"]) if row["summary"] is not None else None,
        )

    def save_checkpoint(self, run_id: str, cursor: int, snapshot: Mapping[str, Any], ts: datetime) -> None:
        """Record where a run got to. Buffered mode commits it with the batch it describes, so a resumed run never
        skips intents that were lost, nor redoes intents that were kept."""
        row = {"run_id": run_id, "cursor": int(cursor), "snapshot": stored_json(dict(snapshot)), "ts": to_iso(ts)}
        if self._write_through:
            self._write_row(self._upsert_checkpoint, row)
        else:
            self._checkpoints[run_id] = row

    def load_checkpoint(self, run_id: str) -> tuple[int, dict[str, Any]] | None:
        """The last committed checkpoint of a run as `(cursor, snapshot)`, or None."""
        c = s.checkpoints
        rows = self._query(select(c.c.cursor, c.c.snapshot).where(c.c.run_id == run_id))
        if not rows:
            return None
        return int(rows[0]["cursor"]), orjson.loads(rows[0]["snapshot"])

    def set_head(self, log_id: str, seq: int, hash: str) -> None:
        """Record the event-log head that the rows being committed correspond to (buffered with the batch)."""
        row = {"log_id": log_id, "seq": int(seq), "hash": hash}
        if self._write_through:
            self._write_row(self._upsert_head, row)
        else:
            self._heads[log_id] = row

    def head(self, log_id: str) -> tuple[int, str] | None:
        """The committed event-log head of `log_id`, or None when nothing was committed for it."""
        rows = self._read(self._sel_head, {"b_log": log_id})
        if not rows:
            return None
        return int(rows[0][0]), rows[0][1]
