"""Crash tests: SIGKILL a run at many random points, restart it each time, and compare with an uninterrupted run: the same
money — cash and equity at every bar, every fill's price, quantity and fee, the round trips, the summary — zero
duplicate orders, zero lost intents, the same final states, and a journal that still verifies.

Replay commits in batches (a kill loses the open batch, redone on restart); paper mode commits every write before
the next one (a kill can land between any two, e.g. after an intent is committed `executing` and before its order
is sent): both must resume to exactly the result of a run that was never interrupted."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from keel.data.synthetic import generate_regime_ohlcv, write_csv

#: kill points per crash test: each is a restart (~2 s of start-up), so `make test` takes 6 and `make crash` 24
KILLS = int(os.environ.get("KEEL_TEST_CRASH_KILLS", "6"))
#: summary fields that count the journal's own records: a resumed run also logs its repairs and resumes
JOURNAL_COUNTS = ("events", "journal_head")


def backtest(data: list[Path], out: Path, cwd: Path, env_extra: dict[str, str]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    env.update(env_extra)
    args = [
        sys.executable,
        "-m",
        "keel.cli",
        "backtest",
        "--strategy",
        "sma_cross",
        "--param",
        "fast=3",
        "--param",
        "slow=9",
        "--profile",
        "paper",
        "--sizing",
        "fixed_notional",
        "--out",
        str(out),
        "--json",
    ]
    for d in data:
        args += ["--data", str(d)]
    return subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def session(data: list[Path], home: Path, cwd: Path, env_extra: dict[str, str]) -> subprocess.Popen:
    """`keel session start s` over the data, as fast as decisions allow, its home (and so its folder) under `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    env.update(env_extra)
    env.update({"KEEL_HOME": str(home), "KEEL_PROFILE": "paper", "KEEL_SIZING__METHOD": "fixed_notional"})
    args = [sys.executable, "-m", "keel.cli", "session", "start", "s", "--strategy", "sma_cross"]
    args += ["--param", "fast=3", "--param", "slow=9", "--mode", "paper", "--json"]
    for d in data:
        args += ["--data", str(d)]
    return subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def backtest_at(data: list[Path], label: str, tmp_path: Path, env: dict[str, str]):
    out = tmp_path / label
    return backtest(data, out, tmp_path, env), out


def session_at(data: list[Path], label: str, tmp_path: Path, env: dict[str, str]):
    home = tmp_path / f"home-{label}"
    return session(data, home, tmp_path, env), home / "sessions" / "s"


def table(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(sql).fetchall()


def summary(run: Path) -> dict:
    data = json.loads((run / "summary.json").read_text())
    return {k: v for k, v in data.items() if k not in JOURNAL_COUNTS}


def sigkill_and_compare(tmp_path: Path, bars: int, env: dict[str, str], launch=backtest_at) -> None:
    """Run once cleanly, then kill-and-restart until done, and compare everything that matters. `launch(data, label,
    tmp_path, env) -> (process, run folder)` starts the run: a backtest (default) or a session."""
    data = []
    for frame in generate_regime_ohlcv(2, bars, seed=21):
        path = tmp_path / f"{frame.symbol}.csv"
        write_csv(frame, path)
        data.append(path)

    clean, clean_dir = launch(data, "clean", tmp_path, env)
    _, errs = clean.communicate(timeout=600)
    assert clean.returncode == 0, errs.decode()

    # Crash points are chosen by progress, not by time (timing varies with machine load): each attempt is
    # killed once its event log has grown past where it started by a random share of a clean run's log, sized so
    # that the kills spread over the whole run whatever their number.
    step = 1.0 / (KILLS + 1)
    rng = random.Random(1234)
    crashed = None
    final_size = (clean_dir / "events.jsonl").stat().st_size
    killed_mid_run = 0
    finished = None  # an attempt that ran to its end before its kill point came
    for _ in range(KILLS):
        log = crashed / "events.jsonl" if crashed is not None else None
        start = log.stat().st_size if log is not None and log.exists() else 0
        if start >= final_size * 0.97:
            break
        target = min(start + rng.uniform(0.2, 1.8) * step * final_size, final_size * 0.97)
        proc, crashed = launch(data, "crashed", tmp_path, env)
        log = crashed / "events.jsonl"
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if log.exists() and log.stat().st_size >= target:
                proc.send_signal(signal.SIGKILL)
                killed_mid_run += 1
                break
            time.sleep(0.002)
        proc.wait(timeout=60)
        if proc.returncode == 0:  # a session runs once: starting it again after its end is refused
            finished = proc
            break
    final = finished
    if final is None:
        final, crashed = launch(data, "crashed", tmp_path, env)
        log = crashed / "events.jsonl"
    _, errs = final.communicate(timeout=600)
    assert final.returncode == 0, errs.decode()
    assert killed_mid_run >= KILLS - 2
    # Money first: every fill, the equity curve at every bar, the round trips, the summary.
    q_fills = "select fill_id, client_order_id, symbol, side, quantity, price, fee, ts from fills order by fill_id"
    assert table(crashed / "keel.db", q_fills) == table(clean_dir / "keel.db", q_fills)
    assert pq.read_table(crashed / "equity.parquet").equals(pq.read_table(clean_dir / "equity.parquet"))
    assert (crashed / "trades.csv").read_bytes() == (clean_dir / "trades.csv").read_bytes()
    assert summary(crashed) == summary(clean_dir)
    # Then decisions: nothing lost, nothing extra, no order twice.
    q_intents = "select intent_id, state, quantity, last_reason from intents order by intent_id"
    assert table(crashed / "keel.db", q_intents) == table(clean_dir / "keel.db", q_intents)
    q_orders = "select client_order_id, status, filled_quantity, average_price, fees from orders order by 1"
    assert table(crashed / "keel.db", q_orders) == table(clean_dir / "keel.db", q_orders)
    executed = table(crashed / "keel.db", "select count(*) from intents where state = 'executed'")[0][0]
    assert executed == table(crashed / "keel.db", "select count(*) from orders")[0][0] > 10
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert "intent.duplicate" not in events
    assert events.count("run.resumed") == killed_mid_run

    verify = subprocess.run(
        [sys.executable, "-m", "keel.cli", "journal", "verify", str(crashed)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


# -- sessions with an operator deciding approvals ---------------------------------------------------------------------

#: who decides an operated session's approval requests (never its proposer, the strategy)
APPROVERS = ("alice", "bob")
#: a request is decided once it has waited this many bars
WAIT_BARS = 3
#: operators look at what waits before every fourth bar
DECIDE_EVERY = 4
#: printed by an operated session that kills itself, followed by the bar it was in
KILLED_AT = "killed-at-bar"


def rejected_by_rule(intent_id: str) -> bool:
    """The operators' stable rule: about one request in three is rejected, by its id (the same after any restart)."""
    return int(hashlib.sha256(intent_id.encode()).hexdigest()[:8], 16) % 3 == 0


def approver_by_rule(intent_id: str) -> str:
    return APPROVERS[int(hashlib.sha256(intent_id.encode()).hexdigest()[8:16], 16) % len(APPROVERS)]


def operator(store, market, name: str, wait_bars: int = WAIT_BARS, every: int = DECIDE_EVERY):
    """The feed hook of an operated session: before every `every`-th bar t, decide every pending request published
    `wait_bars` or more bars earlier, by the rule, in queue order, at bar t's time (so several decisions often meet
    at one bar). Deciding again what was decided before a restart changes nothing (the service returns the request
    as it stands), so a restarted session meets the same decisions."""
    from keel.approval.service import ApproverRole, approve, pending, reject
    from keel.data.frame import ns_to_datetime

    role = ApproverRole.of(APPROVERS)

    def before(t: int) -> None:
        if t < wait_bars or t % every:
            return
        cutoff = ns_to_datetime(market.ts_ns(t - wait_bars))
        for req in pending(store, session=name):
            if req.requested_ts > cutoff:
                continue
            verdict = reject if rejected_by_rule(req.intent_id) else approve
            verdict(
                store,
                req.intent_id,
                actor=approver_by_rule(req.intent_id),
                reason=f"the rule, before bar {t}",
                role=role,
                ts=ns_to_datetime(market.ts_ns(t)),
            )

    return before


def rebinding_operator(store, market, name: str):
    """A feed hook whose operators change the limits under a waiting request: before the first bar something waits,
    alice and bob raise `max_exposure` by an override (its reason names the request) and alice approves the request
    as it was bound, so the session rebinds it (version 2) when it applies the approval; bob approves version 2 once
    it waits. Every step reads its state from the control store, so a restarted process takes none twice."""
    from datetime import UTC, datetime

    from keel.approval.service import ApproverRole, approve, pending
    from keel.control.records import ApprovalStatus
    from keel.risk import overrides
    from keel.risk.roles import RiskRole
    from keel.settings import Mode

    approvers, risk = ApproverRole.of(APPROVERS), RiskRole.of(APPROVERS)

    def before(t: int) -> None:
        done = store.overrides()
        if not done:
            waiting = pending(store, session=name)
            if not waiting:
                return
            first = waiting[0].intent_id
            o = overrides.propose(
                store,
                limit="max_exposure",
                value=90_000,
                seconds=3_600,
                reason=f"room for {first}",
                actor="alice",
                ts=datetime.now(UTC),
                role=risk,
                mode=Mode.PAPER,
            )
            overrides.approve(store, o.override_id, actor="bob", ts=datetime.now(UTC), role=risk)
            approve(store, first, actor="alice", reason="as it was", role=approvers, ts=datetime.now(UTC))
            return
        req = store.approval_request(done[0].reason.split()[-1])
        if req.status is ApprovalStatus.PENDING and req.version == 2:
            approve(
                store, req.intent_id, actor="bob", reason="under the new limits", role=approvers, ts=datetime.now(UTC)
            )

    return before


def overriding_operator(store, market, name: str, every: int):
    """The rule's operators (`operator`), and before every `every`-th bar alice and bob change `max_exposure` by an
    override (a new value each time): every decision given under the old limits and applied at that bar no longer
    matches its binding, so the session rebinds it (version + 1), at a bar where it may also send an exit or what was
    approved before; the rule approves the new version like any other request. Each override is made once (its
    reason names its bar, read back from the control store)."""
    from datetime import UTC, datetime

    from keel.risk import overrides
    from keel.risk.roles import RiskRole
    from keel.settings import Mode

    rule, risk = operator(store, market, name), RiskRole.of(APPROVERS)

    def before(t: int) -> None:
        if t and t % every == 0 and f"before bar {t}" not in {o.reason for o in store.overrides()}:
            o = overrides.propose(
                store,
                limit="max_exposure",
                value=60_000 + t,
                seconds=3_600,
                reason=f"before bar {t}",
                actor="alice",
                ts=datetime.now(UTC),
                role=risk,
                mode=Mode.PAPER,
            )
            overrides.approve(store, o.override_id, actor="bob", ts=datetime.now(UTC), role=risk)
        rule(t)

    return before


def operated_settings(home: Path, max_exposure: float | None = None):
    """An operated session's settings: the crash session's (paper profile, fixed notional, sma_cross 3/9) with
    manual approval by `APPROVERS`; `max_exposure` tightens the exposure limit (so that approvals applied at one bar
    compete for room, and the later ones are resized and rebound)."""
    from keel.settings import load_settings

    risk: dict = {"operators": list(APPROVERS)}
    if max_exposure is not None:
        risk["max_exposure"] = max_exposure
    return load_settings(
        home=home,
        var_dir=home / "var",
        profile="paper",
        strategy={"name": "sma_cross", "params": {"fast": 3, "slow": 9}},
        sizing={"method": "fixed_notional"},
        approval={"mode": "manual", "ttl_seconds": 3_600, "approvers": list(APPROVERS)},
        risk=risk,
    )


def operated_session_main(argv: list[str] | None = None) -> int:
    """The process of an operated session (`operated_session`): `run_session` over the data with the operator's feed
    hook. With `kill_at` (node, t), the process SIGKILLs itself as that node of bar t returns, printing `KILLED_AT t`
    first: after the `executor`, the cycle's writes up to its last claim to send are committed (`Journal.durable`)
    and its checkpoint is not; after the `approval` node, what it published is in the control plane and nothing of
    the cycle is in the journal."""
    import keel.runtime.graph as graph
    from keel.data.files import load_many
    from keel.feeds.hooked import HookedFeed
    from keel.feeds.paced import PacedReplay
    from keel.runtime.session import SessionSpec, run_session
    from keel.settings import Mode
    from keel.strategies import build_strategy

    args = json.loads((argv or sys.argv)[1])
    settings = operated_settings(Path(args["home"]), args.get("max_exposure"))
    frames = load_many(args["data"])
    strategy = build_strategy(settings.strategy.name, settings.strategy.params)
    store = open_store(settings)

    def operated(market) -> HookedFeed:
        if args.get("operator") == "rebind":
            before = rebinding_operator(store, market, args["name"])
        elif args.get("operator", "").startswith("override@"):
            before = overriding_operator(store, market, args["name"], int(args["operator"].split("@")[1]))
        else:
            before = operator(store, market, args["name"], args["wait"], args["every"])
        return HookedFeed(PacedReplay(market.timeline, speed=None), before)

    if args.get("kill_at") is not None:
        build = graph.build_graph

        def killing_build(ctx, *, checkpointer=None, on_node=None):
            def hooked(name: str, state: dict) -> None:
                if on_node is not None:
                    on_node(name, state)
                if [name, state["t"]] == args["kill_at"]:
                    print(KILLED_AT, state["t"], flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)

            return build(ctx, checkpointer=checkpointer, on_node=hooked)

        # the driver looks `build_graph` up when it starts, so the hook reaches the real graph of the real session
        graph.build_graph = killing_build
    try:
        run_session(SessionSpec(args["name"], Mode.PAPER), frames, settings, strategy, feed=operated)
    finally:
        store.close()
    return 0


def open_store(settings):
    from keel.runtime.control import open_control

    return open_control(settings).store


def operated_session(
    data: list[Path],
    home: Path,
    cwd: Path,
    env_extra: dict[str, str],
    *,
    kill_at: tuple[str, int] | None = None,
    operator: str = "rule",
    max_exposure: float | None = None,
) -> subprocess.Popen:
    """Start session `s` over the data, in manual approval, with the operators deciding from inside the process:
    by the rule (`operator`), changing the limits under a waiting request (`rebinding_operator`: "rebind"), or by the
    rule with a new override before every K-th bar (`overriding_operator`: "override@K")."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    env.update(env_extra)
    tests = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (tests, env.get("PYTHONPATH")) if p)
    args = {"data": [str(d) for d in data], "home": str(home), "name": "s", "wait": WAIT_BARS, "every": DECIDE_EVERY}
    args.update(kill_at=kill_at, operator=operator, max_exposure=max_exposure)
    code = "import sys; from helpers.crash import operated_session_main; sys.exit(operated_session_main())"
    return subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(args)], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def operated_session_at(data: list[Path], label: str, tmp_path: Path, env: dict[str, str]):
    """`launch` for `sigkill_and_compare`: an operated session whose home is `home-<label>`."""
    home = tmp_path / f"home-{label}"
    return operated_session(data, home, tmp_path, env), home / "sessions" / "s"
