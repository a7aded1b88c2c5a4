"""The HTML report: one self-contained file (no CDN, no network, no external file), readable offline.

Its tables (scorecard, monthly returns, blocked reasons, notes) are plain HTML, so the page says everything even
without a script; its charts (equity with the buy-and-hold curve, drawdown, trades on price) are SVG drawn by a small
inline script from data embedded in the page, with the values under the pointer shown on hover and the benchmark
toggled on and off. Once every chart is drawn the script sets `data-charts-drawn` on <body> (a headless browser
checks it). Long series are thinned to `CHART_POINTS` points that keep each stretch's extremes.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

import numpy as np

from keel import charts
from keel.research.report_data import RunData, downsample
from keel.research.report_table import conventions, scorecard_rows, side_by_side

GENERATOR = "keel report"
#: trade markers drawn per symbol at most (the trades table in trades.csv has them all)
MAX_MARKERS = 2_000
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def render_report(run: RunData) -> str:
    """The report of one run, as the text of an HTML page."""
    s = run.summary
    data = {"charts": _charts(run)}
    params = ", ".join(f"{k}={v}" for k, v in s.params.items())
    title = f"Keel report — {s.run_id}"
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<p class=sub>{_e(s.mode)} · {_e(s.strategy)}({_e(params)}) · {_e(', '.join(s.symbols))} · "
        f"{s.bars:,} bars · {_e(s.start or '-')} → {_e(s.end or '-')}</p>",
        _headline(run),
        "<section><h2>Equity</h2>"
        + ("<label class=toggle><input type=checkbox id=bench checked> buy and hold</label>" if run.bars else "")
        + "<div class=chart id=chart-equity data-kind=line></div></section>",
        "<section><h2>Drawdown</h2><div class=chart id=chart-drawdown data-kind=area></div></section>",
    ]
    if run.bars:
        body.append("<section><h2>Trades on price</h2>")
        for symbol in run.bars:
            body.append(f'<h3>{_e(symbol)}</h3><div class=chart id="chart-price-{_e(symbol)}" data-kind=price></div>')
        body.append("</section>")
    body += [
        f"<section><h2>Scorecard</h2><p class=sub>{_e(conventions(run.scorecard))}</p>{_scorecard(run)}</section>",
        f"<section><h2>Monthly returns</h2>{_monthly(run.monthly_returns())}</section>",
        f"<section><h2>Blocked reasons</h2>{_blocked(s.blocked_reasons, s.intents_by_state)}</section>",
    ]
    notes = [*s.notes, *run.notes]
    if notes:
        body.append("<section><h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul></section>")
    return _page(title, "\n".join(body), data)


def render_comparison(runs: Sequence[RunData]) -> str:
    """Several runs side by side: their equity curves on one chart (each from its own initial cash, in percent) and
    their scorecards in one table."""
    names = [r.run_id for r in runs]
    series = []
    for i, r in enumerate(runs):
        base = r.summary.initial_cash or 1.0
        ts, eq = downsample(r.ts, r.equity)
        series.append({"name": r.run_id, "x": _ms(ts), "y": _floats((eq / base - 1.0) * 100.0), "color": _color(i)})
    data = {"charts": [{"id": "chart-compare", "series": series, "unit": "%", "digits": 2}]}
    rows = side_by_side([r.scorecard for r in runs])
    head = "<tr><th>metric</th>" + "".join(f"<th>{_e(n)}</th>" for n in names) + "</tr>"
    lines = []
    for k, row in enumerate(rows[0]):
        cells = "".join(f"<td class=num>{_e(rows[j][k].text)}</td>" for j in range(len(runs)))
        lines.append(f'<tr><td title="{_e(row.meaning)}">{_e(row.label)}</td>{cells}</tr>')
    body = (
        f"<h1>Keel comparison — {len(runs)} runs</h1>"
        "<section><h2>Return</h2><div class=chart id=chart-compare data-kind=line></div></section>"
        f"<section><h2>Scorecards</h2><table class=card>{head}{''.join(lines)}</table></section>"
    )
    return _page("Keel comparison", body, data, generator="keel compare")


def _charts(run: RunData) -> list[dict]:
    ts, equity, dd = downsample(run.ts, run.equity, run.drawdown_pct())
    series = [{"name": "equity", "x": _ms(ts), "y": _floats(equity), "color": "#1f6feb"}]
    bench = run.benchmark()
    if bench is not None:
        bts, b = downsample(run.ts, bench)
        series.append({"name": "buy and hold", "x": _ms(bts), "y": _floats(b), "color": "#9a6700", "toggle": "bench"})
    charts = [
        {"id": "chart-equity", "series": series, "unit": "", "digits": 2},
        {
            "id": "chart-drawdown",
            "series": [{"name": "drawdown", "x": _ms(ts), "y": _floats(dd), "color": "#cf222e", "fill": True}],
            "unit": "%",
            "digits": 2,
        },
    ]
    for symbol, frame in run.bars.items():
        pts, close = downsample(frame.ts, np.asarray(frame.close, dtype=np.float64))
        mine = [t for t in run.trades if t.symbol == symbol][:MAX_MARKERS]
        markers = []
        for t in mine:
            markers.append({"x": _iso_ms(t.entry_ts), "y": t.entry_price, "kind": "buy", "label": "buy"})
            markers.append(
                {"x": _iso_ms(t.exit_ts), "y": t.exit_price, "kind": "sell", "label": f"sell, PnL {t.pnl:,.2f}"}
            )
        charts.append(
            {
                "id": f"chart-price-{symbol}",
                "series": [{"name": f"{symbol} close", "x": _ms(pts), "y": _floats(close), "color": "#57606a"}],
                "markers": markers,
                "unit": "",
                "digits": 4,
            }
        )
    return charts


def _headline(run: RunData) -> str:
    s, c = run.summary, run.scorecard
    items = [
        ("final equity", f"{s.final_equity:,.2f}"),
        ("PnL", f"{s.pnl:+,.2f}"),
        ("total return", f"{c.total_return_pct:+.2f} %"),
        ("max drawdown", f"{c.max_drawdown_pct:.2f} %"),
        ("Sharpe", "n/a" if c.sharpe is None else f"{c.sharpe:.2f}"),
        ("trades", f"{c.trades:,}"),
    ]
    return "<div class=tiles>" + "".join(f"<div><b>{_e(v)}</b><span>{_e(k)}</span></div>" for k, v in items) + "</div>"


def _scorecard(run: RunData) -> str:
    rows = "".join(
        f'<tr data-key="{r.key}"><td>{_e(r.label)}</td><td class=num>{_e(r.text)}</td>'
        f"<td class=why>{_e(r.meaning)}</td></tr>"
        for r in scorecard_rows(run.scorecard)
    )
    return f"<table class=card><tr><th>metric</th><th>value</th><th>what it is</th></tr>{rows}</table>"


def _monthly(table: dict[int, dict[int, float]]) -> str:
    if not table:
        return "<p>no full month of equity</p>"
    top = max((abs(v) for months in table.values() for v in months.values()), default=0.0) or 1.0
    head = "<tr><th>year</th>" + "".join(f"<th>{m}</th>" for m in MONTHS) + "<th>year</th></tr>"
    rows = []
    for year in sorted(table):
        months = table[year]
        cells = []
        for m in range(1, 13):
            v = months.get(m)
            if v is None:
                cells.append("<td></td>")
                continue
            a = min(abs(v) / top, 1.0) * 0.85 + 0.1
            rgb = "26,127,55" if v >= 0 else "207,34,46"
            cells.append(f'<td class=num style="background:rgba({rgb},{a:.2f})">{v:+.2f}</td>')
        compounded = (np.prod([1.0 + v / 100.0 for v in months.values()]) - 1.0) * 100.0
        rows.append(f"<tr><th>{year}</th>{''.join(cells)}<td class=num><b>{compounded:+.2f}</b></td></tr>")
    return f"<table class=heat>{head}{''.join(rows)}</table><p class=sub>percent, calendar months in UTC</p>"


def _blocked(reasons: dict[str, int], by_state: dict[str, int]) -> str:
    if not reasons:
        return "<p>no intent was blocked or rejected</p>"
    top = max(reasons.values())
    rows = "".join(
        f"<tr><td><code>{_e(code)}</code></td><td class=num>{n:,}</td>"
        f'<td class=barcell><div class=bar style="width:{n / top * 100:.1f}%"></div></td></tr>'
        for code, n in reasons.items()
    )
    total = sum(by_state.values())
    return (
        f"<table class=card><tr><th>reason code</th><th>intents</th><th></th></tr>{rows}</table>"
        f"<p class=sub>the last reason of each blocked or rejected intent (the ten most frequent), of {total:,} "
        "intents in all; `keel reasons` explains every code</p>"
    )


def _page(title: str, body: str, data: dict, *, generator: str = GENERATOR) -> str:
    payload = json.dumps(data, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f'<meta name=generator content="{_e(generator)}">'
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n"
        f'<script type="application/json" id=keel-data>{payload}</script>\n'
        f"<script>{charts.script()}</script>\n<script>{_JS}</script>\n</body></html>\n"
    )


def _ms(ts_ns: np.ndarray) -> list[int]:
    return (np.asarray(ts_ns, dtype=np.int64) // 1_000_000).tolist()


def _iso_ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def _floats(values: np.ndarray) -> list[float | None]:
    v = np.asarray(values, dtype=np.float64)
    return [float(x) if np.isfinite(x) else None for x in np.round(v, 6).tolist()]


def _color(i: int) -> str:
    return ("#1f6feb", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#57606a", "#bf3989", "#0a3069")[i % 8]


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1f2328;margin:24px auto;max-width:1100px;
padding:0 16px}h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
h3{font-size:14px;margin:12px 0 4px}.sub{color:#57606a;margin:2px 0 8px}.tiles{display:flex;gap:12px;flex-wrap:wrap;
margin:16px 0}.tiles div{border:1px solid #d0d7de;border-radius:6px;padding:8px 14px;min-width:120px}.tiles b{display:block;
font-size:18px}.tiles span{color:#57606a;font-size:12px}.chart{position:relative;width:100%;min-height:240px}
.chart svg{display:block;width:100%}.tip{position:absolute;pointer-events:none;background:#fff;border:1px solid #d0d7de;
border-radius:4px;padding:3px 6px;font-size:12px;white-space:nowrap;display:none;box-shadow:0 1px 3px #0002}
table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #eaeef2;text-align:left}.num{text-align:right;
font-variant-numeric:tabular-nums}.why{color:#57606a;font-size:12px}.heat td{min-width:52px;font-size:12px}
.barcell{width:260px}.bar{height:10px;background:#cf222e;border-radius:2px}.toggle{font-size:12px;color:#57606a}
"""

_JS = r"""
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("keel-data").textContent);
  function visible(s) {
    if (!s.toggle) return true;
    var box = document.getElementById(s.toggle);
    return !box || box.checked;
  }
  function draw(spec) {
    var host = document.getElementById(spec.id);
    if (!host) return false;
    KeelChart.draw(host, {series: spec.series.filter(visible), markers: spec.markers, unit: spec.unit,
      digits: spec.digits});
    return true;
  }
  var drawn = 0;
  D.charts.forEach(function (spec) { if (draw(spec)) drawn++; });
  var bench = document.getElementById("bench");
  if (bench) bench.addEventListener("change", function () { draw(D.charts[0]); });
  window.addEventListener("resize", function () { D.charts.forEach(draw); });
  document.body.setAttribute("data-charts-expected", String(D.charts.length));
  document.body.setAttribute("data-charts-drawn", String(drawn));
})();
"""
