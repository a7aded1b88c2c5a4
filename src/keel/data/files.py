"""Market data files (CSV, gzipped CSV, Parquet) into validated `OHLCV` frames, and back.

Files come from many exporters, so the reader accepts the layouts traders actually have:
- a header naming timestamp (or datetime/date/time/open_time, or an unnamed pandas index), open, high, low,
  close and, optionally, volume, in any case and order, extra columns ignored (Yahoo's "Adj Close", ...);
- separate date and time columns (MetaTrader, broker exports), angle-bracket headers (`<DATE>`, `<CLOSE>`);
- no header at all, when every cell of the first row is a number: timestamp, open, high, low, close[, volume]
  (ccxt `fetch_ohlcv` dumps, exchange exports) or the 12 columns of a Binance kline download;
- rows newest-first (many vendors), which are put oldest-first;
- timestamps as ISO 8601, dates, epoch s/ms/us/ns told apart by magnitude, or an explicit `date_format`.
Every problem is a `DataError` that names the file, the row (1 = first data row: after the header, or the
first line of a file without one), the column and the bad value. A pandas or pyarrow exception never reaches
the user. What the reader assumed or changed (no volume, tick volume used, rows reversed) is in `OHLCV.notes`.

Speed: a clean file costs one multi-threaded, typed parse; only a file pyarrow refuses is read again, as text,
to find the first bad cell (`readers`).

This module is the public entry (loading, writing) and puts a frame together; each step has its own module:
`readers` (CSV and Parquet into Arrow columns), `layout` (which column is which), `timestamps` (every timestamp
encoding to int64 ns), `date_and_time` (separate date and time columns), `cells` (numbers, and the first bad
cell), then `quality` validates the result.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from keel.data.cells import floats
from keel.data.date_and_time import date_and_time_to_ns
from keel.data.frame import OHLCV
from keel.data.layout import Layout
from keel.data.quality import COLUMNS, PRICES, validate_ohlcv
from keel.data.readers import read_csv, read_parquet
from keel.data.timestamps import check_date_format, timestamps_to_ns
from keel.domain.errors import DataError, InputError

__all__ = [
    "NOTE_NEWEST_FIRST",
    "NOTE_NO_VOLUME",
    "SUPPORTED_SUFFIXES",
    "load_many",
    "load_ohlcv",
    "write_csv",
    "write_parquet",
]

SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")

NOTE_NO_VOLUME = "no volume column: volume is 0 on every bar"
NOTE_NEWEST_FIRST = "rows were newest-first; sorted oldest-first"


# ---------------------------------------------------------------------------------------------------------------
# Loading


def load_ohlcv(
    path: str | os.PathLike[str],
    *,
    symbol: str | None = None,
    timestamp_column: str | None = None,
    date_format: str | None = None,
) -> OHLCV:
    """Read one symbol's bars from `.csv`, `.csv.gz`, `.parquet` or `.pq`, then `validate_ohlcv` them.

    Columns (any case, `<NAME>` same as `NAME`): a timestamp column named timestamp/datetime/open_time/date/time,
    or separate date and time columns, or an unnamed first column (pandas index export), or a parquet
    DatetimeIndex; open, high, low, close; volume if the file has it (without it `volume` is zeros and
    `has_volume` is False); others (e.g. "Adj Close") are ignored. A file whose first row is all numbers has no
    header: timestamp, open, high, low, close[, volume], or a 12-column Binance kline file.
    Timestamps: ISO 8601 strings with or without zone (none means UTC), dates, or epoch
    seconds/milliseconds/microseconds/nanoseconds, told apart by magnitude. Newest-first rows are reversed.

    `timestamp_column` names the timestamp column (case-insensitive) when the header does not say which it is.
    `date_format` (strptime directives, e.g. "%d/%m/%Y %H:%M") reads text timestamps that are not ISO 8601,
    such as day-first or month-first dates; with separate date and time columns it describes the date alone,
    or both cells joined by a space when it holds time directives. Without it, a date like 01/02/2024 is refused.
    `symbol` defaults to the file name without its suffix, upper-cased ("btc-usd.csv" -> "BTC-USD").
    Raises `DataError` for anything wrong, with row (1 = first data row) and column; `InputError` for a
    date format that is not one.
    """
    check_date_format(date_format)
    source = str(path)
    p = Path(path)
    suffix = _suffix(p)
    if suffix is None:
        raise DataError(
            source,
            f"unsupported file type '{''.join(p.suffixes) or p.name}'; supported: {', '.join(SUPPORTED_SUFFIXES)}",
        )
    if symbol is None:
        symbol = p.name[: -len(suffix)].upper()
    symbol = symbol.strip()
    if not symbol:
        raise DataError(source, "no symbol: pass one explicitly or give the file a name")
    if not p.exists():
        raise DataError(source, "file not found")
    if not p.is_file():
        raise DataError(source, "not a regular file")

    if suffix in (".parquet", ".pq"):
        columns, layout = read_parquet(p, source, timestamp_column)
    else:
        columns, layout = read_csv(p, source, timestamp_column)
    try:
        return _frame(symbol, source, columns, layout, date_format)
    finally:
        del columns
        # pyarrow's allocator keeps what a parse freed (the text cells: twice the bars' own size) for reuse that the
        # run, which allocates through numpy and Python, never makes: hand it back.
        pa.default_memory_pool().release_unused()


def load_many(
    paths: Iterable[str | os.PathLike[str]],
    *,
    symbols: Sequence[str] | None = None,
    timestamp_column: str | None = None,
    date_format: str | None = None,
) -> list[OHLCV]:
    """Load several files, one symbol each; two files naming the same symbol is an error, not a silent overwrite.

    `symbols` pairs with `paths` in order (a count mismatch is an `InputError`); without it each symbol comes
    from its file name. `timestamp_column` and `date_format` apply to every file.
    """
    paths = list(paths)
    names = _paired_symbols(paths, symbols)
    frames: list[OHLCV] = []
    seen: dict[str, str] = {}
    for path, name in zip(paths, names, strict=True):
        frame = load_ohlcv(path, symbol=name, timestamp_column=timestamp_column, date_format=date_format)
        if frame.symbol in seen:
            raise DataError(
                frame.source,
                f"symbol '{frame.symbol}' is already loaded from {seen[frame.symbol]}; "
                "each symbol must come from exactly one file",
            )
        seen[frame.symbol] = frame.source
        frames.append(frame)
    return frames


def _paired_symbols(paths: list, symbols: Sequence[str] | None) -> list[str | None]:
    """One symbol (or None: from the file name) per path; a miscount would pair every file with the wrong name."""
    files = f"{len(paths)} data file{'' if len(paths) == 1 else 's'}"
    if symbols is None:
        return [None] * len(paths)
    if isinstance(symbols, str):
        raise InputError(f"symbols must list one symbol per data file ({files}), not be the single string {symbols!r}")
    names = list(symbols)
    if len(names) != len(paths):
        raise InputError(
            f"{files} but {len(names)} symbol{'' if len(names) == 1 else 's'}; "
            "give one symbol per data file, in the same order"
        )
    return names


def _suffix(p: Path) -> str | None:
    name = p.name.lower()
    # Longest first, so "x.csv.gz" is gzipped CSV and not an unknown ".gz".
    for suffix in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix
    return None


def _readonly(arr: np.ndarray) -> np.ndarray:
    """Validated columns are frozen: a later in-place edit would bypass validation."""
    arr = np.ascontiguousarray(arr)
    arr.flags.writeable = False
    return arr


def _frame(
    symbol: str, source: str, columns: dict[str, pa.ChunkedArray], layout: Layout, date_format: str | None
) -> OHLCV:
    """Convert the columns, choose the volume, put a newest-first file in time order, then validate.

    Conversion runs in file order, so a bad cell is reported at its row; validation is told when the rows were
    reversed, so it too reports the file's row numbers.
    """
    header = dict(layout.header)
    ts = _bar_times(columns, layout, source, date_format)
    prices = [floats(columns[c], source, header[c]) for c in PRICES]
    volume, volume_name, has_volume, volume_notes = _volume(columns, header, source, len(ts))
    header["volume"] = volume_name
    notes = [*layout.notes, *volume_notes]
    arrays = [ts, *prices, volume]
    newest_first = _is_newest_first(ts)
    if newest_first:
        arrays = [a[::-1] for a in arrays]
        notes.append(NOTE_NEWEST_FIRST)
    frame = OHLCV(
        symbol,
        *(_readonly(a) for a in arrays),
        source=source,
        has_volume=has_volume,
        notes=tuple(notes),
    )
    validate_ohlcv(frame, column_names=header, newest_first=newest_first)
    return frame


def _bar_times(columns: dict[str, pa.ChunkedArray], layout: Layout, source: str, date_format: str | None) -> np.ndarray:
    name = layout.header["timestamp"]
    if "time" in columns:
        return date_and_time_to_ns(
            columns["timestamp"], columns["time"], source, name, layout.header["time"], date_format
        )
    return timestamps_to_ns(columns["timestamp"], source, name, date_format)


def _volume(
    columns: dict[str, pa.ChunkedArray], header: dict[str, str], source: str, n: int
) -> tuple[np.ndarray, str, bool, list[str]]:
    """The volume to use, the file's name for it, whether the file has any, and a note when it is not plain volume.

    MetaTrader writes real volume in <VOL> only for exchange-traded instruments and zeros otherwise; its tick
    count <TICKVOL> is then the only activity measure there is, so it is used, and the note says so.
    """
    volume = floats(columns["volume"], source, header["volume"]) if "volume" in columns else None
    if "tick_volume" in columns and (volume is None or (len(volume) > 0 and not volume.any())):
        tick_name = header["tick_volume"]
        why = f"'{header['volume']}' is 0 on every bar" if volume is not None else "the file has no other volume"
        tick = floats(columns["tick_volume"], source, tick_name)
        return tick, tick_name, True, [f"volume is tick volume from '{tick_name}' ({why})"]
    if volume is None:
        return np.zeros(n, dtype=np.float64), "volume", False, [NOTE_NO_VOLUME]
    return volume, header["volume"], True, []


def _is_newest_first(ts: np.ndarray) -> bool:
    """Strictly decreasing: the whole file is newest-first. Anything else out of order stays a validation error."""
    return len(ts) > 1 and ts[0] > ts[-1] and bool(np.all(ts[1:] < ts[:-1]))


# ---------------------------------------------------------------------------------------------------------------
# Writing


def write_csv(frame: OHLCV, path: str | os.PathLike[str]) -> Path:
    """Write the common export format: timestamp (ISO 8601 UTC, 'Z'), open, high, low, close, volume.

    Floats are written in their shortest round-trip form, so `load_ohlcv` reads back the exact same values.
    A path ending in `.gz` is gzipped (fast level). The frame is not validated, so tests can write deliberately bad files.
    """
    p = Path(path)
    table = pa.table(
        {
            "timestamp": _iso_utc(np.asarray(frame.ts, dtype=np.int64)),
            **_value_columns(frame),
        }
    )
    header = (",".join(COLUMNS) + "\n").encode()
    options = pcsv.WriteOptions(include_header=False, quoting_style="none")
    if p.name.lower().endswith(".gz"):
        # Level 1: these files are fixtures and benchmark inputs; level 6 is ~4x slower for ~25% less disk.
        with gzip.open(p, "wb", compresslevel=1) as out:
            out.write(header)
            pcsv.write_csv(table, out, write_options=options)
    else:
        with pa.output_stream(str(p), compression=None, buffer_size=1 << 20) as out:
            out.write(header)
            pcsv.write_csv(table, out, write_options=options)
    return p


def write_parquet(frame: OHLCV, path: str | os.PathLike[str]) -> Path:
    """Write the common export format as Parquet: timestamp as timestamp[ns, UTC], prices and volume as float64."""
    p = Path(path)
    table = pa.table(
        {
            "timestamp": pa.array(np.asarray(frame.ts, dtype=np.int64), type=pa.timestamp("ns", tz="UTC")),
            **_value_columns(frame),
        }
    )
    pq.write_table(table, str(p))
    return p


def _value_columns(frame: OHLCV) -> dict[str, pa.Array]:
    """Prices and volume as float64, in the canonical order, as both writers store them."""
    return {c: pa.array(np.asarray(getattr(frame, c), dtype=np.float64)) for c in COLUMNS[1:]}


def _iso_utc(ts: np.ndarray) -> pa.Array:
    """ISO 8601 UTC text at the coarsest unit that is still exact ("2024-01-01T00:00:00Z" for whole seconds)."""
    unit = "ns"
    for candidate, factor in (("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if not np.any(ts % factor):
            unit = candidate
            break
    # Formatting a zoned timestamp consults the time zone database per value (~20x slower): format naive, add "Z".
    text = pa.array(ts, type=pa.timestamp("ns")).cast(pa.timestamp(unit)).cast(pa.string())
    return pc.binary_join_element_wise(pc.replace_substring(text, " ", "T", max_replacements=1), "Z", "")
