"""An operator takes a running session out of LLM degrade mode from another process: `keel session resume-llm`
writes a command to the control store, the session applies it at its next cycle boundary (journalled with the
operator's name and reason), and entries pass again. Where there is nothing to resume the command is settled as
refused and nothing changes; asking a session that ended, or without the risk role, is refused up front."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from helpers.cli import keel
from helpers.scenarios import transitions
from helpers.sessions import ScriptedFeed, control, events, settings_for
from keel.domain.errors import InputError
from keel.runtime.session import SessionSpec, run_session
from keel.settings import Mode
from keel.strategies import build_strategy

from . import runs
from .chat_server import ChatServer, error

RESUME_AT, AGAIN_AT = 120, 200


def test_a_degraded_session_leaves_degrade_mode_when_an_operator_asks_it_and_entries_pass_again(tmp_path):
    server = ChatServer(runs.take_all(0.5)).start()
    server.push(error(500), error(500))  # the first two calls fail: the breaker opens, the session degrades
    role = runs.role_values(
        server, "m-strategist", max_attempts=1, breaker={"failure_threshold": 2, "cooldown_s": 0.05}
    )
    settings = settings_for(tmp_path, llm={"strategist": role}, risk={"symbol_allowlist": ["SYN0"]})
    operators = control(settings)
    asked: list = []

    def before(t):  # another connection to the control store: the operators' side
        if t in (RESUME_AT, AGAIN_AT):
            asked.append(
                operators.request_command("s", "llm.resume", actor="rita", reason=f"bar {t}", ts=datetime.now(UTC))
            )

    try:
        strategy = build_strategy("sma_cross", {"fast": 5, "slow": 20})
        got = run_session(
            SessionSpec("s", Mode.PAPER),
            runs.frames(bars=300),
            settings,
            strategy,
            feed=lambda m: ScriptedFeed(m, before),
        )
        commands = operators.session_commands("s")
        with pytest.raises(InputError, match="session s is already stopped at"):  # it ended
            operators.request_command("s", "llm.resume", actor="rita", reason="late", ts=datetime.now(UTC))
    finally:
        operators.close()
        server.stop()
    log = events(got.run.run_dir)
    (entered,) = [r for r in log if r["event"] == "llm.degrade.entered"]
    (resumed,) = [r for r in log if r["event"] == "llm.degrade.resumed"]
    assert (resumed["payload"]["actor"], resumed["payload"]["reason"]) == ("rita", f"bar {RESUME_AT}")
    assert entered["seq"] < resumed["seq"]
    assert [(c.outcome is not None, c.actor) for c in commands] == [(True, "rita"), (True, "rita")]
    first, second = commands
    assert first.outcome == "applied"
    assert second.outcome == "refused: the run is not in degrade mode: nothing to resume"
    # entries proposed in degrade mode were blocked; after the resume they are judged as usual again
    proposed = {r["payload"]["intent"]["intent_id"]: r["seq"] for r in log if r["event"] == "intent.proposed"}
    reasons = {
        r["payload"]["intent_id"]: r["payload"].get("reason")
        for r in transitions(log)
        if r["payload"]["from"] == "proposed"
    }
    during = [i for i, seq in proposed.items() if entered["seq"] < seq < resumed["seq"]]
    after = [i for i, seq in proposed.items() if seq > resumed["seq"]]
    assert during and {reasons[i] for i in during} <= {"DEGRADE_MANUAL_ONLY"}
    assert after and "DEGRADE_MANUAL_ONLY" not in {reasons[i] for i in after}


def test_resume_llm_needs_the_risk_role_and_a_live_session(tmp_path):
    (tmp_path / "keel.toml").write_text('[risk]\noperators = ["rita"]\n')
    env = {"KEEL_HOME": str(tmp_path / "home")}
    proc = keel("session", "resume-llm", "s", "--reason", "x", "--actor", "mallory", cwd=tmp_path, env=env, check=False)
    assert proc.returncode != 0 and "may not end a session's degrade mode" in proc.stderr
    proc = keel("session", "resume-llm", "s", "--reason", "x", "--actor", "rita", cwd=tmp_path, env=env, check=False)
    assert proc.returncode == 2 and "no session has run here" in proc.stderr
