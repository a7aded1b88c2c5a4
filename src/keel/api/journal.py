"""Reading a run's journal from the API, read-only: its database rows (intents, orders, fills, the last checkpoint)
and its event log, while the session that writes them goes on.

Nothing here takes a writer's lock or creates a file in a run folder. A run folder's SQLite database is opened with
`mode=ro`; while its writer runs, the database's `-wal` and `-shm` files exist and a read-only connection shares
them; once the writer has closed, they are gone, and the database is opened `immutable` (SQLite would otherwise
create a `-shm` file to read it). A PostgreSQL `journal.url` is read in read-only transactions, filtered by the run.

Runs are found where Keel puts them: the sessions in the control store's registry (each names its run and its folder)
and the run folders under `<var_dir>/runs` (`keel demo`, `keel backtest` without `--out`). A run is named by its id.

Lists are paged by keyset: `cursor` is the opaque key of the last item returned (`next_cursor`), so an item appended
meanwhile is never skipped nor repeated, whatever the writer does between two pages.
"""

from __future__ import annotations

import base64
import json
import math
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, create_engine, func, or_, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from keel.api.problems import Problem
from keel.control.records import SessionRecord
from keel.journal import schema as s
from keel.journal.eventlog import parse_record
from keel.journal.store_orders import facts_from_row
from keel.settings import Settings

EVENTS_FILE = "events.jsonl"
DB_FILE = "keel.db"
SUMMARY_FILE = "summary.json"
EQUITY_FILE = "equity.parquet"
MARKER = ".keel-run"
#: the most items a page may hold (`limit`), and the default
MAX_LIMIT = 1_000
DEFAULT_LIMIT = 100
#: run folders' engines kept between requests (each opens its file anew per request: NullPool)
KEPT_ENGINES = 32
_RUNS_HINT = "GET /api/v1/runs lists the runs; GET /api/v1/sessions the sessions"


@dataclass(frozen=True, slots=True)
class RunRef:
    """Where a run is: its id, its folder, and the session that runs it (None: a replay)."""

    run_id: str
    folder: Path
    session: str | None = None

    @property
    def events(self) -> Path:
        return self.folder / EVENTS_FILE


# -- finding runs ---------------------------------------------------------------------------------------------------


def session_run(rec: SessionRecord) -> RunRef:
    return RunRef(rec.run_id, Path(rec.run_dir), rec.name)


def folder_runs(settings: Settings) -> list[RunRef]:
    """The run folders under `<var_dir>/runs` that carry Keel's marker, by the run their marker names."""
    root = settings.var_dir / "runs"
    found: list[RunRef] = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return found
    for entry in entries:
        marker = Path(entry.path) / MARKER
        try:
            body = json.loads(marker.read_text(encoding="utf-8"))
            run_id = str(body["run_id"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        found.append(RunRef(run_id, Path(entry.path)))
    return found


def all_runs(settings: Settings, sessions: Sequence[SessionRecord]) -> list[RunRef]:
    """Every run the API knows: the sessions' (first, by name), then the run folders' not already listed."""
    runs = [session_run(r) for r in sessions if r.run_id]
    seen = {r.run_id for r in runs}
    runs.extend(r for r in folder_runs(settings) if r.run_id not in seen)
    return runs


def find_run(settings: Settings, sessions: Sequence[SessionRecord], run_id: str) -> RunRef:
    for ref in all_runs(settings, sessions):
        if ref.run_id == run_id:
            return ref
    raise Problem("not-found", f"no run '{run_id}'", hint=_RUNS_HINT)


def find_session(rec: SessionRecord | None, name: str) -> RunRef:
    if rec is None:
        raise Problem("not-found", f"no session named '{name}'", hint="GET /api/v1/sessions lists them")
    if not rec.run_id:
        raise Problem("not-found", f"session '{name}' has no run yet", hint=f"GET /api/v1/sessions/{name} shows it")
    return session_run(rec)


# -- the database ---------------------------------------------------------------------------------------------------


class JournalAccess:
    """Opens journals read-only: a run folder's SQLite file per request, or the one PostgreSQL `journal.url`."""

    def __init__(self, settings: Settings) -> None:
        url = settings.journal.url
        text = url.get_secret_value() if url is not None else ""
        self._shared_url = text if text and make_url(text).get_backend_name() == "postgresql" else None
        self._shared: Engine | None = None
        self._files: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def _engine(self, ref: RunRef) -> Engine:
        """The engine for `ref`'s rows: the shared PostgreSQL one, or the run folder's SQLite file's (kept for the
        next request: building an engine costs more than the read; the file is opened anew at every request)."""
        if self._shared_url is not None:
            if self._shared is None:
                self._shared = create_engine(self._shared_url, pool_size=4, max_overflow=4, pool_pre_ping=True)
            return self._shared
        db = ref.folder / DB_FILE
        if not db.is_file():
            raise Problem(
                "not-found",
                f"run '{ref.run_id}' has no journal database yet",
                hint="a session creates it at its start; GET /api/v1/runs lists the runs",
            )
        wal = db.with_name(DB_FILE + "-wal").exists()
        uri = db.absolute().as_uri() + ("?mode=ro" if wal else "?mode=ro&immutable=1")
        with self._lock:
            engine = self._files.pop(uri, None)
            if engine is None:

                def connect() -> sqlite3.Connection:
                    return sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=5)

                engine = create_engine("sqlite://", creator=connect, poolclass=NullPool)
            self._files[uri] = engine  # the most recently used last
            while len(self._files) > KEPT_ENGINES:
                self._files.pop(next(iter(self._files))).dispose()
        return engine

    @contextmanager
    def reading(self, ref: RunRef) -> Iterator[Reader]:
        """One read-only transaction on `ref`'s journal: every read inside sees one committed state."""
        engine = self._engine(ref)
        try:
            with engine.connect() as conn:
                if engine.dialect.name == "sqlite":
                    conn.exec_driver_sql("BEGIN")
                else:
                    conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
                try:
                    yield Reader(conn, ref)
                finally:
                    conn.rollback()
        except SQLAlchemyError as exc:
            # the journal, not the control store: say whose, and how to look at it
            cause = type(getattr(exc, "orig", None) or exc).__name__
            raise Problem(
                "unavailable",
                f"the journal of run '{ref.run_id}' cannot be read ({cause})",
                hint=f"`keel journal verify {ref.folder}` checks it",
            ) from None

    def close(self) -> None:
        if self._shared is not None:
            self._shared.dispose()
            self._shared = None
        with self._lock:
            for engine in self._files.values():
                engine.dispose()
            self._files.clear()


# -- cursors --------------------------------------------------------------------------------------------------------


def encode_cursor(key: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_cursor(text: str | None, arity: int) -> list[Any] | None:
    """The key a cursor holds; a 400 problem when it is not one this API returned."""
    if text is None:
        return None
    try:
        key = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        key = None
    if not isinstance(key, list) or len(key) != arity or not all(isinstance(k, str) for k in key):
        raise Problem(
            "bad-request",
            f"cursor '{text[:80]}' is not a cursor of this list",
            hint="pass the `next_cursor` of the previous page unchanged, or no cursor for the first page",
        )
    return key


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor}


# -- the reads ------------------------------------------------------------------------------------------------------


class Reader:
    """The reads of one run's rows, inside one read-only transaction."""

    def __init__(self, conn: Connection, ref: RunRef) -> None:
        self._conn = conn
        self.ref = ref

    def run_row(self) -> dict[str, Any] | None:
        r = s.runs
        row = self._conn.execute(select(*r.c).where(r.c.run_id == self.ref.run_id)).mappings().first()
        if row is None:
            return None
        return {
            "run_id": row["run_id"],
            "created_ts": row["created_ts"],
            "mode": row["mode"],
            "status": row["status"],
            "config_hash": row["config_hash"],
        }

    def head(self) -> int:
        """The last event-log seq committed with the rows (0: none yet)."""
        h = s.journal_head
        seq = self._conn.execute(select(h.c.seq).where(h.c.log_id == self.ref.run_id)).scalar()
        return int(seq) if seq is not None else 0

    def intent_counts(self) -> dict[str, int]:
        i = s.intents
        stmt = select(i.c.state, func.count()).where(i.c.run_id == self.ref.run_id).group_by(i.c.state)
        return {state: int(n) for state, n in self._conn.execute(stmt)}

    def reason_counts(self) -> dict[str, int]:
        """Why intents did not trade: the last reason of the blocked and rejected ones, by count."""
        i = s.intents
        stmt = (
            select(i.c.last_reason, func.count())
            .where(i.c.run_id == self.ref.run_id, i.c.state.in_(("blocked", "rejected")), i.c.last_reason.isnot(None))
            .group_by(i.c.last_reason)
        )
        return {reason: int(n) for reason, n in self._conn.execute(stmt)}

    def approved_count(self) -> int:
        """Intents that were ever approved (by the policy or a person): transitions to `approved`."""
        t, i = s.intent_transitions, s.intents
        stmt = (
            select(func.count(func.distinct(t.c.intent_id)))
            .select_from(t.join(i, i.c.intent_id == t.c.intent_id))
            .where(i.c.run_id == self.ref.run_id, t.c.to_state == "approved")
        )
        return int(self._conn.execute(stmt).scalar() or 0)

    def oldest_executing_ts(self) -> str | None:
        """When the oldest intent still `executing` was claimed (the run's clock), or None."""
        i = s.intents
        stmt = select(func.min(i.c.updated_ts)).where(i.c.run_id == self.ref.run_id, i.c.state == "executing")
        return self._conn.execute(stmt).scalar()

    def intents(self, *, state: str | None, symbol: str | None, limit: int, cursor: list[Any] | None) -> Page:
        i = s.intents
        stmt = select(*i.c).where(i.c.run_id == self.ref.run_id)
        if state is not None:
            stmt = stmt.where(i.c.state == state)
        if symbol is not None:
            stmt = stmt.where(i.c.symbol == symbol)
        rows = self._page(stmt, (i.c.created_ts, i.c.intent_id), limit, cursor)
        items = [
            {
                "intent_id": r["intent_id"],
                "state": r["state"],
                "version": r["version"],
                "created_ts": r["created_ts"],
                "updated_ts": r["updated_ts"],
                "last_reason": r["last_reason"],
                "intent": orjson.loads(r["payload"]),
            }
            for r in rows[:limit]
        ]
        return _paged(items, rows, limit, ("created_ts", "intent_id"))

    def orders(self, *, symbol: str | None, status: str | None, limit: int, cursor: list[Any] | None) -> Page:
        o = s.orders
        stmt = select(*o.c).where(o.c.run_id == self.ref.run_id)
        if symbol is not None:
            stmt = stmt.where(o.c.symbol == symbol)
        if status is not None:
            stmt = stmt.where(o.c.status == status)
        rows = self._page(stmt, (o.c.submitted_ts, o.c.client_order_id), limit, cursor)
        items = [
            {
                "client_order_id": r["client_order_id"],
                "intent_id": r["intent_id"],
                "symbol": r["symbol"],
                "side": r["side"],
                "order_type": r["order_type"],
                "quantity": r["quantity"],
                "status": r["status"],
                "filled_quantity": r["filled_quantity"],
                "average_price": _finite(r["average_price"]),
                "fees": r["fees"],
                "submitted_ts": r["submitted_ts"],
                "updated_ts": r["updated_ts"],
                "order": facts_from_row(r),
            }
            for r in rows[:limit]
        ]
        return _paged(items, rows, limit, ("submitted_ts", "client_order_id"))

    def fills(self, *, symbol: str | None, limit: int, cursor: list[Any] | None) -> Page:
        f = s.fills
        stmt = select(*f.c).where(f.c.run_id == self.ref.run_id)
        if symbol is not None:
            stmt = stmt.where(f.c.symbol == symbol)
        rows = self._page(stmt, (f.c.ts, f.c.fill_id), limit, cursor)
        items = [
            {k: r[k] for k in ("fill_id", "client_order_id", "symbol", "side", "quantity", "price", "fee", "ts")}
            for r in rows[:limit]
        ]
        return _paged(items, rows, limit, ("ts", "fill_id"))

    def all_fills(self) -> list[dict[str, Any]]:
        f = s.fills
        stmt = select(f.c.symbol, f.c.side, f.c.quantity, f.c.price, f.c.fee, f.c.ts).where(
            f.c.run_id == self.ref.run_id
        )
        return [dict(r) for r in self._conn.execute(stmt.order_by(f.c.ts, f.c.fill_id)).mappings()]

    def checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint: the bar it follows, its time, and the broker's and the book's state then."""
        c = s.checkpoints
        row = self._conn.execute(select(*c.c).where(c.c.run_id == self.ref.run_id)).mappings().first()
        if row is None:
            return None
        return {"cursor": int(row["cursor"]), "ts": row["ts"], "snapshot": orjson.loads(row["snapshot"])}

    def _page(self, stmt: Any, key: tuple[Any, Any], limit: int, cursor: list[Any] | None) -> list[Any]:
        first, second = key
        if cursor is not None:
            stmt = stmt.where(or_(first > cursor[0], and_(first == cursor[0], second > cursor[1])))
        stmt = stmt.order_by(first, second).limit(limit + 1)
        return list(self._conn.execute(stmt).mappings())


def _paged(items: list[dict[str, Any]], rows: list[Any], limit: int, key: tuple[str, str]) -> Page:
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    return Page(items, encode_cursor([last[key[0]], last[key[1]]]) if last is not None else None)


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


# -- the event log --------------------------------------------------------------------------------------------------


def read_events(path: Path, *, after: int, upto: int, limit: int, offset_hint: int = 0) -> tuple[list[dict], int]:
    """Up to `limit` records with `after < seq <= upto` (the committed head), in order, and the byte offset just past
    the last line read (where to go on). Reads from `offset_hint`, a position at or before the first wanted record
    (0: the start). A line past the head, or not complete yet, ends the read: it may still be cut by a recovery."""
    found: list[dict] = []
    offset = offset_hint
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below; a missing log is an empty one
    except FileNotFoundError:
        return found, offset
    with fh:
        fh.seek(offset_hint)
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            record = parse_record(raw[:-1])
            if record is None or record["seq"] > upto:
                break
            if record["seq"] > after:
                if len(found) >= limit:
                    break
                found.append(record)
            offset += len(raw)
    return found, offset


def read_summary(ref: RunRef) -> dict[str, Any] | None:
    try:
        return json.loads((ref.folder / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# -- positions, the account, the equity curve -----------------------------------------------------------------------


def positions_from_fills(fills: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Net quantity, average entry price and realized PnL per symbol, rebuilt from the fills (average cost)."""
    held: dict[str, dict[str, float]] = {}
    for f in fills:
        p = held.setdefault(f["symbol"], {"quantity": 0.0, "average_price": 0.0, "realized_pnl": 0.0, "price": 0.0})
        q, px = float(f["quantity"]), float(f["price"])
        if f["side"] == "buy":
            total = p["quantity"] + q
            p["average_price"] = (p["average_price"] * p["quantity"] + px * q) / total if total > 0 else 0.0
            p["quantity"] = total
        else:
            p["realized_pnl"] += (px - p["average_price"]) * min(q, p["quantity"])
            p["quantity"] = max(0.0, p["quantity"] - q)
            if p["quantity"] <= 1e-12:
                p["quantity"], p["average_price"] = 0.0, 0.0
        p["price"] = px
    return held


def account(checkpoint: dict[str, Any] | None, fills: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The account as of the last checkpoint: cash, positions marked at the broker's last quotes, equity, the day's
    PnL and the drawdown from the peak. Without a paper broker's checkpoint, positions come from the fills, marked at
    their last fill price, and the money figures are null: nothing in the journal says them."""
    snap = (checkpoint or {}).get("snapshot", {})
    broker = snap.get("broker") or {}
    book = snap.get("book") or {}
    paper = broker.get("kind") == "keel.paper_broker"
    quotes = {sym: q.get("price") for sym, q in (broker.get("quotes") or {}).items()} if paper else {}
    rebuilt = positions_from_fills(fills)
    source = broker.get("positions") if paper else None
    rows = []
    for symbol in sorted(set(rebuilt) | set(source or {})):
        p = (source or rebuilt).get(symbol) or {}
        quantity = float(p.get("quantity", 0.0))
        if abs(quantity) <= 1e-12:
            continue
        mark = quotes.get(symbol) or rebuilt.get(symbol, {}).get("price")
        value = quantity * mark if mark is not None else None
        average = float(p.get("average_price", 0.0))
        rows.append(
            {
                "symbol": symbol,
                "quantity": quantity,
                "average_price": average,
                "mark_price": mark,
                "market_value": value,
                "unrealized_pnl": (mark - average) * quantity if mark is not None else None,
            }
        )
    exposure = sum(abs(r["market_value"]) for r in rows if r["market_value"] is not None)
    cash = broker.get("cash") if paper else None
    equity = cash + sum(r["market_value"] or 0.0 for r in rows) if cash is not None else None
    day_start, peak = book.get("day_start_equity"), book.get("peak_equity")
    drawdown = (peak - equity) / peak * 100.0 if equity is not None and peak else None
    initial = (broker.get("config") or {}).get("cash") if paper else None
    return {
        "as_of": {"bar": checkpoint["cursor"], "ts": checkpoint["ts"]} if checkpoint is not None else None,
        "basis": "checkpoint" if paper else "fills",
        "cash": cash,
        "equity": equity,
        "initial_cash": initial,
        "open_exposure": exposure,
        "realized_pnl": broker.get("realized_pnl") if paper else sum(p["realized_pnl"] for p in rebuilt.values()),
        "fees_paid": broker.get("fees_paid") if paper else sum(float(f["fee"]) for f in fills),
        "pnl": equity - initial if equity is not None and initial is not None else None,
        "daily_pnl": equity - day_start if equity is not None and day_start is not None else None,
        "peak_equity": peak,
        "drawdown_pct": max(0.0, drawdown) if drawdown is not None else None,
        "positions": rows,
    }


def equity_points(ref: RunRef, max_points: int) -> tuple[str, list[dict[str, Any]]] | None:
    """The run report's mark-to-close curve (`equity.parquet`, written when a run ends), thinned to at most
    `max_points` evenly spaced bars (the first and the last kept); None while the run has no report."""
    path = ref.folder / EQUITY_FILE
    if not path.is_file():
        return None
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["timestamp", "cash", "equity"])
    n = table.num_rows
    if n == 0:
        return "report", []
    step = max(1, math.ceil(n / max_points))
    picks = list(range(0, n, step))
    if picks[-1] != n - 1:
        if len(picks) >= max_points:
            picks[-1] = n - 1
        else:
            picks.append(n - 1)
    ts = table.column("timestamp").to_pylist()
    cash = table.column("cash").to_pylist()
    equity = table.column("equity").to_pylist()
    return "report", [{"ts": ts[i].isoformat(), "cash": cash[i], "equity": equity[i]} for i in picks]


def equity_from_fills(
    fills: Sequence[dict[str, Any]], initial_cash: float | None, last: dict[str, Any], max_points: int
) -> list[dict[str, Any]]:
    """While a run has no report: the equity after each fill (positions marked at their last fill price), and a last
    point at the checkpoint (marked at the broker's quotes). The newest `max_points` points."""
    if initial_cash is None:
        return []
    cash = float(initial_cash)
    held: dict[str, float] = {}
    marks: dict[str, float] = {}
    points: list[dict[str, Any]] = []
    for f in fills:
        q, px, fee = float(f["quantity"]), float(f["price"]), float(f["fee"])
        sign = 1.0 if f["side"] == "buy" else -1.0
        cash -= sign * q * px + fee
        held[f["symbol"]] = held.get(f["symbol"], 0.0) + sign * q
        marks[f["symbol"]] = px
        equity = cash + sum(qty * marks[sym] for sym, qty in held.items())
        points.append({"ts": f["ts"], "cash": cash, "equity": equity})
    if last.get("as_of") is not None and last.get("equity") is not None:
        points.append({"ts": last["as_of"]["ts"], "cash": last["cash"], "equity": last["equity"]})
    return points[-max_points:]
