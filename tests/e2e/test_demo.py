"""`keel demo` end to end through the real command line."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from helpers.cli import keel


def test_demo_twice_with_the_same_seed_is_byte_identical(tmp_path):
    a = json.loads(keel("demo", "--bars", "3000", "--seed", "3", "--out", "a", "--json", cwd=tmp_path).stdout)
    b = json.loads(keel("demo", "--bars", "3000", "--seed", "3", "--out", "b", "--json", cwd=tmp_path).stdout)
    for name in ("events.jsonl", "summary.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert a["run_id"] == b["run_id"] and a["bars"] == 9_000 and len(a["symbols"]) == 3
    c = json.loads(keel("demo", "--bars", "3000", "--seed", "4", "--out", "c", "--json", cwd=tmp_path).stdout)
    assert c["run_id"] != a["run_id"]


def test_demo_default_runs_the_whole_pipeline_and_verifies(tmp_path):
    proc = keel("demo", cwd=tmp_path)
    for word in ("bars", "intents", "blocked", "orders / fills", "PnL", "max drawdown", "wall time"):
        assert word in proc.stdout
    run = next((tmp_path / "var" / "runs").iterdir())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["bars"] >= 150_000 and len(summary["symbols"]) >= 3
    assert summary["orders"] > 0 and summary["fills"] > 0
    assert sum(summary["intents_by_state"].values()) > 100
    for name in ("events.jsonl", "summary.json", "equity.parquet", "trades.csv", "keel.db"):
        assert (run / name).exists(), name
    assert not (run / "equity.csv").exists()  # only on request
    assert keel("journal", "verify", str(run), cwd=tmp_path).returncode == 0
    listed = json.loads(keel("intents", "list", "--run", str(run), "--json", "--limit", "5", cwd=tmp_path).stdout)
    assert len(listed) == 5 and all(r["intent_id"].startswith("it-") for r in listed)
    again = keel("demo", cwd=tmp_path)  # same run: recognised, nothing executed twice
    assert "already complete" in again.stdout


def test_demo_writes_the_equity_csv_on_request_a_row_per_instant(tmp_path):
    keel("demo", "--bars", "500", "--out", "run", "--equity-csv", cwd=tmp_path)
    rows = (tmp_path / "run" / "equity.csv").read_text().splitlines()
    assert rows[0] == "timestamp,cash,equity" and rows[1] == "2024-01-01T00:00:00Z,100000.00,100000.00"
    assert len(rows) == 1 + pq.read_metadata(tmp_path / "run" / "equity.parquet").num_rows


def test_tampered_journal_fails_verification_naming_the_record(tmp_path):
    keel("demo", "--bars", "2000", "--out", "run", cwd=tmp_path)
    log = tmp_path / "run" / "events.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    assert b'"stage":"' in lines[3]
    lines[3] = lines[3].replace(b'"stage":"', b'"stage":"x', 1)  # one edited field in record 4
    log.write_bytes(b"".join(lines))
    proc = keel("journal", "verify", str(tmp_path / "run"), cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert "seq 4" in proc.stderr


def test_kill_blocks_every_new_intent_and_resume_needs_the_cooldown(tmp_path):
    # a session (paper) obeys the operator's kill switch; a replay runs on its own scripted trading state
    (tmp_path / "keel.toml").write_text('mode = "paper"\n[risk]\nresume_cooldown_seconds = 0\n')
    keel("kill", "--reason", "drill", cwd=tmp_path)
    status = json.loads(keel("status", "--json", cwd=tmp_path).stdout)
    assert status["state"] == "halted" and status["reason"] == "drill"
    summary = json.loads(keel("demo", "--bars", "2000", "--out", "halted", "--json", cwd=tmp_path).stdout)
    assert summary["orders"] == 0
    assert set(summary["intents_by_state"]) == {"blocked"}
    assert summary["blocked_reasons"] == {"KILL_SWITCH_ACTIVE": summary["intents_by_state"]["blocked"]}
    keel("resume", "--reason", "drill over", cwd=tmp_path)
    assert json.loads(keel("status", "--json", cwd=tmp_path).stdout)["state"] == "active"


def test_resume_before_cooldown_is_refused(tmp_path):
    keel("kill", "--reason", "incident", cwd=tmp_path)
    proc = keel("resume", "--reason", "too soon", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "cooldown" in proc.stderr


def test_kill_without_reason_is_bad_input(tmp_path):
    proc = keel("kill", "--reason", "  ", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "reason is required" in proc.stderr
