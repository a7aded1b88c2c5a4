"""Run folders: Keel writes only into folders it owns, one writer at a time, and calls a run complete only once
every file it promised is on disk. Nothing a user put somewhere is ever deleted or overwritten."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from keel.backtest import outputs
from keel.backtest.folder import MARKER, RunFolder
from keel.backtest.outputs import write_outputs
from keel.backtest.run import execute_run, open_guard
from keel.data.synthetic import generate_regime_ohlcv
from keel.domain.errors import InputError
from keel.risk.kill_switch import halt
from keel.runtime.clock import WallClock
from keel.settings import Profile, load_settings
from keel.strategies import build_strategy

FRAMES = generate_regime_ohlcv(1, 1_500, seed=3)
STRATEGY = build_strategy("sma_cross", {"fast": 5, "slow": 20})


def _settings(tmp_path, **kw):
    return load_settings(var_dir=tmp_path / "var", **kw)


def _run(tmp_path, out, *, fresh=False, strategy=STRATEGY, **kw):
    return execute_run(FRAMES, _settings(tmp_path, **kw), strategy, out_dir=out, profile=Profile.RESEARCH, fresh=fresh)


def test_fresh_refuses_a_folder_keel_did_not_mark_and_deletes_nothing(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "prices.csv").write_text("timestamp,open,high,low,close,volume\n")
    with pytest.raises(InputError, match="not a Keel run folder"):
        _run(tmp_path, data, fresh=True)
    assert sorted(p.name for p in data.iterdir()) == ["prices.csv"]  # today: the folder was wiped, exit 0


def test_a_non_empty_folder_keel_did_not_mark_is_refused_without_writing_anything(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a Keel run folder"):
        _run(tmp_path, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_a_different_run_into_a_run_folder_is_refused_unless_fresh_which_keeps_foreign_files(tmp_path):
    out = tmp_path / "run"
    first = _run(tmp_path, out)
    log = (out / "events.jsonl").read_bytes()
    other = build_strategy("sma_cross", {"fast": 8, "slow": 30})
    with pytest.raises(InputError, match="holds another run"):
        _run(tmp_path, out, strategy=other)
    assert (out / "events.jsonl").read_bytes() == log  # today: mixed into keel.db, the log replaced
    (out / "my-notes.txt").write_text("keep me")
    second = _run(tmp_path, out, strategy=other, fresh=True)
    assert second.summary.run_id != first.summary.run_id and not second.reused
    assert second.kept == ("my-notes.txt",) and (out / "my-notes.txt").read_text() == "keep me"
    with sqlite3.connect(out / "keel.db") as con:
        assert con.execute("select count(distinct run_id) from intents").fetchone()[0] == 1


def test_a_second_writer_is_refused_while_the_first_holds_the_folder(tmp_path):
    out = tmp_path / "run"
    first = _run(tmp_path, out)
    holder = RunFolder.claim(out, first.summary.run_id, fresh=False)  # another process, mid-run
    try:
        with pytest.raises(InputError, match="in use by another Keel process"):
            _run(tmp_path, out)
        with pytest.raises(InputError, match="in use"):
            _run(tmp_path, out, fresh=True)
    finally:
        holder.release()
    assert (out / MARKER).is_file() and (out / "events.jsonl").is_file()


def test_out_naming_a_file_or_an_impossible_place_is_refused(tmp_path):
    target = tmp_path / "afile"
    target.write_text("x")
    with pytest.raises(InputError, match="names a file"):
        _run(tmp_path, target)
    assert target.read_text() == "x"
    with pytest.raises(InputError, match="cannot create the run folder"):
        _run(tmp_path, tmp_path / "afile" / "below")


def test_a_complete_run_whose_files_went_missing_gets_them_back_from_its_journal(tmp_path):
    out = tmp_path / "run"
    first = _run(tmp_path, out)
    files = {name: (out / name).read_bytes() for name in outputs.OUTPUT_FILES}
    (out / "equity.parquet").unlink()
    (out / "trades.csv").unlink()
    again = _run(tmp_path, out)
    assert again.reused and again.regenerated == ("equity.parquet", "trades.csv")
    assert {name: (out / name).read_bytes() for name in outputs.OUTPUT_FILES} == files
    assert again.summary == first.summary


def test_a_run_is_marked_complete_only_after_its_files_are_written(tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = outputs.write_outputs

    def dies_after_the_summary(run_dir, summary, curve, names):
        outputs._atomic(run_dir / outputs.SUMMARY_FILE, summary.model_dump_json(indent=2).encode() + b"\n")
        raise KeyboardInterrupt  # killed between the summary and the other files

    monkeypatch.setattr("keel.backtest.run.write_outputs", dies_after_the_summary)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, out)
    with sqlite3.connect(out / "keel.db") as con:
        assert con.execute("select status from runs").fetchone()[0] == "running"  # today: complete
    monkeypatch.setattr("keel.backtest.run.write_outputs", real)
    resumed = _run(tmp_path, out)
    assert resumed.resumed and not resumed.reused
    assert all((out / name).is_file() for name in outputs.OUTPUT_FILES)
    clean = _run(tmp_path, tmp_path / "clean")
    for name in ("equity.parquet", "trades.csv"):
        assert (out / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()
    assert resumed.summary.final_equity == clean.summary.final_equity


def test_a_run_folder_from_before_equity_parquet_is_still_keels_and_gets_its_curve_back(tmp_path):
    out = tmp_path / "run"
    first = _run(tmp_path, out, report={"equity_csv": True})
    parquet = (out / "equity.parquet").read_bytes()
    csv = (out / "equity.csv").read_bytes()
    (out / "equity.parquet").unlink()
    (out / MARKER).unlink()  # as a version before markers and before equity.parquet left it
    again = _run(tmp_path, out)
    assert again.reused and again.regenerated == ("equity.parquet",) and again.summary == first.summary
    assert (out / "equity.parquet").read_bytes() == parquet and (out / "equity.csv").read_bytes() == csv
    assert (out / MARKER).is_file()
    fresh = _run(tmp_path, out, fresh=True)
    assert fresh.kept == () and not (out / "equity.csv").exists()  # Keel's own file: --fresh may remove it


def test_a_run_interrupted_by_a_version_before_equity_parquet_resumes(tmp_path, monkeypatch):
    out = tmp_path / "run"

    def dies_as_the_version_before_did(run_dir, summary, curve, names):
        write_outputs(run_dir, summary, curve, ["summary.json", "equity.csv"])  # its first two files
        raise KeyboardInterrupt

    monkeypatch.setattr("keel.backtest.run.write_outputs", dies_as_the_version_before_did)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, out)
    monkeypatch.undo()
    resumed = _run(tmp_path, out)
    clean = _run(tmp_path, tmp_path / "clean")
    assert resumed.resumed and resumed.summary.final_equity == clean.summary.final_equity
    for name in ("equity.parquet", "trades.csv"):  # the summary counts the resume's own records too
        assert (out / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name


def test_equity_csv_asked_of_a_complete_run_is_rebuilt_from_its_journal_not_run_again(tmp_path):
    out = tmp_path / "run"
    first = _run(tmp_path, out)
    assert not (out / "equity.csv").exists()
    again = _run(tmp_path, out, report={"equity_csv": True})  # the same run: what it writes is not its identity
    assert again.reused and again.regenerated == ("equity.csv",) and again.summary == first.summary
    table = pq.read_table(out / "equity.parquet")
    iso = np.datetime_as_string(table["timestamp"].to_numpy().astype("datetime64[ns]"), unit="s")
    rows = zip(iso, table["cash"].to_pylist(), table["equity"].to_pylist(), strict=True)
    cents = "".join(f"{t}Z,{outputs.money(c)},{outputs.money(e)}\n" for t, c, e in rows)
    assert (out / "equity.csv").read_text() == "timestamp,cash,equity\n" + cents
    written = _run(tmp_path, tmp_path / "with-csv", report={"equity_csv": True})  # written at the end of a run
    assert (
        not written.reused and (tmp_path / "with-csv" / "equity.csv").read_bytes() == (out / "equity.csv").read_bytes()
    )


#: a run of FRAMES and STRATEGY (as `_run` makes it) killed while it writes equity.parquet, after its first row group
KILLED_WRITING_THE_CURVE = """
import os, signal, sys
from pathlib import Path
from keel.backtest import outputs
from keel.backtest.run import execute_run
from keel.data.synthetic import generate_regime_ohlcv
from keel.settings import Profile, load_settings
from keel.strategies import build_strategy

real = outputs._equity_batches

def dies_after_the_first_row_group(curve):
    batches = real(curve)
    yield next(batches)
    os.kill(os.getpid(), signal.SIGKILL)  # as a power cut would: no clean-up runs

outputs.EQUITY_ROW_GROUP = 100
outputs._equity_batches = dies_after_the_first_row_group
tmp = Path(sys.argv[1])
frames = generate_regime_ohlcv(1, 1_500, seed=3)
strategy = build_strategy("sma_cross", {"fast": 5, "slow": 20})
execute_run(frames, load_settings(var_dir=tmp / "var"), strategy, out_dir=tmp / "run", profile=Profile.RESEARCH)
"""


def test_a_crash_while_the_curve_is_written_leaves_no_half_file_and_the_run_resumes(tmp_path):
    from helpers.cli import keel_env

    out = tmp_path / "run"
    script = tmp_path / "killed.py"
    script.write_text(KILLED_WRITING_THE_CURVE)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=tmp_path, env=keel_env(cwd=tmp_path))
    assert proc.returncode == -signal.SIGKILL
    assert (out / "summary.json").is_file() and not (out / "equity.parquet").exists()  # died writing it
    with sqlite3.connect(out / "keel.db") as con:
        assert con.execute("select status from runs").fetchone()[0] == "running"
    resumed = _run(tmp_path, out)
    _run(tmp_path, tmp_path / "clean")
    assert resumed.resumed and not list(out.glob("*.tmp"))
    assert (out / "equity.parquet").read_bytes() == (tmp_path / "clean" / "equity.parquet").read_bytes()


def test_a_backtest_never_reads_the_operators_kill_switch(tmp_path):
    settings = _settings(tmp_path)
    store, _ = open_guard(settings)
    try:
        halt(store, reason="operator halted the live sessions", actor="ops", ts=WallClock().now())
    finally:
        store.close()
    halted = _run(tmp_path, tmp_path / "run")
    assert halted.summary.fills > 0  # today: 0 trades, and that result was then reused after the resume


def test_a_run_killed_between_its_row_and_its_first_record_starts_cleanly_on_the_next_try(tmp_path, monkeypatch):
    out = tmp_path / "run"
    from keel.journal.journal import Journal

    real_event = Journal.event

    def dies_at_run_started(self, stage, event, payload, **kw):
        if event == "run.started":
            raise KeyboardInterrupt  # the runs row is committed, the first record is not
        return real_event(self, stage, event, payload, **kw)

    monkeypatch.setattr(Journal, "event", dies_at_run_started)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, out)
    monkeypatch.setattr(Journal, "event", real_event)
    again = _run(tmp_path, out)  # before: "its journal holds no run.started record; it cannot be resumed"
    clean = _run(tmp_path, tmp_path / "clean")
    assert again.summary.final_equity == clean.summary.final_equity and again.summary.fills == clean.summary.fills


def test_a_run_folder_of_a_version_without_markers_is_adopted_but_a_lookalike_is_not(tmp_path):
    out = tmp_path / "run"
    first = _run(tmp_path, out)
    (out / MARKER).unlink()  # as an earlier version left it
    again = _run(tmp_path, out, fresh=True)  # `make demo` runs with --fresh
    assert again.summary == first.summary and (out / MARKER).is_file()
    lookalike = tmp_path / "lookalike"
    lookalike.mkdir()
    (lookalike / "events.jsonl").write_text("my own notes\n")
    (lookalike / "summary.json").write_text("{}")
    with pytest.raises(InputError, match="not a Keel run folder"):
        _run(tmp_path, lookalike, fresh=True)
    assert sorted(p.name for p in lookalike.iterdir()) == ["events.jsonl", "summary.json"]


def test_the_command_says_what_it_rebuilt_and_what_fresh_kept(tmp_path):
    from helpers.cli import keel
    from keel.data.files import write_csv

    write_csv(FRAMES[0], tmp_path / "d.csv")
    args = ("backtest", "--data", "d.csv", "--param", "fast=5", "--param", "slow=20", "--out", "run")
    keel(*args, cwd=tmp_path)
    (tmp_path / "run" / "trades.csv").unlink()
    assert "rebuilt from its journal: trades.csv" in keel(*args, cwd=tmp_path).stdout
    (tmp_path / "run" / "notes.txt").write_text("mine")
    assert "--fresh kept what Keel did not write: notes.txt" in keel(*args, "--fresh", cwd=tmp_path).stdout
