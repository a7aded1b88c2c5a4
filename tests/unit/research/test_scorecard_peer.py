"""The scorecard against a peer library on a real series: empyrical (the maintained `empyrical-reloaded`),
installed into a virtual environment of its own (never a dependency of Keel), cached in pytest's cache folder so it
is built once per clone. Skipped, with the reason, only when the peer cannot be installed."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keel.research import scorecard as sc

DATA = Path(__file__).parents[2] / "data" / "goog-daily.csv"
PEER = "empyrical-reloaded==0.7.1"
#: what the peer computes, on daily returns annualised with 252 periods (its "daily" convention)
PEER_SCRIPT = r"""
import json, sys
import numpy as np, pandas as pd
import empyrical as ep
close = pd.read_csv(sys.argv[1], index_col=0, parse_dates=True)["Close"]
r = close.pct_change().dropna()
print(json.dumps({
    "annual_return": ep.annual_return(r, period="daily"),
    "annual_volatility": ep.annual_volatility(r, period="daily"),
    "sharpe": ep.sharpe_ratio(r, period="daily"),
    "sharpe_rf": ep.sharpe_ratio(r, risk_free=float(sys.argv[2]), period="daily"),
    "sortino": ep.sortino_ratio(r, period="daily"),
    "calmar": ep.calmar_ratio(r, period="daily"),
    "max_drawdown": ep.max_drawdown(r),
    "cum_return": ep.cum_returns_final(r),
}))
"""


@contextlib.contextmanager
def _locked(path: Path):
    """One builder at a time (pytest-xdist runs several workers)."""
    import fcntl

    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def peer_python(request) -> Path:
    root = Path(request.config.cache.mkdir("keel-peer-venv"))
    python = root / "venv" / "bin" / "python"
    ready = root / f"ready-{PEER}"
    with _locked(root / ".lock"):
        if not ready.exists():
            venv.EnvBuilder(with_pip=True, clear=True).create(root / "venv")
            proc = subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", PEER],
                capture_output=True,
                text=True,
                timeout=900,
                env={k: v for k, v in os.environ.items() if not k.startswith("PIP_CONSTRAINT")},
            )
            if proc.returncode != 0:
                pytest.skip(f"the peer library {PEER} could not be installed: {proc.stderr.strip()[-300:]}")
            ready.write_text(PEER + "\n")
    return python


@pytest.fixture(scope="session")
def goog() -> pd.Series:
    return pd.read_csv(DATA, index_col=0, parse_dates=True)["Close"]


def test_curve_metrics_agree_with_empyrical_on_googs_daily_closes(peer_python, goog):
    rf = 0.03
    proc = subprocess.run(
        [str(peer_python), "-c", PEER_SCRIPT, str(DATA), str(sc.per_period_rate(rf, 252.0))],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    peer = json.loads(proc.stdout)
    ts = goog.index.tz_localize("UTC").as_unit("ns").asi8
    equity = goog.to_numpy(dtype=np.float64) * 1_000.0  # the value of 1,000 shares, bought at the first close
    card = sc.compute_scorecard(
        ts=ts,
        equity=equity,
        cash=np.zeros_like(equity),
        initial_cash=float(equity[0]),
        trades=(),
        fees_paid=0.0,
        periods_per_year=252.0,
    )
    with_rf = sc.compute_scorecard(
        ts=ts,
        equity=equity,
        cash=np.zeros_like(equity),
        initial_cash=float(equity[0]),
        trades=(),
        fees_paid=0.0,
        periods_per_year=252.0,
        risk_free_rate=rf,
    )
    assert card.total_return_pct / 100 == pytest.approx(peer["cum_return"], rel=1e-9)
    assert card.annual_return_pct / 100 == pytest.approx(peer["annual_return"], rel=1e-9)
    assert card.volatility_pct / 100 == pytest.approx(peer["annual_volatility"], rel=1e-9)
    assert card.sharpe == pytest.approx(peer["sharpe"], rel=1e-9)
    assert with_rf.sharpe == pytest.approx(peer["sharpe_rf"], rel=1e-9)
    assert card.sortino == pytest.approx(peer["sortino"], rel=1e-9)
    assert card.calmar == pytest.approx(peer["calmar"], rel=1e-9)
    assert card.max_drawdown_pct / 100 == pytest.approx(-peer["max_drawdown"], rel=1e-9)
    # and the bar spacing of a real stock series gives about the 252 days the convention assumes
    assert sc.infer_periods_per_year(ts) == pytest.approx(252.0, rel=0.01)
    assert card.periods_source == sc.GIVEN and sys.executable != str(peer_python)
