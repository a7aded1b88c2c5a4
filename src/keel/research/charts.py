"""PNG charts of a run, beside its HTML report: equity (with buy and hold), drawdown, trades on price, monthly
returns. Drawn with matplotlib's Agg backend (no display, no window), each returned as PNG bytes; writing them is
the caller's."""

from __future__ import annotations

import io

import numpy as np

from keel.research.report_data import RunData, downsample
from keel.research.report_html import MONTHS

WIDTH, HEIGHT, DPI = 10.0, 3.6, 100


def render_charts(run: RunData) -> dict[str, bytes]:
    """file name → PNG bytes: equity.png, drawdown.png, monthly.png, and price-<symbol>.png per symbol with bars."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure  # a Figure without pyplot: no global state, nothing shown

    def png(fig: Figure) -> bytes:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": "keel report"})
        return buf.getvalue()

    def times(ts: np.ndarray) -> np.ndarray:
        return np.asarray(ts, dtype="datetime64[ns]")

    charts: dict[str, bytes] = {}
    ts, equity, dd = downsample(run.ts, run.equity, run.drawdown_pct())
    fig = Figure(figsize=(WIDTH, HEIGHT))
    ax = fig.subplots()
    ax.plot(times(ts), equity, color="#1f6feb", linewidth=1.2, label="equity")
    bench = run.benchmark()
    if bench is not None:
        bts, b = downsample(run.ts, bench)
        ax.plot(times(bts), b, color="#9a6700", linewidth=1.0, label="buy and hold")
    ax.set_title(f"{run.run_id}: equity")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    charts["equity.png"] = png(fig)

    fig = Figure(figsize=(WIDTH, HEIGHT * 0.7))
    ax = fig.subplots()
    ax.fill_between(times(ts), dd, 0.0, color="#cf222e", alpha=0.25, linewidth=0)
    ax.plot(times(ts), dd, color="#cf222e", linewidth=1.0)
    ax.set_title(f"{run.run_id}: drawdown (%)")
    ax.grid(alpha=0.3)
    charts["drawdown.png"] = png(fig)

    for symbol, frame in run.bars.items():
        pts, close = downsample(frame.ts, np.asarray(frame.close, dtype=np.float64))
        fig = Figure(figsize=(WIDTH, HEIGHT))
        ax = fig.subplots()
        ax.plot(times(pts), close, color="#57606a", linewidth=1.0, label=f"{symbol} close")
        mine = [t for t in run.trades if t.symbol == symbol]
        if mine:
            entry = np.array([np.datetime64(t.entry_ts[:19]) for t in mine], dtype="datetime64[ns]")
            exit_ = np.array([np.datetime64(t.exit_ts[:19]) for t in mine], dtype="datetime64[ns]")
            ax.scatter(entry, [t.entry_price for t in mine], marker="^", color="#1a7f37", s=18, label="buy", zorder=3)
            ax.scatter(exit_, [t.exit_price for t in mine], marker="v", color="#cf222e", s=18, label="sell", zorder=3)
        ax.set_title(f"{symbol}: trades on price")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left")
        charts[f"price-{symbol}.png"] = png(fig)

    table = run.monthly_returns()
    if table:
        years = sorted(table)
        grid = np.full((len(years), 12), np.nan)
        for i, year in enumerate(years):
            for month, value in table[year].items():
                grid[i, month - 1] = value
        top = float(np.nanmax(np.abs(grid))) or 1.0
        fig = Figure(figsize=(WIDTH, 0.5 + 0.4 * len(years) + 0.8))
        ax = fig.subplots()
        ax.imshow(grid, cmap="RdYlGn", vmin=-top, vmax=top, aspect="auto")
        ax.set_xticks(range(12), MONTHS)
        ax.set_yticks(range(len(years)), [str(y) for y in years])
        for i in range(len(years)):
            for j in range(12):
                if np.isfinite(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:+.1f}", ha="center", va="center", fontsize=8)
        ax.set_title(f"{run.run_id}: monthly returns (%)")
        charts["monthly.png"] = png(fig)
    return charts
