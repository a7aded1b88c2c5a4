"""`verify_run` checks every row of a run's database against its event log (the log is the evidence): real runs are
built once, copied per test, edited with sqlite3, and each edit must be named with its table, key, column and both
values. Records past the committed head are tampering once the run is complete, a torn tail before."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from journal_contract import T0, _fill, make_intent, make_order
from typer.testing import CliRunner

from keel import cli
from keel.backtest.run import execute_run
from keel.data.synthetic import generate_regime_ohlcv
from keel.domain.decisions import TradingState
from keel.domain.intents import IntentState
from keel.journal import IntentStore, Journal, ProblemKind, RunStatus, VerifyReport, verify_run
from keel.journal.eventlog import canonical, encode_record
from keel.journal.verify import RUN_DB_FILE, RUN_LOG_FILE
from keel.settings import Mode, Profile, load_settings
from keel.strategies import build_strategy

K = ProblemKind
NS0 = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z, where the synthetic market starts
MINUTE = 60 * 10**9
#: halted and active by turns, ten minutes each, changing between two bars: orders working at a halt are cancelled
HALTS = [
    (NS0 + k * 10 * MINUTE + 30 * 10**9, TradingState.HALTED if k % 2 else TradingState.ACTIVE, "drill")
    for k in range(1, 150)
]


class _Interrupt(Exception):
    """Stops a run half-way, as a crash would: what was committed stays, the open batch is lost."""


def _build(
    base: Path, name: str, *, interrupt: bool = False, symbols: int = 2, bars: int = 1_500, **kwargs: Any
) -> Path:
    frames = generate_regime_ohlcv(symbols, bars, seed=5)
    settings = load_settings(
        var_dir=base / name / "var",
        risk={"require_stop": False, "max_order_notional": 20_000, "max_exposure": 30_000},
        journal={"batch_size": 50},
    )

    def stop_half_way(done: int, total: int) -> None:
        if interrupt and done > total // 2:
            raise _Interrupt

    run_dir = base / name / "run"
    with contextlib.suppress(_Interrupt):
        execute_run(
            frames,
            settings,
            build_strategy("sma_cross", {"fast": 5, "slow": 20}),
            out_dir=run_dir,
            on_progress=stop_half_way,
            **kwargs,
        )
    return run_dir


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The pristine runs, built once per module; tests edit copies of them."""
    base = tmp_path_factory.mktemp("runs")
    return {
        "replay": _build(base, "replay"),
        "halted": _build(base, "halted", profile=Profile.PAPER, trading_script=HALTS),
        # a session commits (and fsyncs) every write: a shorter market keeps it quick
        "paper": _build(base, "paper", mode=Mode.PAPER, profile=Profile.PAPER, symbols=1, bars=600),
        "interrupted": _build(base, "interrupted", interrupt=True),
    }


@pytest.fixture
def copy_of(built: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    def _copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(built[name], target)
        return target

    return _copy


@pytest.fixture
def run(copy_of: Callable[[str], Path]) -> Path:
    """A copy of the complete replay run."""
    return copy_of("replay")


# -- helpers ---------------------------------------------------------------------------------------------


def sql(run: Path, statement: str, *params: Any) -> None:
    with sqlite3.connect(run / RUN_DB_FILE) as con:
        con.execute(statement, params)
    con.close()


def one(run: Path, query: str, *params: Any) -> Any:
    with sqlite3.connect(run / RUN_DB_FILE) as con:
        row = con.execute(query, params).fetchone()
    con.close()
    assert row is not None, query
    return row[0] if len(row) == 1 else row


def records(run: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (run / RUN_LOG_FILE).read_bytes().splitlines()]


def record_of(run: Path, event: str, **payload: Any) -> dict[str, Any]:
    """The one record of `event` whose payload holds these values."""
    found = [
        r for r in records(run) if r["event"] == event and all(r["payload"].get(k) == v for k, v in payload.items())
    ]
    assert len(found) == 1, (event, payload, len(found))
    return found[0]


def rows(report: VerifyReport) -> list[tuple[ProblemKind, str | None, str | None, str | None]]:
    return [(p.kind, p.table, p.key, p.column) for p in report.problems]


def append_forged(run: Path, event: str, payload: dict[str, Any]) -> None:
    """Append a record with a correct hash and link, as someone who knows the format would."""
    last = records(run)[-1]
    body = {
        "event": event,
        "payload": payload,
        "prev_hash": last["hash"],
        "run_id": last["run_id"],
        "seq": last["seq"] + 1,
        "stage": "monitor",
        "ts": last["ts"],
    }
    with (run / RUN_LOG_FILE).open("ab") as fh:
        fh.write(encode_record(body)[0])


def an_intent(run: Path, state: str = "executed") -> str:
    return one(run, "select intent_id from intents where state = ? order by intent_id limit 1", state)


def a_fill(run: Path) -> tuple[str, float]:
    return one(run, "select fill_id, price from fills order by fill_id limit 1")


# -- untouched runs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["replay", "halted", "paper", "interrupted"])
def test_an_untouched_run_verifies_with_every_row_checked(copy_of: Callable[[str], Path], name: str) -> None:
    run = copy_of(name)
    report = verify_run(run)
    assert report.ok, [str(p) for p in report.problems]
    assert report.notes == []
    assert report.rows is not None
    for table in ("runs", "intents", "orders", "fills", "checkpoints"):
        assert report.rows[table] > 0, table
    # A session writes a row per transition; a replay keeps them in the log only (journal format 3).
    transitions = one(run, "select count(*) from intent_transitions")
    assert report.rows["intent_transitions"] == transitions
    assert (transitions > 0) == (name == "paper")
    assert report.rows["intents"] == one(run, "select count(*) from intents")
    assert report.rows["fills"] == one(run, "select count(*) from fills")
    assert report.run_status == ("running" if name == "interrupted" else "complete")


def test_the_halted_run_has_cancelled_orders_and_they_are_checked(copy_of: Callable[[str], Path]) -> None:
    run = copy_of("halted")
    cancelled = [r for r in records(run) if r["event"] == "order.cancelled" and r["payload"]["why"] == "halted"]
    assert cancelled
    coid = cancelled[0]["payload"]["client_order_id"]
    sql(run, "update orders set status = 'filled' where client_order_id = ?", coid)
    report = verify_run(run)
    assert rows(report) == [(K.ROW_MISMATCH, "orders", coid, "status")]
    (problem,) = report.problems
    assert (problem.stored, problem.logged) == ("filled", "cancelled")
    # the evidence is the last record that carried the order
    last = [r for r in records(run) if r["payload"].get("order", {}).get("client_order_id") == coid][-1]
    assert (problem.line, problem.seq) == (last["seq"], last["seq"])


# -- fills -------------------------------------------------------------------------------------------------


def test_a_doubled_fill_price_is_named_with_both_values_and_its_record(run: Path) -> None:
    fill_id, price = a_fill(run)
    sql(run, "update fills set price = price * 2 where fill_id = ?", fill_id)
    report = verify_run(run)
    assert rows(report) == [(K.ROW_MISMATCH, "fills", fill_id, "price")]
    (problem,) = report.problems
    assert problem.stored == price * 2 and problem.logged == price
    evidence = record_of(run, "order.fill", fill_id=fill_id)
    assert problem.seq == evidence["seq"] and problem.line == evidence["seq"]
    assert report.tampered and not report.torn
    text = str(problem)
    assert text.startswith(f"fills {fill_id}: row_mismatch: price is {price * 2!r} in the database, {price!r}")
    assert f"seq {evidence['seq']}" in text


def test_a_deleted_fill_row_is_missing(run: Path) -> None:
    fill_id, _ = a_fill(run)
    sql(run, "delete from fills where fill_id = ?", fill_id)
    assert rows(verify_run(run)) == [(K.ROW_MISSING, "fills", fill_id, None)]


def test_an_inserted_fill_row_is_unlogged(run: Path) -> None:
    fill_id, _ = a_fill(run)
    sql(
        run,
        "insert into fills select 'fl-forged', client_order_id, run_id, symbol, side, quantity, price, fee, ts "
        "from fills where fill_id = ?",
        fill_id,
    )
    report = verify_run(run)
    assert rows(report) == [(K.ROW_UNLOGGED, "fills", "fl-forged", None)]
    assert report.problems[0].line is None and report.problems[0].seq is None


# -- orders ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "edit"),
    [
        ("filled_quantity", "filled_quantity = filled_quantity - 1"),
        ("status", "status = 'cancelled'"),
        ("average_price", "average_price = average_price * 1.01"),
        ("fees", "fees = 0"),
    ],
)
def test_an_edited_order_column_is_a_mismatch(run: Path, column: str, edit: str) -> None:
    coid = one(run, "select client_order_id from orders where status = 'filled' order by 1 limit 1")
    stored = one(run, f"select {column} from orders where client_order_id = ?", coid)
    sql(run, f"update orders set {edit} where client_order_id = ?", coid)
    report = verify_run(run)
    assert rows(report) == [(K.ROW_MISMATCH, "orders", coid, column)]
    assert report.problems[0].logged == stored


def test_an_order_payload_edited_names_the_field(run: Path) -> None:
    coid = one(run, "select client_order_id from orders where status = 'filled' order by 1 limit 1")
    order = orjson.loads(one(run, "select payload from orders where client_order_id = ?", coid))
    real = order["broker_order_id"]
    order["broker_order_id"] = real + "-x"
    sql(run, "update orders set payload = ? where client_order_id = ?", orjson.dumps(order).decode(), coid)
    report = verify_run(run)
    assert rows(report) == [(K.ROW_MISMATCH, "orders", coid, "payload.broker_order_id")]
    assert (report.problems[0].stored, report.problems[0].logged) == (real + "-x", real)


def test_an_order_payload_holds_only_what_its_columns_do_not_and_a_whole_order_still_verifies(run: Path) -> None:
    # Journal format 4: the payload holds the facts the columns do not (the rest would be said twice). A row of an
    # earlier format holds the whole order; its columns are checked the same, and so is every field of it.
    from keel.journal.store_orders import PAYLOAD_ONLY, facts_from_row

    coid = one(run, "select client_order_id from orders where status = 'filled' order by 1 limit 1")
    assert set(orjson.loads(one(run, "select payload from orders where client_order_id = ?", coid))) == set(
        PAYLOAD_ONLY
    )
    with sqlite3.connect(run / "keel.db") as con:
        con.row_factory = sqlite3.Row
        whole = facts_from_row(con.execute("select * from orders where client_order_id = ?", (coid,)).fetchone())
    sql(run, "update orders set payload = ? where client_order_id = ?", orjson.dumps(whole).decode(), coid)
    assert rows(verify_run(run)) == []
    whole["fees"] = whole["fees"] + 1.0  # a whole order's every field is still held to the log
    sql(run, "update orders set payload = ? where client_order_id = ?", orjson.dumps(whole).decode(), coid)
    assert rows(verify_run(run)) == [(K.ROW_MISMATCH, "orders", coid, "payload.fees")]


def test_a_deleted_order_row_is_missing(run: Path) -> None:
    coid = one(run, "select client_order_id from orders order by 1 limit 1")
    sql(run, "delete from orders where client_order_id = ?", coid)
    assert rows(verify_run(run)) == [(K.ROW_MISSING, "orders", coid, None)]


# -- intents and transitions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "edit", "stored"),
    [
        ("state", "state = 'failed'", "failed"),
        ("version", "version = version + 1", None),
        ("quantity", "quantity = quantity * 2", None),
        ("last_reason", "last_reason = 'FORGED'", "FORGED"),
    ],
)
def test_an_edited_intent_column_is_a_mismatch(run: Path, column: str, edit: str, stored: Any) -> None:
    intent_id = an_intent(run)
    before = one(run, f"select {column} from intents where intent_id = ?", intent_id)
    sql(run, f"update intents set {edit} where intent_id = ?", intent_id)
    report = verify_run(run)
    assert rows(report) == [(K.ROW_MISMATCH, "intents", intent_id, column)]
    (problem,) = report.problems
    assert problem.logged == before
    if stored is not None:
        assert problem.stored == stored
    if column in ("state", "version", "last_reason"):  # the evidence is the intent's last transition
        last = [r for r in records(run) if r["event"] == "intent.transition" and r["payload"]["intent_id"] == intent_id]
        assert problem.seq == last[-1]["seq"]
    else:
        assert problem.seq == record_of(run, "intent.proposed", intent_id=intent_id)["seq"]


def test_an_edited_intent_payload_names_the_field(run: Path) -> None:
    intent_id = an_intent(run)
    fields = orjson.loads(one(run, "select payload from intents where intent_id = ?", intent_id))
    real = fields["quantity"]
    fields["quantity"] = real + 1
    sql(run, "update intents set payload = ? where intent_id = ?", canonical(fields).decode(), intent_id)
    report = verify_run(run)
    assert rows(report) == [(K.ROW_MISMATCH, "intents", intent_id, "payload.quantity")]
    assert (report.problems[0].stored, report.problems[0].logged) == (real + 1, real)


def test_an_intent_payload_with_the_same_fields_in_other_bytes_is_a_mismatch(run: Path) -> None:
    intent_id = an_intent(run)
    fields = orjson.loads(one(run, "select payload from intents where intent_id = ?", intent_id))
    sql(run, "update intents set payload = ? where intent_id = ?", orjson.dumps(fields).decode() + " ", intent_id)
    assert rows(verify_run(run)) == [(K.ROW_MISMATCH, "intents", intent_id, "payload")]


def test_a_deleted_intent_row_is_missing_and_a_forged_one_unlogged(run: Path) -> None:
    intent_id = an_intent(run)
    sql(run, "update intents set intent_id = 'it-forged' where intent_id = ?", intent_id)
    report = verify_run(run)
    assert rows(report) == [
        (K.ROW_MISSING, "intents", intent_id, None),
        (K.ROW_UNLOGGED, "intents", "it-forged", None),
    ]


@pytest.fixture
def session(copy_of: Callable[[str], Path]) -> Path:
    """A copy of the complete paper session: the mode that writes a row per transition."""
    return copy_of("paper")


def test_a_deleted_transition_row_is_missing(session: Path) -> None:
    run = session
    intent_id = an_intent(run)
    doomed = one(
        run, "select id, from_state, to_state from intent_transitions where intent_id = ? order by id", intent_id
    )
    sql(run, "delete from intent_transitions where id = ?", doomed[0])
    report = verify_run(run)
    assert rows(report) == [(K.ROW_MISSING, "intent_transitions", intent_id, None)]
    assert f"transition 1 ({doomed[1]} → {doomed[2]}" in report.problems[0].detail


def test_an_edited_transition_reason_is_a_mismatch(session: Path) -> None:
    run = session
    intent_id = an_intent(run)
    second = one(run, "select id from intent_transitions where intent_id = ? order by id limit 1 offset 1", intent_id)
    sql(run, "update intent_transitions set reason = 'FORGED' where id = ?", second)
    report = verify_run(run)
    assert rows(report) == [(K.ROW_MISMATCH, "intent_transitions", intent_id, "reason")]
    assert report.problems[0].stored == "FORGED" and "transition 2" in report.problems[0].detail


def test_an_inserted_transition_row_is_unlogged(session: Path) -> None:
    run = session
    intent_id = an_intent(run)
    sql(
        run,
        "insert into intent_transitions (intent_id, from_state, to_state, ts, reason, actor) "
        "select intent_id, 'executed', 'approved', ts, null, 'mallory' from intent_transitions where intent_id = ? "
        "limit 1",
        intent_id,
    )
    assert rows(verify_run(run)) == [(K.ROW_UNLOGGED, "intent_transitions", intent_id, None)]


def test_a_transition_row_in_a_replay_is_unlogged(run: Path) -> None:
    """A replay keeps its transitions in the log only: any row is one that no record calls for."""
    intent_id = an_intent(run, "blocked")
    sql(
        run,
        "insert into intent_transitions (intent_id, from_state, to_state, ts, reason, actor) "
        "select intent_id, 'blocked', 'approved', updated_ts, null, 'mallory' from intents where intent_id = ?",
        intent_id,
    )
    assert rows(verify_run(run)) == [(K.ROW_UNLOGGED, "intent_transitions", intent_id, None)]


def test_a_replays_transitions_are_proved_by_its_intent_rows(run: Path) -> None:
    """Without transition rows, the intent's state, version and last reason still have to match its logged moves."""
    intent_id = an_intent(run, "blocked")
    sql(run, "update intents set version = version + 1 where intent_id = ?", intent_id)
    assert rows(verify_run(run)) == [(K.ROW_MISMATCH, "intents", intent_id, "version")]


def test_a_first_transition_edited_is_named_with_the_proposal_that_carries_it(session: Path) -> None:
    """Journal format 5: the proposal carries the intent's first transition, and is the evidence for its row."""
    run = session
    intent_id = an_intent(run)
    first = one(run, "select id from intent_transitions where intent_id = ? order by id limit 1", intent_id)
    sql(run, "update intent_transitions set actor = 'mallory' where id = ?", first)
    report = verify_run(run)
    assert rows(report) == [(K.ROW_MISMATCH, "intent_transitions", intent_id, "actor")]
    proposed = record_of(run, "intent.proposed", intent_id=intent_id)
    assert "decision" in proposed["payload"] and report.problems[0].seq == proposed["seq"]
    assert "transition 1 (proposed → " in report.problems[0].detail


def test_a_blocked_intent_edited_to_approved_is_a_mismatch_with_its_proposal(run: Path) -> None:
    """A replay's blocked intent has no transition record at all: its decision is inside its proposal."""
    intent_id = an_intent(run, "blocked")
    proposed = record_of(run, "intent.proposed", intent_id=intent_id)
    assert proposed["payload"]["decision"]["to"] == "blocked"
    assert not [r for r in records(run) if r["event"] == "intent.transition" and r["payload"]["intent_id"] == intent_id]
    sql(run, "update intents set state = 'approved' where intent_id = ?", intent_id)
    report = verify_run(run)
    assert rows(report) == [(K.ROW_MISMATCH, "intents", intent_id, "state")]
    assert report.problems[0].seq == proposed["seq"]


# -- runs and checkpoints ----------------------------------------------------------------------------------


def test_an_edited_run_summary_names_the_field(run: Path) -> None:
    run_id = one(run, "select run_id from runs")
    summary = orjson.loads(one(run, "select summary from runs"))
    real = summary["pnl"]
    summary["pnl"] = real + 1_000
    sql(run, "update runs set summary = ?", canonical(summary).decode())
    report = verify_run(run)
    assert rows(report) == [(K.ROW_MISMATCH, "runs", run_id, "summary.pnl")]
    assert (report.problems[0].stored, report.problems[0].logged) == (real + 1_000, real)
    assert report.problems[0].seq == record_of(run, "run.finished")["seq"]


def test_a_run_marked_complete_without_its_finished_record_is_a_mismatch(copy_of: Callable[[str], Path]) -> None:
    run = copy_of("interrupted")
    run_id = one(run, "select run_id from runs")
    sql(run, "update runs set status = 'complete'")
    assert rows(verify_run(run)) == [(K.ROW_MISMATCH, "runs", run_id, "status")]


def test_a_checkpoint_past_the_committed_head_is_a_mismatch(run: Path) -> None:
    run_id, snapshot = one(run, "select run_id, snapshot from checkpoints")
    state = orjson.loads(snapshot)
    head = records(run)[-1]["seq"]
    state["journal_seq"] = head + 10
    sql(run, "update checkpoints set snapshot = ?", canonical(state).decode())
    report = verify_run(run)
    assert rows(report) == [(K.ROW_MISMATCH, "checkpoints", run_id, "snapshot.journal_seq")]
    assert (report.problems[0].stored, report.problems[0].logged) == (head + 10, head)


def test_an_approval_row_is_unlogged(run: Path) -> None:
    intent_id = an_intent(run)
    sql(
        run,
        "insert into approvals (intent_id, mode, outcome, approver, reason, ts, expires_ts) "
        "values (?, 'manual', 'approved', 'mallory', null, '2024-01-01T00:00:00.000000+00:00', null)",
        intent_id,
    )
    assert rows(verify_run(run)) == [(K.ROW_UNLOGGED, "approvals", intent_id, None)]


# -- records past the committed head ----------------------------------------------------------------------


def forged_fill(run: Path) -> dict[str, Any]:
    fill = record_of(run, "order.fill", fill_id=a_fill(run)[0])["payload"]
    return {**fill, "fill_id": "fl-forged"}


def test_a_record_appended_to_a_complete_run_is_tampering(run: Path) -> None:
    head = records(run)[-1]["seq"]
    append_forged(run, "order.fill", forged_fill(run))
    report = verify_run(run)
    assert [p.kind for p in report.problems] == [K.APPENDED]
    assert report.tampered and not report.torn
    assert report.problems[0].seq == head + 1 and "complete run" in report.problems[0].detail


def test_the_same_record_appended_to_an_interrupted_run_is_a_torn_tail(copy_of: Callable[[str], Path]) -> None:
    run = copy_of("interrupted")
    head = records(run)[-1]["seq"]
    append_forged(run, "order.fill", forged_fill(run))
    report = verify_run(run)
    assert [p.kind for p in report.problems] == [K.TORN_TAIL]
    assert report.torn and not report.tampered and report.problems[0].seq == head + 1


def test_hiding_appended_records_by_reopening_the_run_is_still_tampering(run: Path) -> None:
    append_forged(run, "order.fill", forged_fill(run))
    sql(run, "update runs set status = 'running'")
    report = verify_run(run)
    run_id = one(run, "select run_id from runs")
    assert rows(report) == [(K.TORN_TAIL, None, None, None), (K.ROW_MISMATCH, "runs", run_id, "status")]
    assert report.tampered


# -- journal format 1 --------------------------------------------------------------------------------------


def write_format_1_run(folder: Path) -> None:
    """A run folder as journal format 1 wrote it: order events without the order, rows written beside them."""
    journal = Journal.open(
        url=f"sqlite:///{folder / RUN_DB_FILE}", log_path=folder / RUN_LOG_FILE, log_id="run-1", write_through=True
    )
    store = journal.store
    meta = {"run_id": "run-1", "mode": "paper", "bars": 3}
    store.start_run("run-1", mode="paper", config_hash="run-1", meta=meta, ts=T0)
    journal.event("runtime", "run.started", meta, ts=T0, run_id="run-1")
    intent = make_intent()
    iid = intent.intent_id
    journal.create_intent(intent, ts=T0, stage="strategist")
    for source, target, actor in (
        (IntentState.PROPOSED, IntentState.APPROVED, "auto-policy"),
        (IntentState.APPROVED, IntentState.EXECUTING, "executor"),
        (IntentState.EXECUTING, IntentState.EXECUTED, "executor"),
    ):
        journal.transition(iid, source, target, ts=T0, actor=actor, stage="executor", run_id="run-1")
    order = make_order(iid)
    store.record_order(order, intent_id=iid, run_id="run-1")
    fill = _fill(iid, "fl-1")
    store.record_fill(fill, run_id="run-1")
    journal.event(
        "monitor",
        "order.fill",
        {
            "client_order_id": iid,
            "fill_id": "fl-1",
            "symbol": fill.symbol,
            "side": fill.side.value,
            "quantity": fill.quantity,
            "price": fill.price,
            "fee": fill.fee,
            "order_status": order.status.value,
        },
        ts=fill.ts,
        run_id="run-1",
    )
    summary = {"run_id": "run-1", "fills": 1}
    with journal.atomic():
        journal.event("reporter", "run.finished", summary, ts=fill.ts, run_id="run-1")
        store.finish_run("run-1", status=RunStatus.COMPLETE, summary=summary)
    journal.close()


def test_a_format_1_run_verifies_with_a_note_that_its_orders_were_not_checked(tmp_path: Path) -> None:
    write_format_1_run(tmp_path)
    assert not any("order" in r["payload"] for r in records(tmp_path))
    report = verify_run(tmp_path)
    assert report.ok, [str(p) for p in report.problems]
    assert report.run_status == "complete"
    assert report.notes == [
        "journal format 1: order events do not carry the order, so the 1 orders row(s) were not checked against the log"
    ]
    assert report.rows is not None and report.rows["intents"] == 1 and report.rows["fills"] == 1
    assert report.as_dict()["notes"] == report.notes


def test_a_format_1_run_still_has_its_fills_and_intents_checked(tmp_path: Path) -> None:
    write_format_1_run(tmp_path)
    sql(tmp_path, "update fills set price = price * 2")
    sql(tmp_path, "update intents set state = 'failed'")
    iid = one(tmp_path, "select intent_id from intents")
    assert rows(verify_run(tmp_path)) == [
        (K.ROW_MISMATCH, "intents", iid, "state"),
        (K.ROW_MISMATCH, "fills", "fl-1", "price"),
    ]


# -- a shared database, the trading state ----------------------------------------------------------------


def test_in_a_shared_database_only_the_runs_own_rows_are_checked(tmp_path: Path) -> None:
    write_format_1_run(tmp_path)
    with IntentStore.open(f"sqlite:///{tmp_path / RUN_DB_FILE}", write_through=True) as store:
        other = make_intent(7, run_id="run-2")
        store.create_intent(other, ts=T0)  # another run's row: not this log's business in a shared database
        store.set_trading_state(TradingState.HALTED, reason="operator", actor="alice", ts=T0)
    url = f"sqlite:///{tmp_path / RUN_DB_FILE}"
    assert verify_run(tmp_path, url=url).ok
    # the folder's own database must be all this run's: the same rows are unaccounted for there
    assert [(p.kind, p.table) for p in verify_run(tmp_path).problems] == [
        (K.ROW_UNLOGGED, "intents"),
        (K.ROW_UNLOGGED, "kill_switch"),
    ]


def test_trading_state_rows_match_their_events_in_order(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    journal = Journal.open(
        url=f"sqlite:///{folder / RUN_DB_FILE}", log_path=folder / RUN_LOG_FILE, log_id="run-1", write_through=True
    )
    journal.set_trading_state(TradingState.HALTED, reason="drill", actor="alice", ts=T0, run_id="run-1")
    journal.set_trading_state(TradingState.ACTIVE, reason="over", actor="alice", ts=T0, run_id="run-1")
    journal.close()
    assert verify_run(folder).ok
    sql(folder, "update kill_switch set reason = 'nothing happened' where id = 1")
    report = verify_run(folder)
    assert rows(report) == [(K.ROW_MISMATCH, "kill_switch", "id 1", "reason")]
    assert (report.problems[0].stored, report.problems[0].logged) == ("nothing happened", "drill")
    sql(folder, "delete from kill_switch where id = 2")
    assert (K.ROW_MISSING, "kill_switch", "change 2", None) in rows(verify_run(folder))


# -- the command line --------------------------------------------------------------------------------------


def test_the_command_prints_every_row_problem_and_exits_1(run: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    fill_id, _ = a_fill(run)
    sql(run, "update fills set price = price * 2 where fill_id = ?", fill_id)
    intent_id = an_intent(run)
    sql(run, "update intents set version = 99 where intent_id = ?", intent_id)
    runner = CliRunner()
    result = runner.invoke(cli.app, ["journal", "verify", str(run)])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert f"intents {intent_id}: row_mismatch — version is 99 in the database" in text
    assert f"fills {fill_id}: row_mismatch — price is" in text
    assert "FAILED 2 problem(s), 2 in the database rows" in text

    as_json = runner.invoke(cli.app, ["journal", "verify", str(run), "--json"])
    assert as_json.exit_code == 1
    data = orjson.loads(as_json.stdout)
    assert data["ok"] is False and data["tampered"] is True and data["run_status"] == "complete"
    problems = {(p["table"], p["key"], p["column"]): p for p in data["problems"]}
    assert problems[("intents", intent_id, "version")]["stored"] == 99
    assert problems[("fills", fill_id, "price")]["kind"] == "row_mismatch"


def test_the_command_reports_ok_with_the_rows_it_checked(run: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli.app, ["journal", "verify", str(run)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # however the console wraps it
    assert "hash chain intact, head matches the database, every row matches the log" in text
    intents = one(run, "select count(*) from intents")
    fills = one(run, "select count(*) from fills")
    assert f"rows checked: 1 run(s), {intents} intents" in text and f"{fills} fills" in text
    assert "intent transitions: in the log only" in text  # a replay keeps no transition rows


def test_the_command_counts_a_sessions_transition_rows(session: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli.app, ["journal", "verify", str(session)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    transitions = one(session, "select count(*) from intent_transitions")
    assert f"{transitions:,} transitions" in text and "in the log only" not in text
