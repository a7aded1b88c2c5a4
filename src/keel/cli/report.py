"""`keel report RUN` and `keel compare RUN RUN…`: a run's scorecard as a table, its HTML report and PNG charts.

`report` reads a complete run folder (as `keel backtest` or `keel demo` left it), writes `report/report.html` (one
self-contained page, offline) and the PNG charts beside it into the run folder, and prints the scorecard. The run
folder keeps no copy of the bars: `--data` gives the run's files again for the price panel and the buy-and-hold
curve (refused unless they are exactly what the run read). `compare` prints several runs' scorecards side by side,
and with `--html FILE` writes them as one page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from keel.cli import app
from keel.cli.options import JsonOpt
from keel.cli.render import emit_json, out
from keel.domain.errors import InputError

RunArg = Annotated[Path, typer.Argument(help="a run folder (var/runs/<run_id>, or the --out of the run)")]
PeriodsOpt = Annotated[
    float | None,
    typer.Option(
        "--periods-per-year",
        help="bars per year to annualise with (default: inferred from the bar spacing; 252 for stock days)",
    ),
]
RiskFreeOpt = Annotated[
    float | None,
    typer.Option("--risk-free-rate", help="annual risk-free rate as a fraction, e.g. 0.04 for 4 % (default: 0)"),
]


def _check_conventions(periods_per_year: float | None, risk_free_rate: float | None) -> None:
    problems = []
    if periods_per_year is not None and not periods_per_year > 0:
        problems.append(f"--periods-per-year: must be a positive number of bars, got {periods_per_year:g}")
    if risk_free_rate is not None and not -1.0 < risk_free_rate < 1.0:
        problems.append(
            f"--risk-free-rate: a fraction of one, e.g. 0.04 for 4 %, must be within (-1, 1), got {risk_free_rate:g}"
        )
    if len(problems) == 1:
        raise InputError(problems[0])
    if problems:
        raise InputError(f"{len(problems)} problems with the options:" + "".join(f"\n  - {p}" for p in problems))


@app.command()
def report(
    run: RunArg,
    data: Annotated[
        list[Path] | None, typer.Option("--data", help="the run's OHLCV file(s), for the price panel")
    ] = None,
    symbol: Annotated[
        list[str] | None, typer.Option("--symbol", help="symbol of each --data file, in order, as the run named it")
    ] = None,
    timestamp_column: Annotated[str | None, typer.Option("--timestamp-column", help="as the run was given it")] = None,
    date_format: Annotated[str | None, typer.Option("--date-format", help="as the run was given it")] = None,
    periods_per_year: PeriodsOpt = None,
    risk_free_rate: RiskFreeOpt = None,
    charts: Annotated[bool, typer.Option("--charts/--no-charts", help="also write the PNG charts")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Write a run's HTML report and PNG charts into its folder, and print its scorecard."""
    _check_conventions(periods_per_year, risk_free_rate)
    if symbol and not data:
        raise InputError("--symbol names the --data files: give them with --data")

    from keel.research.report_data import load_run
    from keel.research.report_files import HTML, write_report
    from keel.research.report_html import render_report

    frames = []
    if data:
        from keel.data.files import load_many

        frames = load_many(data, symbols=symbol or None, timestamp_column=timestamp_column, date_format=date_format)
    loaded = load_run(run, data=frames, periods_per_year=periods_per_year, risk_free_rate=risk_free_rate)
    files = {HTML: render_report(loaded).encode("utf-8")}
    if charts:
        from keel.research.charts import render_charts

        files.update(render_charts(loaded))
    folder = write_report(run, files)
    if as_json:
        emit_json(
            {
                "run_id": loaded.run_id,
                "report": str(folder / HTML),
                "files": [str(folder / n) for n in files],
                "scorecard": loaded.scorecard.model_dump(mode="json"),
                "notes": list(loaded.notes),
            }
        )
        return
    _print_scorecard(loaded)
    out.print(Text(f"report: {folder / HTML}"))
    if charts:
        out.print(Text("charts: " + ", ".join(n for n in files if n != HTML)))
    for note in loaded.notes:
        out.print(Text(f"note: {note}"))


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="two or more run folders")],
    html: Annotated[Path | None, typer.Option("--html", help="also write the comparison as one HTML page")] = None,
    periods_per_year: PeriodsOpt = None,
    risk_free_rate: RiskFreeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Put the scorecards of several runs side by side."""
    _check_conventions(periods_per_year, risk_free_rate)
    if len(runs) < 2:
        raise InputError("compare needs at least two run folders", hint="use `keel report RUN` for one run")
    resolved = [r.resolve() for r in runs]
    twice = sorted({str(r) for r in runs if resolved.count(r.resolve()) > 1})
    if twice:
        raise InputError(f"the same run folder is given twice: {', '.join(twice)}")

    from keel.research.report_data import load_run
    from keel.research.report_files import is_keel_page, write_atomic
    from keel.research.report_html import render_comparison
    from keel.research.report_table import side_by_side

    loaded = [load_run(r, periods_per_year=periods_per_year, risk_free_rate=risk_free_rate) for r in runs]
    if html is not None:
        if html.is_dir():
            raise InputError(f"{html}: --html names a folder; give a file name, e.g. {html / 'compare.html'}")
        if html.exists() and not is_keel_page(html, "keel compare"):
            raise InputError(
                f"{html}: exists and is not a comparison Keel wrote; nothing was written",
                hint="choose another --html file: Keel never writes over files it did not write",
            )
        if not html.parent.is_dir():
            raise InputError(f"{html}: its folder {html.parent} does not exist")
        write_atomic(html, render_comparison(loaded).encode("utf-8"))
    if as_json:
        data: dict[str, Any] = {"runs": [{"run_dir": str(r.folder), "run_id": r.run_id} for r in loaded]}
        for entry, r in zip(data["runs"], loaded, strict=True):
            entry["scorecard"] = r.scorecard.model_dump(mode="json")
        if html is not None:
            data["html"] = str(html)
        emit_json(data)
        return
    rows = side_by_side([r.scorecard for r in loaded])
    t = Table(title=f"{len(loaded)} runs side by side", title_justify="left")
    t.add_column("metric", style="bold")
    for r in loaded:
        params = ", ".join(f"{k}={v}" for k, v in r.summary.params.items())
        t.add_column(escape(f"{r.run_id}\n{r.summary.strategy}({params})"), justify="right")
    for k, row in enumerate(rows[0]):
        t.add_row(escape(row.label), *(escape(rows[j][k].text) for j in range(len(loaded))))
    out.print(t)
    for r in loaded:
        out.print(Text(f"{r.run_id}: {r.folder}"))
    if html is not None:
        out.print(Text(f"comparison: {html}"))


def _print_scorecard(run) -> None:
    from keel.research.report_table import conventions, scorecard_rows

    s = run.summary
    params = ", ".join(f"{k}={v}" for k, v in s.params.items())
    t = Table(
        title=escape(f"Scorecard of {s.run_id} — {s.strategy}({params}), {', '.join(s.symbols)}"),
        caption=escape(conventions(run.scorecard)),
        title_justify="left",
        caption_justify="left",
    )
    t.add_column("metric", style="bold")
    t.add_column("value", justify="right")
    t.add_column("what it is", style="dim")
    for row in scorecard_rows(run.scorecard):
        t.add_row(escape(row.label), escape(row.text), escape(row.meaning))
    out.print(t)
