"""`keel report` and `keel compare` through the real command line: what they write and print, and every bad input
(exit 2, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.cli import keel

DATA = Path(__file__).parents[1] / "data" / "goog-daily.csv"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two backtests of GOOG's daily bars, with different parameters."""
    root = tmp_path_factory.mktemp("runs")
    for name, slow in (("a", "30"), ("b", "50")):
        keel("backtest", "--data", str(DATA), "--param", "fast=10", "--param", f"slow={slow}", "--out", name, cwd=root)
    return root


def test_report_writes_the_page_and_the_charts_and_prints_the_scorecard(runs):
    proc = keel("report", "a", "--data", str(DATA), cwd=runs)
    for label in ("total return", "Sharpe", "Sortino", "Calmar", "max drawdown", "profit factor", "average MFE"):
        assert label in proc.stdout
    assert "bars a year (inferred from bar spacing), risk-free rate 0" in proc.stdout
    folder = runs / "a" / "report"
    assert {p.name for p in folder.iterdir()} == {
        ".keel-report",
        "report.html",
        "equity.png",
        "drawdown.png",
        "price-GOOG-DAILY.png",
        "monthly.png",
    }
    assert "price panel" not in proc.stdout  # the data was given: nothing was left out


def test_report_works_on_a_demo_run_without_its_data(tmp_path):
    keel("demo", "--bars", "2000", "--symbols", "2", "--out", "demo", cwd=tmp_path)
    proc = keel("report", "demo", cwd=tmp_path)
    assert "Scorecard of run-" in proc.stdout and "SYN0, SYN1" in proc.stdout
    assert "note: price panel and buy-and-hold curve left out" in proc.stdout
    assert (tmp_path / "demo" / "report" / "report.html").is_file()


def test_report_json_holds_the_scorecard_and_the_files(runs):
    proc = keel(
        "report", "b", "--json", "--no-charts", "--periods-per-year", "252", "--risk-free-rate", "0.02", cwd=runs
    )
    data = json.loads(proc.stdout)
    assert data["report"].endswith("report.html") and len(data["files"]) == 1
    card = data["scorecard"]
    assert card["periods_per_year"] == 252 and card["periods_source"] == "given" and card["risk_free_rate"] == 0.02
    assert isinstance(card["sharpe"], float) and card["trades"] > 0
    assert any("price panel" in n for n in data["notes"])


def test_report_again_replaces_only_its_own_files(runs):
    keel("report", "a", "--no-charts", cwd=runs)
    mine = runs / "a" / "report" / "my-notes.txt"
    mine.write_text("keep me")
    keel("report", "a", "--no-charts", cwd=runs)
    assert mine.read_text() == "keep me"


def test_compare_puts_runs_side_by_side_and_writes_a_page(runs):
    proc = keel("compare", "a", "b", "--html", "cmp.html", cwd=runs)
    assert "2 runs side by side" in proc.stdout and "profit factor" in proc.stdout
    page = (runs / "cmp.html").read_text()
    assert page.count("<th>run-") == 2
    keel("compare", "a", "b", "--html", "cmp.html", cwd=runs)  # its own page: replaced
    data = json.loads(keel("compare", "a", "b", "--json", cwd=runs).stdout)
    assert [r["scorecard"]["trades"] > 0 for r in data["runs"]] == [True, True]


def _refused(*args: str, cwd: Path) -> str:
    proc = keel(*args, cwd=cwd, check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "internal error" not in proc.stderr
    return proc.stderr


def test_a_missing_folder_is_refused(tmp_path):
    assert "no such folder" in _refused("report", "nowhere", cwd=tmp_path)


def test_a_file_is_refused(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    assert "not a folder" in _refused("report", "f.txt", cwd=tmp_path)


def test_a_foreign_folder_is_refused_and_left_alone(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "prices.csv").write_text("x")
    assert "not a Keel run folder" in _refused("report", "mine", cwd=tmp_path)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["prices.csv"]


def test_an_incomplete_run_is_refused(tmp_path, runs):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / ".keel-run").write_text((runs / "a" / ".keel-run").read_text())
    (folder / "events.jsonl").write_text("")
    assert "not complete" in _refused("report", "run", cwd=tmp_path)


def test_an_edited_summary_is_refused(tmp_path, runs):
    folder = tmp_path / "run"
    folder.mkdir()
    for name in (".keel-run", "events.jsonl", "equity.parquet", "trades.csv"):
        (folder / name).write_bytes((runs / "a" / name).read_bytes())
    (folder / "summary.json").write_text('{"run_id": 3}')
    assert "not a run summary Keel can read" in _refused("report", "run", cwd=tmp_path)


def test_data_the_run_did_not_read_is_refused(tmp_path, runs):
    other = tmp_path / "goog-daily.csv"
    lines = DATA.read_text().splitlines()
    other.write_text("\n".join(lines[:-1]) + "\n")  # one bar short
    err = _refused("report", str(runs / "a"), "--data", str(other), cwd=tmp_path)
    assert "not the data the run read" in err
    err = _refused("report", str(runs / "a"), "--data", str(DATA), "--symbol", "MSFT", cwd=tmp_path)
    assert "not a symbol of the run" in err


def test_bad_conventions_are_refused(tmp_path, runs):
    assert "--periods-per-year" in _refused("report", str(runs / "a"), "--periods-per-year", "0", cwd=tmp_path)
    assert "0.04 for 4 %" in _refused("report", str(runs / "a"), "--risk-free-rate", "4", cwd=tmp_path)
    assert "--symbol names the --data files" in _refused("report", str(runs / "a"), "--symbol", "X", cwd=tmp_path)


def test_a_foreign_report_folder_is_refused(tmp_path, runs):
    folder = tmp_path / "run"
    folder.mkdir()
    for name in (".keel-run", "events.jsonl", "equity.parquet", "trades.csv", "summary.json"):
        (folder / name).write_bytes((runs / "a" / name).read_bytes())
    (folder / "report").mkdir()
    (folder / "report" / "report.html").write_text("mine")
    assert "not a folder Keel wrote" in _refused("report", "run", cwd=tmp_path)
    assert (folder / "report" / "report.html").read_text() == "mine"


def test_compare_refuses_one_run_the_same_run_twice_and_a_foreign_page(tmp_path, runs):
    assert "at least two" in _refused("compare", str(runs / "a"), cwd=tmp_path)
    assert "twice" in _refused("compare", str(runs / "a"), str(runs / "a"), cwd=tmp_path)
    (tmp_path / "page.html").write_text("<html>mine</html>")
    err = _refused("compare", str(runs / "a"), str(runs / "b"), "--html", "page.html", cwd=tmp_path)
    assert "not a comparison Keel wrote" in err and (tmp_path / "page.html").read_text() == "<html>mine</html>"
    assert "does not exist" in _refused(
        "compare", str(runs / "a"), str(runs / "b"), "--html", "no/such/page.html", cwd=tmp_path
    )
    assert "not a Keel run folder" in _refused("compare", str(runs / "a"), str(tmp_path), cwd=tmp_path)


def test_a_run_whose_curve_or_trades_went_missing_says_how_to_rebuild_them(tmp_path, runs):
    folder = tmp_path / "run"
    folder.mkdir()
    for name in (".keel-run", "events.jsonl", "summary.json", "trades.csv"):
        (folder / name).write_bytes((runs / "a" / name).read_bytes())
    assert "equity.parquet is missing" in _refused("report", "run", cwd=tmp_path)
    (folder / "equity.parquet").write_text("not parquet")
    assert "not an equity curve Keel can read" in _refused("report", "run", cwd=tmp_path)
    (folder / "equity.parquet").write_bytes((runs / "a" / "equity.parquet").read_bytes())
    (folder / "trades.csv").write_text("symbol,entry_ts\nGOOG,yesterday\n")
    assert "trades.csv, line 2" in _refused("report", "run", cwd=tmp_path)
    assert not (folder / "report").exists()


def test_compare_refuses_an_html_path_that_is_a_folder(tmp_path, runs):
    (tmp_path / "pages").mkdir()
    err = _refused("compare", str(runs / "a"), str(runs / "b"), "--html", "pages", cwd=tmp_path)
    assert "--html names a folder" in err


def test_a_fresh_run_removes_the_report_keel_wrote_and_keeps_a_file_of_the_users(tmp_path):
    keel("backtest", "--data", str(DATA), "--out", "run", cwd=tmp_path)
    keel("report", "run", "--data", str(DATA), cwd=tmp_path)
    folder = tmp_path / "run" / "report"
    (folder / "my-notes.txt").write_text("mine")
    proc = keel("backtest", "--data", str(DATA), "--out", "run", "--fresh", cwd=tmp_path)
    assert {p.name for p in folder.iterdir()} == {"my-notes.txt"}  # no stale report of the run before
    assert "report/my-notes.txt" in proc.stdout + proc.stderr
    # what is left is the user's alone: a new report is refused there, and their file is untouched
    again = keel("report", "run", "--data", str(DATA), cwd=tmp_path, check=False)
    assert again.returncode == 2 and "not a folder Keel wrote" in again.stderr
    assert (folder / "my-notes.txt").read_text() == "mine"
