"""`keel exam run | gates` from the command line: bad input and too few days exit 2 with nothing written, a drill
over one day completes (exit 0) with its closeouts and says it was a drill, and the gates audit a run folder on their
own (exit 1 when the journal was tampered with)."""

from __future__ import annotations

import json

import pytest

from helpers.cli import keel
from keel.data.synthetic import generate_regime_ohlcv, write_csv


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exam-data")
    # 2024-03-01 00:00 to 2024-03-02 02:30 (five-minute bars, 288 a day: room for mean_reversion's 200-bar warm-up):
    # one complete day
    for frame in generate_regime_ohlcv(2, 288 + 30, seed=11, start="2024-03-01T00:00:00+00:00", interval_seconds=300):
        write_csv(frame, folder / f"{frame.symbol.lower()}.csv")
    return sorted(folder.glob("*.csv"))


@pytest.fixture
def env(tmp_path):
    (tmp_path / "keel.toml").write_text('[approval]\napprovers = ["drill"]\n')
    return {"KEEL_HOME": str(tmp_path / "home")}


def exam(tmp_path, env, data, *args):
    files = [a for path in data for a in ("--data", str(path))]
    return keel("exam", "run", *files, *args, cwd=tmp_path, env=env, check=False)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--days", "1", "--answer", "maybe"), "--answer: 'maybe' is not one of approve, reject, none"),
        (("--days", "1", "--speed", "fast"), "--speed: 'fast' is neither a number nor 'max'"),
        (("--days", "1", "--as", "drill"), "--as names the drill approver"),
        (
            (
                "--days",
                "0",
            ),
            "--days must be at least 1",
        ),
        (("--days", "1", "--name", "no spaces"), "--name 'no spaces' makes session names"),
    ],
)
def test_bad_options_exit_2_saying_what_was_wrong_and_write_nothing(tmp_path, env, data, args, needle):
    proc = exam(tmp_path, env, data, *args)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr
    assert not (tmp_path / "var").exists() and not (tmp_path / "home").exists()


def test_a_missing_data_file_exits_2(tmp_path, env):
    proc = keel("exam", "run", "--data", str(tmp_path / "none.csv"), "--days", "1", cwd=tmp_path, env=env, check=False)
    assert proc.returncode == 2 and "none.csv" in proc.stderr


def test_fewer_complete_days_than_asked_exits_2_naming_the_days_there_are(tmp_path, env, data):
    proc = exam(tmp_path, env, data, "--days", "2", "--speed", "max")
    assert proc.returncode == 2
    assert "holds 1 complete UTC day(s) (2024-03-01), fewer than the 2 asked for" in proc.stderr
    assert not (tmp_path / "var").exists()


def test_a_drill_over_one_day_completes_with_its_closeout_and_the_gates_audit_its_runs(tmp_path, env, data):
    proc = exam(tmp_path, env, data, "--days", "1", "--speed", "max", "--answer", "approve", "--as", "drill")
    assert proc.returncode == 0, proc.stderr
    assert "DRILL" in proc.stdout and "passed: zero safety-gate violations" in proc.stdout
    day = tmp_path / "var" / "exam" / "exam" / "2024-03-01"
    body = json.loads((day / "closeout.json").read_text())
    assert body["violations"] == 0 and body["drill"] == {"answer": "approve", "actor": "drill"}
    assert "DRILL" in (day / "closeout.md").read_text()

    again = exam(tmp_path, env, data, "--days", "1", "--speed", "max", "--answer", "approve", "--as", "drill", "--json")
    assert again.returncode == 0, again.stderr
    out = json.loads(again.stdout)
    assert out["passed"] is True and out["violations"] == 0
    assert all(s["session"]["reused"] for d in out["days"] for s in d["strategies"])

    session = tmp_path / "home" / "sessions" / "exam-2024-03-01-sma_cross"
    audit = keel("exam", "gates", str(session), "--json", cwd=tmp_path, env=env, check=False)
    assert audit.returncode == 0 and json.loads(audit.stdout)["ok"] is True
    assert json.loads(audit.stdout)["limits_from"] == "run"
    # the run is judged against the limits it recorded that it ran under (the roster's), not the configured ones
    tight = {**env, "KEEL_RISK__MAX_ORDER_NOTIONAL": "100"}
    recorded = keel("exam", "gates", str(session), cwd=tmp_path, env=tight, check=False)
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert "judged against the limits and approvers the run recorded" in recorded.stdout
    configured = keel("exam", "gates", str(session), "--limits", "config", cwd=tmp_path, env=tight, check=False)
    assert configured.returncode == 1 and "order_notional_within_limit" in configured.stdout
    assert "judged against the configured limits and approvers" in configured.stdout
    log = session / "events.jsonl"
    log.write_text(log.read_text().replace('"mode":"paper"', '"mode":"live"', 1))
    tampered = keel("exam", "gates", str(session), cwd=tmp_path, env=env, check=False)
    assert tampered.returncode == 1 and "journal_verifies" in tampered.stdout
