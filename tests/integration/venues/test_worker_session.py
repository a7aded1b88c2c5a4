"""A testnet session that hands its approved intents to executor workers (`venue.executor = "workers"`), end to end
through ccxt against the local exchange: the session decides and keeps the account, a worker claims and sends, and
the session's ledger books the fills of what the worker sent; `journal verify` reads the worker's log beside the
session's; an intent no worker claims expires unsent; a session killed and started again resumes with its worker's
records accounted for.

The worker runs in the test's process and thread, one pass between two bars (the feed's hook), so that what it does
and when is the test's to decide; `keel.workers` tests run workers as processes."""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal

import numpy as np
import pytest

from helpers.sessions import ScriptedFeed, control, events, intents, rows, settings_for
from integration.venues.support import KEY, SECRET, connect_local
from keel.agents.executor import Step
from keel.control.workers import WorkerRegistry
from keel.data.synthetic import generate_regime_ohlcv
from keel.domain.errors import InputError
from keel.domain.reasons import ReasonCode
from keel.journal.verify import ProblemKind, verify_run
from keel.journal.worker_logs import worker_log_dir
from keel.runtime.control import control_url
from keel.runtime.session import SessionSpec, run_session, session_dir
from keel.settings import Mode
from keel.strategies import build_strategy
from keel.venues.book import Market
from keel.venues.server import LocalExchange
from keel.workers.process import connect_broker
from keel.workers.spec import VenueSpec, WorkerSpec
from keel.workers.worker import Worker

SYMBOL, RAW = "BTC/USDT", "BTCUSDT"
CASH = 10_000
BARS = 70
STRATEGY = build_strategy("sma_cross", {"fast": 3, "slow": 9})
NAME = "wk"


class Crash(BaseException):
    """The session's process dies here."""


@pytest.fixture(scope="module")
def frames():
    return generate_regime_ohlcv([SYMBOL], BARS, seed=5, interval_seconds=300)


@pytest.fixture
def exchange():
    with LocalExchange([Market(RAW, "BTC", "USDT")], {"USDT": CASH}, keys={KEY: SECRET}, fee_rate="0.001") as ex:
        yield ex


def settings_with(tmp_path, exchange, **venue):
    return settings_for(
        tmp_path,
        strategy={"name": "sma_cross", "params": {"fast": 3, "slow": 9}},
        sizing={"method": "fixed_notional", "fixed_notional": 1_000},
        broker={"cash": CASH, "unknown_grace_seconds": 600},
        venue={
            "exchange": "binance",
            "api_key": KEY,
            "api_secret": SECRET,
            "api_url": exchange.url,
            "watch_seconds": 0,
            "executor": "workers",
            **venue,
        },
    )


@pytest.fixture
def settings(tmp_path, exchange):
    return settings_with(tmp_path, exchange)


class InlineWorker:
    """A worker of the session, opened at its first bar (the session's journal exists from then), one pass per bar."""

    def __init__(self, settings, exchange, worker_id: str = "w1", hook=None) -> None:
        self.settings, self.exchange, self.worker_id, self.hook = settings, exchange, worker_id, hook
        self.worker: Worker | None = None
        self.passes = 0

    def step(self) -> None:
        if self.worker is None:
            store = control(self.settings)
            try:
                run_id = store.session_record(NAME).run_id
            finally:
                store.close()
            folder = session_dir(self.settings, NAME)
            spec = WorkerSpec(
                worker_id=self.worker_id,
                journal_url=f"sqlite:///{folder / 'keel.db'}",
                control_url=control_url(self.settings),
                log_dir=str(worker_log_dir(folder)),
                venue=VenueSpec(
                    exchange="binance", symbols=(SYMBOL,), api_url=self.exchange.url, timeout_ms=2_000, rate_limit_ms=1
                ),
                run_id=run_id,
            )
            self.worker = Worker.open(spec, broker=connect_broker(spec, (KEY, SECRET)), hook=self.hook)
            self.worker.start()
        self.worker.step()
        self.passes += 1

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None


def session(settings, frames, exchange, worker: InlineWorker | None, *, crash_at: int | None = None, before=None):
    def hook(t):
        exchange.set_price(RAW, Decimal(str(round(float(frames[0].close[t]), 2))))
        if crash_at is not None and t == crash_at:
            raise Crash(t)
        if worker is not None and t > 0:
            worker.step()  # what the session handed over at the bar before is sent before this one is decided
        if before is not None:
            before(t)

    try:
        return run_session(
            SessionSpec(NAME, Mode.TESTNET),
            frames,
            settings,
            STRATEGY,
            feed=lambda market: ScriptedFeed(market, hook),
            venue=connect_local(exchange),
        )
    finally:
        if worker is not None:
            worker.close()


def claims(run_dir) -> dict[str, str]:
    """intent id -> who claimed it (`approved → executing`)."""
    return dict(rows(run_dir, "select intent_id, actor from intent_transitions where to_state = 'executing'"))


def assert_agrees(exchange, run_dir) -> None:
    """The venue holds exactly what the journal says: every order once and an executed intent's, every trade a fill
    the session's ledger booked, and the cash those fills leave."""
    held = Counter(o.client_order_id for o in exchange.book.orders.values())
    assert set(held.values()) == {1}, held
    states = {iid: state for iid, state, _, _ in intents(run_dir)}
    assert set(held) == {iid for iid, s in states.items() if s == "executed"}
    trades = {f"binance-{t.trade_id}" for t in exchange.book.trades}
    assert {r[0] for r in rows(run_dir, "select fill_id from fills")} == trades
    cash = float(CASH)
    for side, qty, price, fee in rows(run_dir, "select side, quantity, price, fee from fills"):
        cash += (qty * price if side == "sell" else -qty * price) - fee
    assert float(sum(exchange.book.balances()["USDT"])) == pytest.approx(cash, abs=1e-6)


def test_a_session_handing_its_intents_to_a_worker_trades_through_it(settings, frames, exchange):
    worker = InlineWorker(settings, exchange)
    got = session(settings, frames, exchange, worker)
    run_dir = got.run.run_dir
    executed = [iid for iid, state, _, _ in intents(run_dir) if state == "executed"]
    assert len(executed) >= 4 and len(exchange.book.trades) >= 4
    # every order went out through the worker, none through the session's own executor
    assert set(claims(run_dir).values()) == {"worker-w1"}
    assert set(claims(run_dir)) >= set(executed)
    # the session's ledger booked the fills of what the worker sent: its report counts them
    assert got.run.summary.fills == len(exchange.book.trades)
    assert_agrees(exchange, run_dir)
    report = verify_run(run_dir)
    assert report.ok, [str(p) for p in report.problems]
    assert any("workers/w1.jsonl" in n for n in report.notes)
    # the registry knows when the worker's last order left: what `keel kill` compares with a trip instant
    with WorkerRegistry.open(control_url(settings)) as registry:
        last = registry.record("w1").last_submit_ns
    final = max(o.time_ms for o in exchange.book.orders.values())
    assert last is not None and abs(last / 1e6 - final) < 100  # taken right before the send, the venue times it
    # the worker's records are in its own log, not the session's
    assert not [e for e in events(run_dir) if e["event"] == "intent.transition" and e["payload"]["to"] == "executing"]


class AckFirstExchange(LocalExchange):
    """Answers a new order before it has filled (Binance's `ACK` answer): the worker journals it open, and the
    session's ledger learns the fill afterwards, so the order's last record is the session's, not the worker's."""

    def _new_order(self, q):
        answer = super()._new_order(q)
        if answer.status == 200:
            answer.body = {**answer.body, "status": "NEW", "executedQty": "0", "cummulativeQuoteQty": "0", "fills": []}
        return answer


def test_an_order_the_worker_saw_open_is_verified_by_the_sessions_later_record_of_its_fill(tmp_path, frames):
    with AckFirstExchange([Market(RAW, "BTC", "USDT")], {"USDT": CASH}, keys={KEY: SECRET}) as exchange:
        settings = settings_with(tmp_path, exchange)
        run_dir = session(settings, frames, exchange, InlineWorker(settings, exchange)).run.run_dir
        assert_agrees(exchange, run_dir)
    opened = [e for e in worker_events(run_dir) if e["payload"].get("to") == "executed"]
    assert opened and {e["payload"]["order"]["status"] for e in opened} == {"working"}
    assert {r[0] for r in rows(run_dir, "select status from orders")} == {"filled"}
    report = verify_run(run_dir)
    assert report.ok, [str(p) for p in report.problems]


def worker_events(run_dir, worker_id: str = "w1") -> list[dict]:
    import json

    return [json.loads(line) for line in (worker_log_dir(run_dir) / f"{worker_id}.jsonl").read_text().splitlines()]


def test_verify_fails_when_a_workers_log_is_missing_or_edited(settings, frames, exchange):
    worker = InlineWorker(settings, exchange)
    run_dir = session(settings, frames, exchange, worker).run.run_dir
    log = worker_log_dir(run_dir) / "w1.jsonl"
    original = log.read_bytes()

    lines = original.decode().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if '"to":"executed"' in line)
    lines[at] = lines[at].replace('"to":"executed"', '"to":"failed"')
    log.write_text("".join(lines))
    edited = verify_run(run_dir)
    assert not edited.ok
    problem = next(p for p in edited.problems if p.kind is ProblemKind.EDITED)
    assert problem.log == "workers/w1.jsonl" and problem.line == at + 1
    assert "workers/w1.jsonl line" in str(problem)

    log.unlink()  # without the worker's log, the rows of what it executed are accounted for by nothing
    missing = verify_run(run_dir)
    assert not missing.ok
    assert {p.table for p in missing.problems} >= {"intents", "intent_transitions"}
    gone = next(p for p in missing.problems if p.kind is ProblemKind.DELETED_TAIL)
    assert gone.log == "workers/w1.jsonl" and "worker-w1 claimed intents of this run" in gone.detail
    log.write_bytes(original)
    assert verify_run(run_dir).ok


def test_an_intent_no_worker_claims_expires_unsent(tmp_path, frames, exchange):
    settings = settings_with(tmp_path, exchange, claim_timeout_seconds=0.001)
    got = session(settings, frames, exchange, None)
    run_dir = got.run.run_dir
    states = {(state, reason) for _, state, _, reason in intents(run_dir)}
    assert ("expired", ReasonCode.NOT_CLAIMED.value) in states
    assert not [s for s, _ in states if s in ("executed", "executing", "approved")]
    assert not exchange.book.orders  # nothing reached the venue
    assert verify_run(run_dir).ok


def test_a_session_killed_after_it_expired_unclaimed_intents_resumes_without_writing_them_again(
    tmp_path, frames, exchange
):
    settings = settings_with(tmp_path, exchange, claim_timeout_seconds=0.001)
    with pytest.raises(Crash):
        session(settings, frames, exchange, None, crash_at=45)
    run_dir = session_dir(settings, NAME)
    before = [e for e in events(run_dir) if e["payload"].get("reason") == ReasonCode.NOT_CLAIMED.value]
    assert before
    got = session(settings, frames, exchange, None)
    assert got.run.resumed
    after = [e for e in events(run_dir) if e["payload"].get("reason") == ReasonCode.NOT_CLAIMED.value]
    assert after[: len(before)] == before  # what was written stays, none of it twice
    assert len({e["payload"]["intent_id"] for e in after}) == len(after)
    assert verify_run(run_dir).ok


def test_a_halt_expires_what_no_worker_claimed_yet_and_nothing_is_sent(settings, frames, exchange):
    from datetime import UTC, datetime

    from keel.risk.kill_switch import halt

    first = int(np.flatnonzero(STRATEGY.signals(frames[0]).entry)[0])

    def halt_after_the_first_hand_over(t):
        if t == first + 1:  # the entry handed over at the bar before waits, unclaimed: no worker runs
            store = control(settings)
            try:
                halt(store, reason="test", actor="op", ts=datetime.now(UTC))
            finally:
                store.close()

    got = session(settings, frames, exchange, None, before=halt_after_the_first_hand_over)
    states = rows(got.run.run_dir, "select state, last_reason from intents order by created_ts, intent_id")
    assert states[0] == ("expired", ReasonCode.TRADING_STATE_CHANGED.value)  # the handed entry
    assert {s for s, _ in states[1:]} == {"blocked"}  # and the supervisor let nothing else through
    assert not exchange.book.orders


def test_what_no_worker_claimed_by_the_end_of_the_session_expires_with_it(settings, frames, exchange):
    got = session(settings, frames, exchange, None)  # no worker, and 30 s to claim: longer than the session
    run_dir = got.run.run_dir
    states = [(state, reason) for _, state, _, reason in intents(run_dir)]
    assert states == [("expired", ReasonCode.SESSION_ENDED.value)]  # the first entry waited, and blocked the rest
    assert not exchange.book.orders


def test_a_session_killed_mid_run_resumes_with_its_workers_records_accounted_for(settings, frames, exchange):
    worker = InlineWorker(settings, exchange)
    with pytest.raises(Crash):
        session(settings, frames, exchange, worker, crash_at=40)
    run_dir = session_dir(settings, NAME)
    assert worker.passes > 0 and set(claims(run_dir).values()) == {"worker-w1"}
    got = session(settings, frames, exchange, InlineWorker(settings, exchange))
    assert got.run.resumed
    resumed = next(e for e in events(run_dir) if e["event"] == "run.resumed")["payload"]
    assert resumed["reconciliation"]["breaks"] == []  # the worker's log told it what became of the handed intents
    assert_agrees(exchange, run_dir)
    assert verify_run(run_dir).ok


def test_a_claim_of_a_worker_that_died_with_the_session_is_the_workers_to_settle(settings, frames, exchange):
    seen: list[str] = []

    def die_after_the_third_send(step, iid):
        if step is Step.RECORD:
            seen.append(iid)
            if len(seen) == 3:
                raise Crash(
                    iid
                )  # the venue took it; the worker (and, here, the session with it) dies before the record

    with pytest.raises(Crash) as crashed:
        session(settings, frames, exchange, InlineWorker(settings, exchange, hook=die_after_the_third_send))
    lost = crashed.value.args[0]
    run_dir = session_dir(settings, NAME)
    assert {iid: s for iid, s, _, _ in intents(run_dir)}[lost] == "executing"
    got = session(settings, frames, exchange, InlineWorker(settings, exchange))
    assert got.run.resumed

    # the session's resume left it alone; the worker, started again, found it at the venue and settled it
    def settled(evs):
        return [
            e["payload"] for e in evs if e["payload"].get("intent_id") == lost and e["payload"].get("to") == "executed"
        ]

    assert not settled(events(run_dir))
    (done,) = settled(worker_events(run_dir))
    assert done["resolution"] == "found at broker looked up by worker-w1"
    assert Counter(o.client_order_id for o in exchange.book.orders.values())[lost] == 1
    assert_agrees(exchange, run_dir)
    assert verify_run(run_dir).ok


def test_a_session_that_ends_while_a_worker_sends_waits_for_it_and_books_its_fill(
    settings, frames, exchange, monkeypatch
):
    import threading

    import keel.agents.handoff as handoff

    entries = np.flatnonzero(STRATEGY.signals(frames[0]).entry)
    short = [frames[0].slice(0, int(entries[0]) + 2)]  # the first entry is handed over one bar before the end
    release, claimed, stop = threading.Event(), threading.Event(), threading.Event()
    inner = handoff.settle_handed

    def settle(ctx, t, *, ending=False):
        if ending:
            release.set()  # the session is ending: only now may the worker's order leave
        inner(ctx, t, ending=ending)

    monkeypatch.setattr(handoff, "settle_handed", settle)

    def hold(step, iid):
        if step is Step.SUBMIT:
            claimed.set()
            release.wait(30)

    worker = InlineWorker(settings, exchange, hook=hold)

    def run_worker():
        worker.step()  # opens and starts it
        while not stop.is_set():
            worker.worker.step()
            time.sleep(0.005)

    thread = None

    def start_at_the_last_bar(t):
        nonlocal thread
        if t == len(short[0]) - 1:  # the last bar: the worker has claimed the entry, and waits to send it
            thread = threading.Thread(target=run_worker)
            thread.start()
            assert claimed.wait(30)

    try:
        got = session(settings, short, exchange, None, before=start_at_the_last_bar)
    finally:
        release.set()
        stop.set()
        if thread is not None:
            thread.join(30)
        worker.close()
    assert got.run.summary.orders == 1 and got.run.summary.fills == 1  # the session waited, and booked the fill
    assert_agrees(exchange, got.run.run_dir)


def test_workers_execute_testnet_sessions_only(tmp_path, frames, exchange):
    settings = settings_with(tmp_path, exchange)
    with pytest.raises(InputError, match=r"venue\.executor = workers"):
        run_session(SessionSpec("pp", Mode.PAPER), frames, settings, STRATEGY)
    routed = settings_with(
        tmp_path, exchange, venues={"other": {"api_url": exchange.url}}, routing={"default": "other"}
    )
    with pytest.raises(InputError, match="main venue only"):
        run_session(SessionSpec("rt", Mode.TESTNET), frames, routed, STRATEGY)


def test_a_halt_flattens_through_the_sessions_own_emergency_path_while_its_workers_stay_halted(
    tmp_path, frames, exchange
):
    # `risk.flatten_on_halt`: the worker sends the first entry; a halt two bars after it fills; the session sends the
    # flatten itself (the workers are halted and never claim it), the venue ends flat, and the evidence verifies.
    from datetime import UTC, datetime

    from keel.risk.kill_switch import halt

    settings = settings_with(tmp_path, exchange)
    settings.risk.flatten_on_halt = True
    first = int(np.flatnonzero(STRATEGY.signals(frames[0]).entry)[0])

    def halt_after_the_first_fill(t):
        if t == first + 3:
            store = control(settings)
            try:
                halt(store, reason="test", actor="op", ts=datetime.now(UTC))
            finally:
                store.close()

    worker = InlineWorker(settings, exchange)
    got = session(settings, frames, exchange, worker, before=halt_after_the_first_fill)
    run_dir = got.run.run_dir
    legs = {
        iid: (leg, state)
        for iid, state, leg, _ in rows(run_dir, "select intent_id, state, leg, last_reason from intents")
    }
    flatten = [iid for iid, (leg, _) in legs.items() if leg == "flatten"]
    assert len(flatten) == 1 and legs[flatten[0]][1] == "executed"
    who = claims(run_dir)
    assert who[flatten[0]] == "executor"  # the session's own executor, not the worker
    assert {a for iid, a in who.items() if iid not in flatten} == {"worker-w1"}
    assert float(exchange.book.balances()["BTC"][0] + exchange.book.balances()["BTC"][1]) == pytest.approx(0.0)
    assert_agrees(exchange, run_dir)
    assert verify_run(run_dir).ok


def test_keel_venue_cancel_with_a_session_cancels_that_sessions_orders_only(tmp_path, frames, exchange):
    # The session's orders are its journal's intents (an order's client id is its intent's): one still resting at
    # the venue is cancelled, another account user's order on the same market is left alone.
    from typer.testing import CliRunner

    from keel.cli import app
    from keel.domain.intents import OrderType, Side
    from keel.domain.orders import OrderRequest

    settings = settings_with(tmp_path, exchange)
    got = session(settings, frames, exchange, None)
    (ours, *_rest) = [iid for iid, *_ in intents(got.run.run_dir)]
    broker = connect_local(exchange)(settings, [SYMBOL])
    theirs = "it-" + "f" * 24
    for coid in (ours, theirs):
        request = OrderRequest(
            client_order_id=coid,
            symbol=SYMBOL,
            side=Side.BUY,
            quantity=0.2,
            order_type=OrderType.LIMIT,
            limit_price=50.0,
        )
        assert broker.submit(request).order is not None
    config = tmp_path / "keel.toml"
    config.write_text(
        f'var_dir = "{tmp_path / "var"}"\nhome = "{tmp_path / "home"}"\n\n[venue]\nexchange = "binance"\n'
        f'api_key = "{KEY}"\napi_secret = "{SECRET}"\napi_url = "{exchange.url}"\n'
    )
    done = CliRunner().invoke(
        app, ["venue", "cancel", "--session", NAME, "--reason", "r", "--actor", "a", "--config", str(config)]
    )
    assert done.exit_code == 0, done.output
    assert "cancelled 1 of 1 open order(s)" in done.output and ours in done.output
    assert {o.client_order_id for o in broker.open_orders()} == {theirs}
    missing = CliRunner().invoke(
        app, ["venue", "cancel", "--session", "other", "--reason", "r", "--actor", "a", "--config", str(config)]
    )
    assert isinstance(missing.exception, InputError) and "no session other" in str(missing.exception)  # exit 2
