"""One control plane: `keel kill`, typed in any directory, halts a paper session running from another one.

The session is the real pipeline (`execute_run` in paper mode, its guard opened from its own settings, loaded in its
own working directory with the default, relative `var_dir`); the kill is the real command line, run in a subprocess
from a different directory while the session is between two bars. Versions before `home` kept the trading state in
`var/keel.db` under each directory, so this kill said HALTED and stopped nothing."""

from __future__ import annotations

import json

from helpers.cli import keel
from helpers.scenarios import MINUTE, T0, ScenarioBroker, bars, scripted
from keel.backtest.run import execute_run
from keel.data.frame import ns_to_datetime
from keel.settings import Mode, Profile, load_settings

FIXED = {"method": "fixed_notional", "fixed_notional": 10_000}


def test_keel_kill_from_another_directory_halts_a_running_paper_session(tmp_path, monkeypatch):
    session_dir, operator_dir = tmp_path / "session", tmp_path / "operator"
    session_dir.mkdir()
    operator_dir.mkdir()
    monkeypatch.chdir(session_dir)
    settings = load_settings(sizing=FIXED)  # var_dir is the default, relative "var": the session's own directory
    frames = [bars(s, [100.0] * 12) for s in ("AAA", "BBB", "CCC")]
    strategy = scripted(entries={"AAA": (1,), "BBB": (4,), "CCC": (8,)})
    kills: list[str] = []

    def operator_types_kill(symbol, ts):
        if not kills and ts >= ns_to_datetime(T0 + 3 * MINUTE):
            kills.append(keel("kill", "--reason", "stop everything", cwd=operator_dir).stdout)

    broker = ScenarioBroker.like(settings, on_bar_hook=operator_types_kill)
    result = execute_run(
        frames, settings, strategy, out_dir=session_dir / "run", mode=Mode.PAPER, profile=Profile.PAPER, broker=broker
    )
    assert kills and "HALTED" in kills[0]
    assert result.summary.blocked_reasons == {"KILL_SWITCH_ACTIVE": 2}  # BBB's entry at bar 4, CCC's at bar 8
    assert [r.symbol for r in broker.requests] == ["AAA"]
    seen = json.loads(keel("status", "--json", cwd=tmp_path).stdout)  # and from a third directory
    assert (seen["state"], seen["reason"]) == ("halted", "stop everything")
    assert not (session_dir / "var").exists() and not (operator_dir / "var").exists()


def test_the_signal_file_halts_a_running_session_records_the_halt_and_blocks_a_resume_until_it_is_gone(
    tmp_path, monkeypatch
):
    # `touch <home>/HALT` while a paper session runs: its next cycle is halted (BBB's entry at bar 4 blocked), the
    # halt is one incident record (trigger signal-file, the file's first line as the reason); removing the file lifts
    # nothing, and a resume is refused while the file is there.
    home = tmp_path / "home"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keel.toml").write_text(f'home = "{home}"\n\n[risk]\nresume_cooldown_seconds = 0\n')
    settings = load_settings(sizing=FIXED)
    frames = [bars(s, [100.0] * 12) for s in ("AAA", "BBB")]
    strategy = scripted(entries={"AAA": (1,), "BBB": (4,)})
    signal = home / "HALT"

    def operator_touches_the_file(symbol, ts):
        if not signal.exists() and ts >= ns_to_datetime(T0 + 3 * MINUTE):
            home.mkdir(parents=True, exist_ok=True)
            signal.write_text("feed looks wrong\nmore detail\n")

    broker = ScenarioBroker.like(settings, on_bar_hook=operator_touches_the_file)
    result = execute_run(
        frames, settings, strategy, out_dir=tmp_path / "run", mode=Mode.PAPER, profile=Profile.PAPER, broker=broker
    )
    assert result.summary.blocked_reasons == {"KILL_SWITCH_ACTIVE": 1}
    assert [r.symbol for r in broker.requests] == ["AAA"]
    seen = json.loads(keel("status", "--json", cwd=tmp_path).stdout)
    assert (seen["state"], seen["actor"]) == ("halted", "signal-file")
    assert seen["reason"] == f"signal file {signal}: feed looks wrong" and seen["signal_file"] == str(signal)
    refused = keel("resume", "--reason", "ok", cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "the signal file" in refused.stderr + refused.stdout
    assert json.loads(keel("status", "--json", cwd=tmp_path).stdout)["state"] == "halted"
    signal.unlink()
    assert json.loads(keel("status", "--json", cwd=tmp_path).stdout)["state"] == "halted"  # never lifted by itself
    keel("resume", "--reason", "feed fixed", cwd=tmp_path)
    records = json.loads(keel("incidents", "--json", cwd=tmp_path).stdout)[0]["records"]
    assert [(r["trigger"], r["state_after"]) for r in records] == [("signal-file", "halted"), ("operator", "active")]
