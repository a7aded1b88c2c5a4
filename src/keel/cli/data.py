"""`keel data`: the research data store: import files, list datasets, resample, download from an exchange.

Datasets live under the data home (`--data-home`, else `<home>/data`): one Parquet file per source, symbol and
timeframe, with its manifest (`keel.data.store`). Every command says what it wrote; nothing is overwritten silently.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from keel.cli import _Typer, app
from keel.cli.options import ConfigOpt, JsonOpt, load_settings
from keel.cli.render import bar_progress, emit_json, err, out, qty
from keel.domain.errors import InputError

if TYPE_CHECKING:
    from keel.data.store import DataStore, Manifest, Timeframe

data_app = _Typer(
    help="Research data: import files, list datasets, resample, download from an exchange.", no_args_is_help=True
)
app.add_typer(data_app, name="data")

DataHomeOpt = Annotated[
    Path | None, typer.Option("--data-home", help="the data store's folder (default: <home>/data)", show_default=False)
]
ReplaceOpt = Annotated[
    bool, typer.Option("--replace", help="replace the stored dataset instead of merging into it (never implied)")
]


def _store(data_home: Path | None, config: Path | None) -> DataStore:
    from keel.data.store import DataStore

    if data_home is None:
        data_home = load_settings(config).home / "data"
    return DataStore(data_home)


def _timeframe(text: str | None, option: str) -> Timeframe | None:
    from keel.data.store import Timeframe

    if text is None:
        return None
    try:
        return Timeframe.parse(text)
    except InputError as exc:
        raise InputError(f"{option}: {exc.message}", hint=exc.hint) from None


def _instant(text: str | None, option: str) -> int | None:
    """An ISO 8601 date or date and time (no zone: UTC) as int64 ns."""
    from keel.data.frame import datetime_to_ns

    if text is None:
        return None
    value = text.strip()
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InputError(
            f"{option} {text!r} is not a date", hint="write it as ISO 8601: 2024-01-31 or 2024-01-31T09:30:00Z (UTC)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return datetime_to_ns(dt)


def _when(ns: int) -> str:
    from keel.data.frame import ns_to_datetime

    return ns_to_datetime(ns).strftime("%Y-%m-%d %H:%M")


def _bars(n: int) -> str:
    return f"{qty(n)} bar{'' if n == 1 else 's'}"


def _described(m: Manifest) -> str:
    gaps = f"{m.gap_count} gap{'s' if m.gap_count != 1 else ''}"
    if m.gap_count:
        gaps += f" ({_bars(m.missing_bars)} missing)"
    return f"{_bars(m.rows)} {_when(m.first_ns)} to {_when(m.last_ns)} UTC, {gaps}"


# ---------------------------------------------------------------------------------------------------------------


@data_app.command("import")
def import_cmd(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="CSV (.csv, .csv.gz) or Parquet files, any layout `keel backtest` reads", show_default=False
        ),
    ],
    source: Annotated[str, typer.Option(help="where the bars came from: a name (e.g. the exchange's id)")] = "files",
    symbol: Annotated[str | None, typer.Option(help="the symbol (default: the file name), with one file only")] = None,
    timeframe: Annotated[
        str | None, typer.Option(help="the bar length, e.g. 1m, 1h, 1d (default: inferred from the bars' spacing)")
    ] = None,
    date_format: Annotated[
        str | None, typer.Option(help="strptime format of text timestamps that are not ISO 8601, e.g. '%d/%m/%Y'")
    ] = None,
    timestamp_column: Annotated[
        str | None, typer.Option(help="the timestamp column, when the header is unclear")
    ] = None,
    replace: ReplaceOpt = False,
    data_home: DataHomeOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Validate files (the backtests' checks: time order, duplicates, OHLC consistency, the timeframe's grid) and
    store each as a dataset, merged with the bars already stored; gaps are reported. Every file is checked before
    any is written."""
    from keel.data.store import import_frame, load_file, prepare_import

    if symbol is not None and len(files) != 1:
        raise InputError(
            f"--symbol names the symbol of one file, but {len(files)} files were given",
            hint="import them one at a time",
        )
    tf = _timeframe(timeframe, "--timeframe")
    store = _store(data_home, config)
    # Every file is read and checked first: a bad third file must not leave the first two imported.
    frames = [load_file(p, symbol=symbol, timestamp_column=timestamp_column, date_format=date_format) for p in files]
    keys = [prepare_import(frame, source=source, timeframe=tf) for frame in frames]
    results = [
        import_frame(store, key, frame, detail=str(path), replace_existing=replace)
        for path, frame, key in zip(files, frames, keys, strict=True)
    ]
    if as_json:
        emit_json({"data_home": str(store.home), "imported": [w.as_dict() for w in results]})
        return
    for path, w in zip(files, results, strict=True):
        verb = "replaced" if w.replaced else "imported"
        tail = f", {qty(w.already_stored)} already stored" if w.already_stored else ""
        out.print(
            Text(f"{verb} {path} as {w.manifest.key}: {_bars(w.added)} added{tail}; now {_described(w.manifest)}"),
            soft_wrap=True,
        )
        for note in w.notes:
            out.print(Text(f"  note: {note}"), soft_wrap=True)
        for gap in w.manifest.gaps[:5]:
            out.print(Text(f"  gap: {_bars(gap.missing)} missing from {_when(gap.first_ns)} to {_when(gap.last_ns)}"))
        if w.manifest.gap_count > 5:
            out.print(Text(f"  ... {w.manifest.gap_count - 5} more gaps: `keel data list --json` lists them"))
    out.print(Text(f"data home: {store.home}", style="dim"), soft_wrap=True)


@data_app.command("list")
def list_cmd(
    source: Annotated[str | None, typer.Option(help="only this source")] = None,
    symbol: Annotated[str | None, typer.Option(help="only this symbol")] = None,
    data_home: DataHomeOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """The stored datasets: source, symbol, timeframe, bars, first and last bar (UTC), gaps."""
    store = _store(data_home, config)
    manifests, problems = store.scan()
    shown = [m for m in manifests if (source is None or m.source == source) and (symbol is None or m.symbol == symbol)]
    if as_json:
        emit_json({"data_home": str(store.home), "datasets": [m.as_dict() for m in shown], "problems": problems})
    elif not shown:
        what = "no datasets" + (" match" if manifests else "")
        out.print(
            Text(f"{what} in {store.home}; add some with `keel data import` or `keel data download`"), soft_wrap=True
        )
    else:
        t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
        for name in ("source", "symbol", "tf", "bars", "first (UTC)", "last (UTC)", "gaps", "from"):
            t.add_column(name, justify="right" if name in ("bars", "gaps") else "left", no_wrap=True)
        for m in shown:
            t.add_row(
                m.source, m.symbol, m.timeframe, qty(m.rows), _when(m.first_ns), _when(m.last_ns),
                Text(str(m.gap_count), style="yellow" if m.gap_count else ""), _origin(m),
            )  # fmt: skip
        out.print(t)
        out.print(Text(f"data home: {store.home}", style="dim"), soft_wrap=True)
    for problem in problems:
        err.print(Text(f"problem: {problem}"), soft_wrap=True)
    if problems:
        raise typer.Exit(1)


@data_app.command("resample")
def resample_cmd(
    symbol: Annotated[str, typer.Option(help="the dataset's symbol", show_default=False)],
    to: Annotated[
        list[str], typer.Option("--to", help="the target timeframe, e.g. 5m, 1h, 1d (repeatable)", show_default=False)
    ],
    source: Annotated[str, typer.Option(help="the dataset's source")] = "files",
    from_: Annotated[
        str | None,
        typer.Option("--from", help="the timeframe to resample from (default: the finest one stored that fits)"),
    ] = None,
    drop_incomplete: Annotated[
        bool, typer.Option("--drop-incomplete", help="leave out bins with missing source bars (default: kept, listed)")
    ] = False,
    replace: ReplaceOpt = False,
    data_home: DataHomeOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Resample a stored dataset into longer bars: first open, highest high, lowest low, last close, summed volume,
    bins aligned to UTC boundaries and labelled by their open time. A last bin the data ends inside has not closed
    and is dropped, so no bar holds data from after its close."""
    from keel.data.resample import resample_dataset
    from keel.data.store import DatasetKey

    targets = [_timeframe(t, "--to") for t in to]
    store = _store(data_home, config)
    source_tf = _timeframe(from_, "--from") if from_ is not None else _finest(store, source, symbol, targets)
    key = DatasetKey(source, symbol, source_tf)
    done = []
    for target in targets:
        result, written = resample_dataset(
            store, key, target, drop_incomplete=drop_incomplete, replace_existing=replace
        )
        done.append((target, result, written))
    if as_json:
        emit_json(
            {
                "data_home": str(store.home),
                "from": str(key),
                "resampled": [
                    {
                        **w.as_dict(),
                        "forming_bars_dropped": r.forming_bars,
                        "incomplete_bins": [_iso(x) for x in r.incomplete],
                        "incomplete_dropped": r.dropped_incomplete,
                    }
                    for _, r, w in done
                ],
            }
        )
        return
    for target, r, w in done:
        out.print(Text(f"resampled {key} into {w.manifest.key}: {_described(w.manifest)}"), soft_wrap=True)
        if r.forming_bars:
            out.print(Text(f"  the last {target} bin had not closed ({r.forming_bars} {key.timeframe} bars): left out"))
        if r.incomplete:
            what = "left out" if r.dropped_incomplete else "kept (--drop-incomplete leaves them out)"
            first = ", ".join(_when(x) for x in r.incomplete[:3]) + (", ..." if len(r.incomplete) > 3 else "")
            bins = "1 bin misses" if len(r.incomplete) == 1 else f"{len(r.incomplete)} bins miss"
            out.print(Text(f"  {bins} source bars, {what}: {first}"), soft_wrap=True)


def _finest(store: DataStore, source: str, symbol: str, targets: list[Timeframe]) -> Timeframe:
    """The finest stored timeframe of the dataset that every target is a longer whole multiple of, not itself
    resampled when another fits (a resampled dataset is only as good as its source)."""
    from keel.data.store import Timeframe

    stored = [m for m in store.scan()[0] if m.source == source and m.symbol == symbol]
    fits = [
        m
        for m in stored
        if all(t.seconds > Timeframe.parse(m.timeframe).seconds and t.seconds % Timeframe.parse(m.timeframe).seconds == 0
               for t in targets)
    ]  # fmt: skip
    if not fits:
        have = ", ".join(m.timeframe for m in stored) or "none"
        raise InputError(
            f"no stored {source}/{symbol} dataset to resample into {', '.join(str(t) for t in targets)} "
            f"(timeframes stored: {have})",
            hint="import or download a shorter timeframe first (see `keel data list`), or name one with --from",
        )
    fits.sort(key=lambda m: (m.derived_from is not None, Timeframe.parse(m.timeframe).seconds))
    return Timeframe.parse(fits[0].timeframe)


@data_app.command("download")
def download_cmd(
    exchange: Annotated[str, typer.Option(help="a ccxt exchange id, e.g. binance, kraken", show_default=False)],
    symbol: Annotated[
        str, typer.Option(help="the market, e.g. BTC/USDT (or the exchange's id, BTCUSDT)", show_default=False)
    ],
    timeframe: Annotated[str, typer.Option(help="the bar length, e.g. 1m, 1h, 1d")] = "1m",
    since: Annotated[
        str | None,
        typer.Option(help="the first bar, ISO 8601 in UTC, e.g. 2024-01-01 (default: after the last stored)"),
    ] = None,
    until: Annotated[str | None, typer.Option(help="stop before this time, ISO 8601 in UTC (default: now)")] = None,
    api_url: Annotated[
        str | None, typer.Option(help="the exchange's API at this base URL instead (e.g. `keel venue local`'s)")
    ] = None,
    page_size: Annotated[int, typer.Option(min=1, max=10_000, help="bars asked for per request")] = 1000,
    retries: Annotated[int, typer.Option(min=0, max=20, help="tries again after a rate limit or a timeout")] = 5,
    data_home: DataHomeOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Download OHLCV bars through ccxt into the store (under the exchange's id), page by page within the exchange's
    rate limit; only bars the store lacks are fetched, closed bars only, gaps reported. Ctrl-C keeps what arrived: the
    same command resumes."""
    from keel.data.download import download, open_exchange

    tf = _timeframe(timeframe, "--timeframe")
    since_ns, until_ns = _instant(since, "--since"), _instant(until, "--until")
    if since_ns is not None and until_ns is not None and since_ns >= until_ns:
        raise InputError(f"--since {since} is not before --until {until}")
    store = _store(data_home, config)
    ex = open_exchange(exchange, api_url=api_url)
    with bar_progress(quiet=as_json) as progress:
        task = progress.add_task(f"{ex.id} {symbol} {tf}", total=None)

        def on_page(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = download(
            store, ex, symbol, tf, since_ns=since_ns, until_ns=until_ns, page_limit=page_size, max_retries=retries,
            progress=on_page,
        )  # fmt: skip
    if as_json:
        emit_json({"data_home": str(store.home), **result.as_dict()})
        return
    m = result.written.manifest if result.written else store.manifest(result.key)
    requests = f"{result.pages} request{'' if result.pages == 1 else 's'}"
    fetched = f"{qty(result.fetched)} new bar{'' if result.fetched == 1 else 's'} in {requests}"
    waits = f", {result.retries} retried ({result.rate_limited} rate-limited)" if result.retries else ""
    out.print(Text(f"downloaded {result.key}: {fetched}{waits}"), soft_wrap=True)
    if result.first_available_ns is not None:
        out.print(Text(f"  the exchange has no bars before {_when(result.first_available_ns)} UTC"), soft_wrap=True)
    if result.forming_dropped:
        out.print(Text("  the last bar is still forming: not stored (the next download fetches it closed)"))
    for gap in result.gaps[:5]:
        out.print(Text(f"  gap: {_bars(gap.missing)} missing from {_when(gap.first_ns)} to {_when(gap.last_ns)}"))
    if len(result.gaps) > 5:
        out.print(Text(f"  ... {len(result.gaps) - 5} more gaps: `keel data list --json` lists them"))
    if m is not None:
        out.print(Text(f"now {_described(m)}"), soft_wrap=True)
    else:
        out.print(Text("nothing stored: the exchange has no bars in that range"), soft_wrap=True)
    out.print(Text(f"data home: {store.home}", style="dim"), soft_wrap=True)


def _origin(m: Manifest) -> str:
    if m.derived_from:
        return f"from {m.derived_from.get('timeframe', '?')}"
    return str(m.history[-1].get("action", "")) if m.history else ""


def _iso(ns: int) -> str:
    from keel.data.frame import ns_to_datetime

    return ns_to_datetime(ns).isoformat().replace("+00:00", "Z")
