"""The report of a real run (GOOG's daily bars through `keel backtest`'s pipeline), read back from its folder,
rendered and opened in headless Chromium: the page loads offline, every chart draws, the screenshot is kept."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from keel.backtest.run import execute_run
from keel.data.files import load_many
from keel.domain.run import RunSummary
from keel.research import scorecard as sc
from keel.research.charts import render_charts
from keel.research.report_data import load_run
from keel.research.report_files import HTML, write_report
from keel.research.report_html import render_comparison, render_report
from keel.settings import Profile, load_settings
from keel.strategies import build_strategy

DATA = Path(__file__).parents[2] / "data" / "goog-daily.csv"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def goog_run(tmp_path_factory):
    frames = load_many([DATA])
    settings = load_settings(None, profile=Profile.RESEARCH, sizing={"method": "all_in"})
    strategy = build_strategy("sma_cross", {"fast": 10, "slow": 30})
    out = tmp_path_factory.mktemp("goog") / "run"
    execute_run(frames, settings, strategy, out_dir=out, profile=Profile.RESEARCH)
    return out, frames


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM}: install it with `apt-get install chromium`")
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_every_run_summary_carries_its_scorecard(goog_run):
    out, frames = goog_run
    summary = RunSummary.model_validate_json((out / "summary.json").read_bytes())
    card = summary.scorecard
    assert card is not None and summary.schema_version == 4
    assert card.total_return_pct == pytest.approx(summary.total_return_pct, abs=1e-5)
    assert card.max_drawdown_pct == pytest.approx(summary.max_drawdown_pct, abs=1e-5)
    assert card.trades == summary.trades and card.fees_paid == summary.fees_paid
    assert card.periods_source == sc.INFERRED and card.periods_per_year == pytest.approx(251.7, abs=0.1)
    bench = frames[0].close[-1] / frames[0].close[0] - 1.0
    assert card.benchmark_total_return_pct == pytest.approx(bench * 100)
    # every trade in trades.csv has its excursions, consistent with its prices
    run = load_run(out)
    assert run.trades and all(t.mfe_pct is not None and t.mfe_pct >= 0 >= t.mae_pct for t in run.trades)
    for t in run.trades:
        move = (t.exit_price / t.entry_price - 1.0) * 100
        assert t.mae_pct - 1e-4 <= move <= t.mfe_pct + 1e-4
    assert card.undefined == {k: v for k, v in card.undefined.items() if k.startswith("model_")}


def test_a_scorecard_computed_again_from_the_files_matches_the_stored_one(goog_run):
    out, frames = goog_run
    stored = load_run(out).scorecard
    again = load_run(out, data=frames, periods_per_year=stored.periods_per_year).scorecard
    for name, value in stored.model_dump().items():
        if name in ("periods_source", "slippage_paid", "turnover", "annual_turnover"):
            continue  # given now; and those two come from the fills at run time, from the closed trades here
        if isinstance(value, float):
            assert getattr(again, name) == pytest.approx(value, rel=1e-6, abs=1e-6), name
    assert again.periods_source == sc.GIVEN
    daily = load_run(out, periods_per_year=252.0)
    assert daily.scorecard.sharpe == pytest.approx(stored.sharpe * np.sqrt(252.0 / stored.periods_per_year))
    assert daily.scorecard.benchmark_total_return_pct == stored.benchmark_total_return_pct  # carried without bars


def test_the_report_loads_offline_in_headless_chromium_and_draws_every_chart(goog_run, tmp_path):
    out, frames = goog_run
    run = load_run(out, data=frames)
    page = render_report(run)
    files = {HTML: page.encode(), **render_charts(run)}
    folder = write_report(out, files)
    html_path = folder / HTML

    # self-contained: nothing is fetched from anywhere (the SVG namespace is a name, not a request)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "@import" not in page and "url(" not in page
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= {"http://www.w3.org/2000/svg"}
    for name in ("equity.png", "drawdown.png", "price-GOOG-DAILY.png", "monthly.png"):
        assert (folder / name).read_bytes().startswith(PNG_MAGIC)

    dom = _chromium(tmp_path, "--dump-dom", html_path.as_uri())
    assert dom.returncode == 0, dom.stderr
    body = re.search(r"<body[^>]*>", dom.stdout).group(0)
    expected = int(re.search(r'data-charts-expected="(\d+)"', body).group(1))
    assert expected == 3  # equity, drawdown, GOOG's trades on price
    assert f'data-charts-drawn="{expected}"' in body
    assert dom.stdout.count('data-marker="buy"') == len(run.trades)  # every closed trade's entry
    assert dom.stdout.count('data-marker="sell"') == len(run.trades)
    assert 'data-series="buy and hold"' in dom.stdout and 'data-series="drawdown"' in dom.stdout

    shot = tmp_path / "report.png"
    proc = _chromium(tmp_path, "--window-size=1200,2400", f"--screenshot={shot}", html_path.as_uri())
    assert proc.returncode == 0, proc.stderr
    assert shot.read_bytes().startswith(PNG_MAGIC) and shot.stat().st_size > 50_000
    print(f"screenshot: {shot}")


def test_the_comparison_page_draws_its_chart_in_chromium(goog_run, tmp_path):
    out, _ = goog_run
    run = load_run(out)
    page = tmp_path / "compare.html"
    page.write_text(render_comparison([run, run]), encoding="utf-8")
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri())
    assert 'data-charts-drawn="1"' in dom.stdout and 'data-charts-expected="1"' in dom.stdout
    assert dom.stdout.count("data-legend=") == 2  # each run named in the colour of its curve


def test_a_report_without_the_bars_says_what_it_left_out(goog_run):
    out, _ = goog_run
    run = load_run(out)
    page = render_report(run)
    assert "price panel and buy-and-hold curve left out" in page
    data = json.loads(re.search(r"id=keel-data>(.*?)</script>", page, re.S).group(1))
    assert [c["id"] for c in data["charts"]] == ["chart-equity", "chart-drawdown"]


def test_a_run_of_several_symbols_needs_the_data_of_every_one(tmp_path):
    from keel.data.synthetic import generate_regime_ohlcv
    from keel.domain.errors import InputError

    frames = generate_regime_ohlcv(2, 1_500, seed=4)
    settings = load_settings(None)
    execute_run(frames, settings, build_strategy("sma_cross", {"fast": 5, "slow": 20}), out_dir=tmp_path / "run")
    with pytest.raises(InputError, match="SYN1 is missing"):
        load_run(tmp_path / "run", data=frames[:1])
    run = load_run(tmp_path / "run", data=frames)
    bench = run.benchmark()
    both = (frames[0].close / frames[0].close[0] + frames[1].close / frames[1].close[0]) / 2
    assert bench == pytest.approx(both * run.summary.initial_cash)
    assert run.scorecard.benchmark_total_return_pct == pytest.approx((both[-1] - 1) * 100)
