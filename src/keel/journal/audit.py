"""Every row of a run's database checked against its event log: the log is the evidence, the rows an index of it.

`RowAudit.add` is fed each committed record as `verify_run` streams the log (one pass, shared with the chain
check); it keeps only what the rows must equal, per intent, order and fill. `RowAudit.check` then reads every row
of the run from one database snapshot (`read_snapshot`) and names each difference as a `Problem` with the table,
the row's key, the column, the stored value and the logged one. What the log says each row must be:

* `intents`: the `intent.proposed` payload's `intent` (its canonical JSON is the `payload` column; run_id,
  strategy_id, symbol, side, leg and quantity come from it; `created_ts` is the record's ts), then its
  transitions — the `decision` the proposal carries (journal format 5), then its `intent.transition` records:
  `state` the last `to`, `version` 1 + their number, `updated_ts` and `last_reason` the last one's ts and reason;
* `intent_transitions`: one row per transition (from, to, ts, reason, actor), in log order per intent —
  unless the run keeps its transitions in the log only (journal format 3, `run.started` payload `transition_rows`
  false: a replay), when there must be none; its intents' rows still prove every transition through their state,
  version and last reason;
* `orders`: the last `order` any record carried for the client order id (journal format 2: every order row change
  is written with an event carrying the order); `intent_id` is the client order id, `run_id` the record's;
* `fills`: one row per `order.fill` record (its fill fields, the record's run_id, and its ts — or `filled_ts` when
  the venue reported the fill later than it happened), and no other;
* `kill_switch`: one row per `trading_state.changed` record, in order — only in a run's own database (a shared
  database holds the operator's trading state, which no run's log records);
* `runs`: `meta` is the `run.started` payload and `created_ts` its ts; `complete` with the `run.finished` payload
  as `summary` once that record is committed, not complete before;
* `checkpoints` are resume state, not evidence: only their `snapshot.journal_seq` must not pass the committed head;
* `approvals`: no record carries one, so every row is unaccounted for.

Rows of a run's own database must all be accounted for; in a shared database (`run_id` given) only the run's own
rows are read. Memory is proportional to the run's intents, orders and fills, never to its records.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from sys import intern
from typing import Any

import orjson
from sqlalchemy import Connection, create_engine, func, select
from sqlalchemy.sql import Select

from keel.domain.errors import InputError
from keel.journal import schema as s
from keel.journal.eventlog import canonical
from keel.journal.schema import to_iso
from keel.journal.store_orders import PAYLOAD_ONLY
from keel.journal.verify import Problem, ProblemKind

K = ProblemKind
#: The order row problems are reported in (the order the rows depend on each other).
TABLES = ("runs", "intents", "intent_transitions", "orders", "fills", "kill_switch", "checkpoints", "approvals")
#: The first journal format whose order events carry the order (`run.started` payload `journal_format`).
ORDER_FACTS_FORMAT = 2
#: Ids per query when fetching the rows of a list of ids (well under every backend's parameter limit).
_CHUNK = 500
_SHOW = 120
_dumps = orjson.dumps
_NO_RECORD = object()  # a field absent from one side of a JSON comparison

_INTENT_COLUMNS = (
    "run_id",
    "strategy_id",
    "symbol",
    "side",
    "leg",
    "quantity",
    "state",
    "version",
    "created_ts",
    "updated_ts",
    "last_reason",
)
_TRANSITION_COLUMNS = ("from_state", "to_state", "ts", "reason", "actor")
_ORDER_COLUMNS = (
    "intent_id",
    "run_id",
    "symbol",
    "side",
    "order_type",
    "quantity",
    "status",
    "filled_quantity",
    "average_price",
    "fees",
    "submitted_ts",
    "updated_ts",
)
_FILL_COLUMNS = ("client_order_id", "run_id", "symbol", "side", "quantity", "price", "fee", "ts")
_TRADING_COLUMNS = ("state", "reason", "actor", "ts")


# -- the database side ---------------------------------------------------------------------------------


class Snapshot:
    """Reads of one database, all from the same committed state (see `read_snapshot`)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._cursors = 0

    def head(self, log_id: str) -> tuple[int, str] | None:
        """The committed event-log head of `log_id`, or None."""
        h = s.journal_head
        row = self._conn.execute(select(h.c.seq, h.c.hash).where(h.c.log_id == log_id)).first()
        return (int(row[0]), str(row[1])) if row is not None else None

    def claimers(self, run_id: str, prefix: str) -> list[str]:
        """The actors whose name starts with `prefix` that moved an intent of `run_id` (its transition rows)."""
        t, i = s.intent_transitions, s.intents
        stmt = (
            select(t.c.actor)
            .distinct()
            .where(t.c.actor.startswith(prefix), t.c.intent_id.in_(select(i.c.intent_id).where(i.c.run_id == run_id)))
            .order_by(t.c.actor)
        )
        return [str(r[0]) for r in self._conn.execute(stmt)]

    def run_status(self, run_id: str) -> str | None:
        """The status the `runs` row of `run_id` holds, or None without one."""
        row = self._conn.execute(select(s.runs.c.status).where(s.runs.c.run_id == run_id)).first()
        return row[0] if row is not None else None

    def rows(self, stmt: Select[Any]) -> Iterator[tuple[Any, ...]]:
        """The rows of a select as the driver returns them (tuples), fetched in chunks: a table of a long run never
        sits in memory whole. The statement is compiled by SQLAlchemy and run on the driver's cursor, which costs a
        fraction of building a SQLAlchemy row per row (tens of thousands of them per run)."""
        compiled = stmt.compile(dialect=self._conn.dialect, compile_kwargs={"render_postcompile": True})
        params: Any = compiled.params
        if compiled.positional:
            params = tuple(params[name] for name in compiled.positiontup or ())
        dbapi: Any = self._conn.connection.dbapi_connection
        if self._conn.dialect.name == "postgresql":  # a server-side cursor: psycopg would fetch everything at once
            self._cursors += 1
            cursor = dbapi.cursor(name=f"keel_audit_{self._cursors}")
        else:
            cursor = dbapi.cursor()
        try:
            cursor.execute(str(compiled), params)
            while True:
                chunk = cursor.fetchmany(2_000)
                if not chunk:
                    return
                yield from chunk
        finally:
            cursor.close()

    def count(self, stmt: Select[Any]) -> int:
        return int(self._conn.execute(select(func.count()).select_from(stmt.subquery())).scalar_one())


@contextmanager
def read_snapshot(url: str) -> Iterator[Snapshot]:
    """One read-only transaction on the database at `url`: the head, the run's status and every row are read from
    the same committed state, so a run that commits meanwhile cannot make the rows disagree with the head."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN")  # pysqlite begins nothing for reads: one snapshot needs a transaction
            else:
                conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            try:
                yield Snapshot(conn)
            finally:
                conn.rollback()
    finally:
        engine.dispose()


# -- what the log says ---------------------------------------------------------------------------------


class _Intent:
    """An `intent.proposed` record: where it is, the intent's canonical JSON and the columns taken from it."""

    __slots__ = ("columns", "line", "payload", "seq", "ts")

    def __init__(self, line: int, seq: int, ts: str, payload: str, columns: tuple[Any, ...]) -> None:
        self.line, self.seq, self.ts, self.payload, self.columns = line, seq, ts, payload, columns


#: (intent_id, from_state, to_state, ts, reason, actor, line, seq, event) of one transition: an `intent.transition`
#: record, or the decision an `intent.proposed` carries (format 5); its row's columns first, in the order
#: `_check_transitions` selects them
_Transition = tuple[Any, Any, Any, Any, Any, Any, int, int, str]


@dataclass(slots=True)
class _Run:
    started: tuple[dict[str, Any], str, int, int] | None = None  # payload, ts, line, seq
    finished: tuple[dict[str, Any], int, int] | None = None  # payload, line, seq


@dataclass(slots=True)
class Findings:
    """What `RowAudit.check` found: the problems, notes on what could not be checked, and the rows read."""

    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)


class RowAudit:
    """The rows a run's committed records call for, gathered one record at a time, then checked against the
    database. `run_id` None: the whole database belongs to the log (a run folder's own); else only that run's rows
    are read."""

    def __init__(self, *, run_id: str | None = None) -> None:
        self._scope = run_id
        self._intents: dict[str, _Intent] = {}
        self._transitions: dict[str, list[_Transition]] = {}
        #: client order id → (order as recorded, in JSON, run_id, line, seq, event) of the last record that carried it
        self._orders: dict[str, tuple[str, str, int, int, str]] = {}
        #: the orders whose record in `_orders` is a worker log's
        self._from_workers: set[str] = set()
        #: fill id → (client_order_id, run_id, symbol, side, quantity, price, fee, ts, line, seq)
        self._fills: dict[str, tuple[Any, ...]] = {}
        #: (state, reason, actor, ts, line, seq) per `trading_state.changed`, in log order
        self._trading: list[tuple[Any, ...]] = []
        self._runs: dict[str, _Run] = {}
        self._format: int | None = None
        #: whether the run writes a row per transition (`run.started`'s `transition_rows`; always before format 3)
        self._transition_rows = True
        self._malformed: list[str] = []
        self._malformed_count = 0

    # -- feeding -------------------------------------------------------------------------------------

    def add(self, line: int, record: dict[str, Any], *, secondary: bool = False) -> None:
        """Take one committed record (at `line` of the log) into account. Records that describe no row are
        passed over; a lifecycle record without the fields its row needs is noted and left out. `secondary`: a
        record of a worker's log, fed after the run's own (`keel.journal.worker_logs`): an order the run's own
        log carries is the run's later record of it, so the worker's does not replace it."""
        payload = record["payload"]
        if type(payload) is not dict:
            return
        event = record["event"]
        try:
            if event == "intent.transition":
                self._move(intern(payload["intent_id"]), payload, line, record)
            elif event == "intent.proposed":
                if self._proposed(line, record, payload) and "decision" in payload:
                    decision = payload["decision"]
                    if type(decision) is not dict:
                        raise TypeError("'decision'")
                    self._move(intern(payload["intent_id"]), decision, line, record)
            elif event == "order.fill":
                self._fill(line, record, payload)
            elif event == "trading_state.changed":
                self._trading.append(
                    (payload["state"], payload["reason"], payload["actor"], record["ts"], line, record["seq"])
                )
            elif event == "run.started":
                run = self._runs.setdefault(record["run_id"], _Run())
                if run.started is None:
                    run.started = (payload, record["ts"], line, record["seq"])
                if self._format is None:
                    fmt = payload.get("journal_format", 1)
                    self._format = fmt if type(fmt) is int else 1
                    self._transition_rows = payload.get("transition_rows", True) is not False
            elif event == "run.finished":
                self._runs.setdefault(record["run_id"], _Run()).finished = (payload, line, record["seq"])
        except (KeyError, TypeError) as exc:
            self._malformed_count += 1
            if len(self._malformed) < 3:
                what = f"without {exc}" if isinstance(exc, KeyError) else f"with a field of the wrong type ({exc})"
                self._malformed.append(f"line {line}, seq {record['seq']}: {event} {what}")
            return
        order = payload.get("order")
        if type(order) is dict:
            coid = order.get("client_order_id")
            if type(coid) is str:
                if secondary:
                    if coid in self._orders and coid not in self._from_workers:
                        return
                    self._from_workers.add(coid)
                # as JSON text: a quarter of the memory of the parsed order, for every order of the run
                self._orders[coid] = (_dumps(order).decode(), intern(record["run_id"]), line, record["seq"], event)

    def _move(self, intent_id: str, transition: dict[str, Any], line: int, record: dict[str, Any]) -> None:
        """One transition of an intent: an `intent.transition` record's, or the decision an `intent.proposed` carries
        (journal format 5)."""
        moves = self._transitions.get(intent_id)
        if moves is None:
            moves = self._transitions[intent_id] = []
        moves.append(
            (
                intent_id,
                intern(transition["from"]),
                intern(transition["to"]),
                record["ts"],
                transition.get("reason"),
                intern(transition["actor"]),
                line,
                record["seq"],
                record["event"],
            )
        )

    def _proposed(self, line: int, record: dict[str, Any], payload: dict[str, Any]) -> bool:
        """Take a proposal; False for a second one of the same intent (whose decision, if any, is not the row's)."""
        intent_id, fields = payload["intent_id"], payload["intent"]
        if type(fields) is not dict:
            raise TypeError("'intent' fields")
        if intent_id in self._intents:
            return False  # the journal never logs a second proposal; the row is the first one's
        columns = (
            intern(fields["run_id"]),
            intern(fields["strategy_id"]),
            intern(fields["symbol"]),
            intern(fields["side"]),
            intern(fields["leg"]),
            fields["quantity"],
        )
        # as text: orjson's bytes keep the whole buffer they were written into, ten times the JSON
        payload_json = canonical(fields).decode()
        self._intents[intent_id] = _Intent(line, record["seq"], record["ts"], payload_json, columns)
        return True

    def _fill(self, line: int, record: dict[str, Any], payload: dict[str, Any]) -> None:
        fill_id = payload["fill_id"]
        if fill_id in self._fills:
            return  # a fill id is recorded once: the row is the first report's
        self._fills[fill_id] = (
            payload["client_order_id"],
            intern(record["run_id"]),
            intern(payload["symbol"]),
            intern(payload["side"]),
            payload["quantity"],
            payload["price"],
            payload["fee"],
            payload.get("filled_ts", record["ts"]),
            line,
            record["seq"],
        )

    # -- checking ------------------------------------------------------------------------------------

    def check(self, snapshot: Snapshot, *, committed_seq: int, trading_state: bool = True) -> Findings:
        """Compare every row in scope with what the records fed so far call for. `trading_state` False leaves the
        `kill_switch` table out (a shared database: the operator's history, not the run's)."""
        out = Findings()
        if self._malformed_count:
            shown = "; ".join(self._malformed)
            more = f" and {self._malformed_count - len(self._malformed)} more" if self._malformed_count > 3 else ""
            out.notes.append(
                f"{self._malformed_count} committed record(s) lack the fields of the row they describe and were "
                f"left out of the row checks: {shown}{more}"
            )
        self._check_runs(snapshot, out)
        missing = self._check_intents(snapshot, out)
        self._check_transitions(snapshot, out, missing)
        self._check_orders(snapshot, out)
        self._check_fills(snapshot, out)
        if trading_state:
            self._check_trading_state(snapshot, out)
        self._check_checkpoints(snapshot, out, committed_seq)
        self._check_approvals(snapshot, out)
        order = {t: i for i, t in enumerate(TABLES)}
        out.problems.sort(key=lambda p: (order.get(p.table or "", len(order)), p.key or ""))
        return out

    def _where(self, stmt: Select[Any], column: Any) -> Select[Any]:
        return stmt.where(column == self._scope) if self._scope is not None else stmt

    def _check_runs(self, snap: Snapshot, out: Findings) -> None:
        r = s.runs
        stmt = self._where(select(r.c.run_id, r.c.created_ts, r.c.mode, r.c.status, r.c.meta, r.c.summary), r.c.run_id)
        logged = dict(self._runs)
        n = 0
        for run_id, created_ts, mode, status, meta, summary in snap.rows(stmt.order_by(r.c.run_id)):
            n += 1
            run = logged.pop(run_id, None)
            if run is None:
                out.problems.append(_unlogged("runs", run_id, f"no run.started record for run {run_id} ({status})"))
                continue
            if run.started is None:
                out.problems.append(
                    _unlogged(
                        "runs",
                        run_id,
                        f"the log holds run.finished but no run.started record for run {run_id}: nothing accounts "
                        "for its created_ts and meta",
                    )
                )
            else:
                started, ts, line, seq = run.started
                where = (line, seq, "run.started")
                _compare(out, "runs", run_id, ("created_ts",), (created_ts,), (ts,), where)
                if "mode" in started:
                    _compare(out, "runs", run_id, ("mode",), (mode,), (started["mode"],), where)
                _compare_json(out, "runs", run_id, "meta", meta, started, where)
            if run.finished is None:
                if status == "complete":
                    out.problems.append(
                        _mismatch(
                            "runs",
                            run_id,
                            "status",
                            status,
                            "running",
                            (None, None, "run.finished"),
                            "no committed run.finished record: the log says the run did not finish",
                        )
                    )
                if summary is not None:
                    out.problems.append(
                        _mismatch(
                            "runs",
                            run_id,
                            "summary",
                            _clip(summary),
                            None,
                            (None, None, "run.finished"),
                            "no committed run.finished record holds a summary",
                        )
                    )
            else:
                finished, line, seq = run.finished
                where = (line, seq, "run.finished")
                _compare(out, "runs", run_id, ("status",), (status,), ("complete",), where)
                _compare_json(out, "runs", run_id, "summary", summary, finished, where)
        for run_id, run in logged.items():
            first = run.started or run.finished
            assert first is not None
            event = "run.started" if run.started is not None else "run.finished"
            out.problems.append(
                Problem(
                    first[-2],
                    first[-1],
                    K.ROW_MISSING,
                    f"the log records run {run_id} ({event}) but the database has no runs row",
                    table="runs",
                    key=run_id,
                )
            )
        out.rows["runs"] = n

    def _check_intents(self, snap: Snapshot, out: Findings) -> list[str]:
        """Returns the ids of logged intents that have no row in scope (their transitions are fetched by id)."""
        i = s.intents
        stmt = select(
            i.c.intent_id,
            i.c.run_id,
            i.c.strategy_id,
            i.c.symbol,
            i.c.side,
            i.c.leg,
            i.c.quantity,
            i.c.state,
            i.c.version,
            i.c.created_ts,
            i.c.updated_ts,
            i.c.last_reason,
            i.c.payload,
        )
        logged = dict(self._intents)
        transitions = self._transitions
        n = 0
        for row in snap.rows(self._where(stmt, i.c.run_id)):
            n += 1
            intent_id = row[0]
            intent = logged.pop(intent_id, None)
            if intent is None:
                out.problems.append(
                    _unlogged("intents", intent_id, f"no intent.proposed record for it ({row[4]} {row[3]}, {row[7]})")
                )
                continue
            moves = transitions.get(intent_id)
            if moves:
                last = moves[-1]
                expected = (*intent.columns, last[2], 1 + len(moves), intent.ts, last[3], last[4])
            else:
                expected = (*intent.columns, "proposed", 1, intent.ts, intent.ts, None)
            if row[1:12] != expected:
                proposal = (intent.line, intent.seq, "intent.proposed")
                history = (last[6], last[7], last[8]) if moves else proposal
                _compare(out, "intents", intent_id, _INTENT_COLUMNS[:6], row[1:7], expected[:6], proposal)
                _compare(out, "intents", intent_id, ("state", "version"), row[7:9], expected[6:8], history)
                _compare(out, "intents", intent_id, ("created_ts",), row[9:10], expected[8:9], proposal)
                _compare(out, "intents", intent_id, _INTENT_COLUMNS[9:], row[10:12], expected[9:], history)
            stored = row[12]
            if stored != intent.payload:
                _compare_json(
                    out,
                    "intents",
                    intent_id,
                    "payload",
                    stored,
                    orjson.loads(intent.payload),
                    (intent.line, intent.seq, "intent.proposed"),
                    canonical_form=True,
                )
        for intent_id, intent in logged.items():
            out.problems.append(
                Problem(
                    intent.line,
                    intent.seq,
                    K.ROW_MISSING,
                    f"the log proposed intent {intent_id} ({intent.columns[3]} {intent.columns[2]}) but the "
                    "database has no intents row",
                    table="intents",
                    key=intent_id,
                )
            )
        out.rows["intents"] = n
        return list(logged)

    def _check_transitions(self, snap: Snapshot, out: Findings, missing_intents: Sequence[str]) -> None:
        """Rows come in insertion order (the log's order) and are matched against each intent's logged transitions
        as they stream past; only the rows of an intent that stops matching are kept, to name what differs."""
        t = s.intent_transitions
        cols = (t.c.intent_id, t.c.from_state, t.c.to_state, t.c.ts, t.c.reason, t.c.actor)
        stmt = select(*cols)
        if self._scope is not None:
            stmt = stmt.where(t.c.intent_id.in_(select(s.intents.c.intent_id).where(s.intents.c.run_id == self._scope)))
        queries = [stmt.order_by(t.c.id)]
        if self._scope is not None:  # transitions of intents whose row is missing from the run
            for k in range(0, len(missing_intents), _CHUNK):
                ids = list(missing_intents[k : k + _CHUNK])
                queries.append(select(*cols).where(t.c.intent_id.in_(ids)).order_by(t.c.id))
        # Kept in the log only: every row is one no record calls for.
        logged = self._transitions if self._transition_rows else {}
        matched: dict[str, int] = {}  # intent → how many of its logged transitions its rows matched, in order
        differ: dict[str, list[tuple[Any, ...]]] = {}  # intent → its rows (from_state…actor), once one did not match
        none: list[_Transition] = []
        n = 0
        for query in queries:
            for row in snap.rows(query):
                n += 1
                intent_id = row[0]
                rows_of = differ.get(intent_id)
                if rows_of is not None:
                    rows_of.append(row[1:])
                    continue
                moves = logged.get(intent_id, none)
                k = matched.get(intent_id, 0)
                if k < len(moves) and moves[k][:6] == row:
                    matched[intent_id] = k + 1
                else:
                    differ[intent_id] = [m[1:6] for m in moves[:k]] + [row[1:]]
        for intent_id, moves in logged.items():
            k = matched.get(intent_id, 0)
            if intent_id not in differ and k != len(moves):
                differ[intent_id] = [m[1:6] for m in moves[:k]]
        for intent_id, rows_of in differ.items():
            self._compare_transitions(out, intent_id, rows_of, logged.get(intent_id, none))
        out.rows["intent_transitions"] = n

    def _compare_transitions(
        self, out: Findings, intent_id: str, stored: list[tuple[Any, ...]], logged: list[_Transition]
    ) -> None:
        """Name what differs between one intent's rows and its logged transitions, aligned on (from, to)."""
        table = "intent_transitions"
        matcher = difflib.SequenceMatcher(None, [r[:2] for r in stored], [m[1:3] for m in logged], autojunk=False)
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            pairs = min(i2 - i1, j2 - j1) if op in ("equal", "replace") else 0
            for k in range(pairs):
                row, move = stored[i1 + k], logged[j1 + k]
                for c, column in enumerate(_TRANSITION_COLUMNS):
                    if row[c] != move[1 + c]:
                        out.problems.append(
                            _mismatch(
                                table,
                                intent_id,
                                column,
                                row[c],
                                move[1 + c],
                                (move[6], move[7], move[8]),
                                f"transition {j1 + k + 1} ({move[1]} → {move[2]}): "
                                f"{column} is {_show(row[c])} in the database, {_show(move[1 + c])} in the log",
                            )
                        )
            for k in range(j1 + pairs, j2):
                move = logged[k]
                out.problems.append(
                    Problem(
                        move[6],
                        move[7],
                        K.ROW_MISSING,
                        f"transition {k + 1} ({move[1]} → {move[2]}, {move[3]}, by {move[5]}) is in the log but "
                        "has no intent_transitions row",
                        table=table,
                        key=intent_id,
                        logged=list(move[1:6]),
                    )
                )
            for k in range(i1 + pairs, i2):
                row = stored[k]
                out.problems.append(
                    _unlogged(
                        table,
                        intent_id,
                        f"a transition {row[0]} → {row[1]} ({row[2]}, by {row[4]}) that no intent.transition "
                        "record holds",
                        stored=list(row),
                    )
                )

    def _check_orders(self, snap: Snapshot, out: Findings) -> None:
        o = s.orders
        stmt = self._where(
            select(
                o.c.client_order_id,
                o.c.intent_id,
                o.c.run_id,
                o.c.symbol,
                o.c.side,
                o.c.order_type,
                o.c.quantity,
                o.c.status,
                o.c.filled_quantity,
                o.c.average_price,
                o.c.fees,
                o.c.submitted_ts,
                o.c.updated_ts,
                o.c.payload,
            ),
            o.c.run_id,
        )
        fmt = self._format
        if not self._orders and (fmt is None or fmt < ORDER_FACTS_FORMAT):
            n = snap.count(stmt)
            out.rows["orders"] = 0
            if fmt is not None or n:
                what = f"journal format {fmt}" if fmt is not None else "a log without a run.started record"
                out.notes.append(
                    f"{what}: order events do not carry the order, so the {n:,} orders row(s) were not checked "
                    "against the log"
                )
            return
        logged = dict(self._orders)
        n = 0
        for row in snap.rows(stmt):
            n += 1
            coid = row[0]
            entry = logged.pop(coid, None)
            if entry is None:
                out.problems.append(
                    _unlogged("orders", coid, f"no record carries order {coid} ({row[4]} {row[3]}, {row[7]})")
                )
                continue
            order_json, run_id, line, seq, event = entry
            order = orjson.loads(order_json)
            g = order.get
            expected = (
                coid,
                run_id,
                g("symbol"),
                g("side"),
                g("order_type"),
                g("quantity"),
                g("status"),
                g("filled_quantity"),
                g("average_price"),
                g("fees"),
                _storage_ts(g("submitted_ts")),
                _storage_ts(g("updated_ts")),
            )
            where = (line, seq, event)
            if row[1:13] != expected:
                _compare(out, "orders", coid, _ORDER_COLUMNS, row[1:13], expected, where)
            # since journal format 4 the payload holds only what the columns (checked above) do not
            expected_payload = {k: order.get(k) for k in PAYLOAD_ONLY} if _narrow(row[13]) else order
            _compare_json(out, "orders", coid, "payload", row[13], expected_payload, where)
        for coid, (order_json, _, line, seq, event) in logged.items():
            order = orjson.loads(order_json)
            out.problems.append(
                Problem(
                    line,
                    seq,
                    K.ROW_MISSING,
                    f"the log records order {coid} ({event}, {order.get('status')}) but the database has no orders row",
                    table="orders",
                    key=coid,
                )
            )
        out.rows["orders"] = n

    def _check_fills(self, snap: Snapshot, out: Findings) -> None:
        f = s.fills
        stmt = self._where(
            select(
                f.c.fill_id,
                f.c.client_order_id,
                f.c.run_id,
                f.c.symbol,
                f.c.side,
                f.c.quantity,
                f.c.price,
                f.c.fee,
                f.c.ts,
            ),
            f.c.run_id,
        )
        logged = dict(self._fills)
        n = 0
        for row in snap.rows(stmt):
            n += 1
            fill_id = row[0]
            fill = logged.pop(fill_id, None)
            if fill is None:
                out.problems.append(
                    _unlogged(
                        "fills",
                        fill_id,
                        f"no order.fill record for fill {fill_id} ({row[4]} {row[5]} {row[3]} at {row[6]}, "
                        f"order {row[1]})",
                    )
                )
                continue
            if row[1:] != fill[:8]:
                _compare(out, "fills", fill_id, _FILL_COLUMNS, row[1:], fill[:8], (fill[8], fill[9], "order.fill"))
        for fill_id, fill in logged.items():
            out.problems.append(
                Problem(
                    fill[8],
                    fill[9],
                    K.ROW_MISSING,
                    f"the log records fill {fill_id} (order.fill: {fill[3]} {fill[4]} {fill[2]} at {fill[5]}, "
                    f"order {fill[0]}) but the database has no fills row",
                    table="fills",
                    key=fill_id,
                    logged=list(fill[:8]),
                )
            )
        out.rows["fills"] = n

    def _check_trading_state(self, snap: Snapshot, out: Findings) -> None:
        k = s.kill_switch
        rows = list(snap.rows(select(k.c.id, k.c.state, k.c.reason, k.c.actor, k.c.ts).order_by(k.c.id)))
        logged = self._trading
        out.rows["kill_switch"] = len(rows)
        stored = [r[1:] for r in rows]
        if stored == [m[:4] for m in logged]:
            return
        table = "kill_switch"
        matcher = difflib.SequenceMatcher(None, stored, [m[:4] for m in logged], autojunk=False)
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op == "equal":
                continue
            pairs = min(i2 - i1, j2 - j1) if op == "replace" else 0
            for p in range(pairs):
                row, change = rows[i1 + p], logged[j1 + p]
                _compare(
                    out,
                    table,
                    f"id {row[0]}",
                    _TRADING_COLUMNS,
                    row[1:],
                    change[:4],
                    (change[4], change[5], "trading_state.changed"),
                )
            for p in range(j1 + pairs, j2):
                change = logged[p]
                out.problems.append(
                    Problem(
                        change[4],
                        change[5],
                        K.ROW_MISSING,
                        f"the log records the trading state {change[0]} ({change[1]}, by {change[2]}, {change[3]}) "
                        "but the database has no kill_switch row for it",
                        table=table,
                        key=f"change {p + 1}",
                        logged=list(change[:4]),
                    )
                )
            for p in range(i1 + pairs, i2):
                row = rows[p]
                out.problems.append(
                    _unlogged(
                        table,
                        f"id {row[0]}",
                        f"a trading state {row[1]} ({row[2]}, by {row[3]}, {row[4]}) that no trading_state.changed "
                        "record holds",
                        stored=list(row[1:]),
                    )
                )

    def _check_checkpoints(self, snap: Snapshot, out: Findings, committed_seq: int) -> None:
        c = s.checkpoints
        n = 0
        for run_id, snapshot in snap.rows(
            self._where(select(c.c.run_id, c.c.snapshot), c.c.run_id).order_by(c.c.run_id)
        ):
            n += 1
            try:
                state = orjson.loads(snapshot)
            except (orjson.JSONDecodeError, TypeError):
                out.problems.append(
                    _mismatch(
                        "checkpoints",
                        run_id,
                        "snapshot",
                        _clip(snapshot),
                        None,
                        (None, None, ""),
                        "the snapshot is not JSON",
                    )
                )
                continue
            seq = state.get("journal_seq") if isinstance(state, dict) else None
            if type(seq) is not int or seq > committed_seq:
                what = "has no journal_seq" if type(seq) is not int else f"resumes from seq {seq}"
                out.problems.append(
                    _mismatch(
                        "checkpoints",
                        run_id,
                        "snapshot.journal_seq",
                        seq,
                        committed_seq,
                        (None, None, ""),
                        f"the checkpoint {what}, past the committed head seq {committed_seq}: it describes records "
                        "the log does not hold as committed",
                    )
                )
        out.rows["checkpoints"] = n

    def _check_approvals(self, snap: Snapshot, out: Findings) -> None:
        a = s.approvals
        stmt = select(a.c.intent_id, a.c.outcome, a.c.approver, a.c.ts)
        if self._scope is not None:
            stmt = stmt.where(a.c.intent_id.in_(select(s.intents.c.intent_id).where(s.intents.c.run_id == self._scope)))
        n = 0
        for intent_id, outcome, approver, ts in snap.rows(stmt.order_by(a.c.intent_id)):
            n += 1
            out.problems.append(
                _unlogged(
                    "approvals",
                    intent_id,
                    f"an approval ({outcome} by {approver}, {ts}) that no record of the log holds",
                )
            )
        out.rows["approvals"] = n


# -- helpers -------------------------------------------------------------------------------------------


def _storage_ts(text: Any) -> Any:
    """The storage form (`to_iso`) of a timestamp an order carries in its JSON form (`…:SSZ` or `…:SS.ffffffZ` in
    UTC); other text is parsed, and what is no aware timestamp is returned as it is (it then differs from the row)."""
    if type(text) is str and text[-1:] == "Z":
        n = len(text)
        if n == 20:
            return text[:19] + ".000000+00:00"
        if n == 27 and text[19] == ".":
            return text[:26] + "+00:00"
    if not isinstance(text, str):
        return text
    try:
        return to_iso(datetime.fromisoformat(text))
    except (ValueError, InputError):  # not a timestamp, or one without a time zone: compared as text
        return text


def _show(value: Any) -> str:
    """A value as the report shows it: JSON, cut short."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= _SHOW else text[: _SHOW - 1] + "…"


def _clip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > 4 * _SHOW:
        return value[: 4 * _SHOW] + "…"
    return value


def _mismatch(
    table: str,
    key: str,
    column: str,
    stored: Any,
    logged: Any,
    where: tuple[int | None, int | None, str],
    detail: str | None = None,
) -> Problem:
    line, seq, event = where
    if detail is None:
        source = f" ({event})" if event else ""
        detail = f"{column} is {_show(stored)} in the database, {_show(logged)} in the log{source}"
    return Problem(line, seq, K.ROW_MISMATCH, detail, table=table, key=key, column=column, stored=stored, logged=logged)


def _unlogged(table: str, key: str, detail: str, *, stored: Any = None) -> Problem:
    return Problem(None, None, K.ROW_UNLOGGED, detail, table=table, key=key, stored=stored)


def _compare(
    out: Findings,
    table: str,
    key: str,
    columns: Sequence[str],
    stored: Sequence[Any],
    logged: Sequence[Any],
    where: tuple[int | None, int | None, str],
) -> None:
    for column, a, b in zip(columns, stored, logged, strict=True):
        if a != b or (type(a) is not type(b) and not _same_number(a, b)):
            out.problems.append(_mismatch(table, key, column, a, b, where))


def _same_number(a: Any, b: Any) -> bool:
    """An integer the database returns for a float column (SQLite stores 3.0 as REAL, but a row written by another
    tool may hold INTEGER 3) is the same value; True and 1 are not."""
    numbers = (int, float)
    return type(a) in numbers and type(b) in numbers and a == b


def _narrow(payload: Any) -> bool:
    """Whether an orders row's payload is journal format 4's (what the columns do not hold), not a whole order."""
    try:
        parsed = orjson.loads(payload) if isinstance(payload, str) else None
    except orjson.JSONDecodeError:
        return False
    return isinstance(parsed, dict) and "symbol" not in parsed


def _compare_json(
    out: Findings,
    table: str,
    key: str,
    column: str,
    stored: Any,
    logged: dict[str, Any],
    where: tuple[int | None, int | None, str],
    *,
    canonical_form: bool = False,
) -> None:
    """A JSON text column against the object the log holds: one problem per differing top-level field
    (`column.field`). `canonical_form`: the column must also be byte for byte the journal's canonical JSON."""
    try:
        parsed = orjson.loads(stored) if isinstance(stored, str) else None
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        out.problems.append(
            _mismatch(
                table, key, column, _clip(stored), logged, where, f"{column} is not the JSON object the log holds"
            )
        )
        return
    if parsed == logged:
        if canonical_form:
            out.problems.append(
                _mismatch(
                    table,
                    key,
                    column,
                    _clip(stored),
                    canonical(logged).decode(),
                    where,
                    f"{column} holds the logged fields in other bytes than the journal writes (not its canonical "
                    "JSON): it was rewritten",
                )
            )
        return
    for name in sorted(parsed.keys() | logged.keys()):
        a, b = parsed.get(name, _NO_RECORD), logged.get(name, _NO_RECORD)
        if a == b and type(a) is type(b):
            continue
        if a is _NO_RECORD:
            detail = f"{column}.{name} is absent from the database, {_show(b)} in the log ({where[2]})"
            a = None
        elif b is _NO_RECORD:
            detail = f"{column}.{name} is {_show(a)} in the database, absent from the log ({where[2]})"
            b = None
        elif _same_number(a, b):
            continue
        else:
            detail = None
        out.problems.append(_mismatch(table, key, f"{column}.{name}", a, b, where, detail))
