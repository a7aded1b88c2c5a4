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

Speed: the fast path is pyarrow's multi-threaded CSV reader with the numeric columns typed up front, so a clean
file costs one parse. Only when pyarrow refuses a file is it read again as text, to find the first bad cell.
"""

from __future__ import annotations

import csv
import gzip
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from keel.data.frame import OHLCV
from keel.data.quality import COLUMNS, validate_ohlcv
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
_NOTE_SERVER_CLOCK = "times have no zone (MetaTrader-style exports use the trade server's clock); read as UTC"

_PRICES = ("open", "high", "low", "close")
_REQUIRED = ("timestamp", *_PRICES)
# Roles read as text: timestamps come in too many encodings for the CSV reader to type them.
_TEXT_ROLES = ("timestamp", "time")
# Timestamp column names, in order of preference when a file has several (e.g. "timestamp" and "date").
# "date" together with "time" means separate date and time-of-day columns.
_TIME_NAMES = ("timestamp", "datetime", "open_time", "open time", "date", "time")
# What exporters call a column that was the (unnamed) index: pandas to_csv, read_csv round trips, pyarrow.
_UNNAMED_FIRST = ("", "unnamed: 0")
_PANDAS_INDEX = "__index_level_0__"

# Files without a header, by column count: what each column is, and the note saying how the file was read.
_CCXT = ("timestamp", "open", "high", "low", "close", "volume")
_BINANCE_KLINE = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_asset_volume",
    "number_of_trades",
    "taker_buy_base_asset_volume",
    "taker_buy_quote_asset_volume",
    "ignore",
)
_HEADERLESS = {
    5: (_CCXT[:5], "no header row: columns read as timestamp, open, high, low, close"),
    6: (_CCXT, "no header row: columns read as timestamp, open, high, low, close, volume"),
    12: (_BINANCE_KLINE, "no header row: read as a Binance kline file (open_time is the timestamp)"),
}

_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
# A column that may hold volume under another name ("Vol", "Volume BTC", "quote_volume"), but not "volatility".
_VOLUME_LIKE = re.compile(r"volume|(^|[^a-z])vol([^a-z]|$)")
# NN/NN/YYYY (or with . or -): day-first or month-first cannot be told from the text.
_AMBIGUOUS_DATE = re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})(?![\d/.-])")
_CLOCK = re.compile(r"[ T](\d{1,2}):(\d{2})(:\d{2})?")
# 2024.01.31 or 2024/01/31 (MetaTrader, some vendors): unambiguous, rewritten to ISO before parsing.
_YEAR_FIRST = re.compile(r"\d{4}[./]\d{2}[./]\d{2}")
# strptime directives that read a time of day (or a zone): a date format holding one spans date and time.
_TIME_DIRECTIVE = re.compile(r"%[-#^0]?[HIklMSfpPTRXrcsz]")

_INT64_MAX = np.iinfo(np.int64).max
_NS_PER_DAY = 86_400 * 10**9
# Epoch integers: magnitude decides the unit. Below 1e11 is seconds (up to year 5138), then milliseconds,
# microseconds, nanoseconds. Today is ~1.7e9 s, ~1.7e12 ms, ~1.7e15 us, ~1.7e18 ns.
_EPOCH_BOUNDS = (1e11, 1e14, 1e17)
_EPOCH_UNITS = (("seconds", 10**9), ("milliseconds", 10**6), ("microseconds", 10**3), ("nanoseconds", 1))
_EPOCH_TEXT = re.compile(r"-?\d+(\.\d*)?")
_OUT_OF_RANGE = "timestamp {value} is outside the supported range (1677-09-22 to 2262-04-11)"
_TIME_HINT = (
    "expected ISO 8601 (e.g. 2024-01-31T09:30:00Z; no zone means UTC), a date, or epoch s/ms/us/ns; "
    "for other layouts pass a date format (--date-format, e.g. '%d/%m/%Y %H:%M')"
)


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each role's column sits in the file, what the file calls it, and what reading it assumed.

    Roles: timestamp, open, high, low, close, and when present volume, tick_volume (MetaTrader's <TICKVOL>)
    and time (a time-of-day column; "timestamp" is then the date column).
    """

    position: dict[str, int]
    header: dict[str, str]
    notes: tuple[str, ...] = ()


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
    _check_date_format(date_format)
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
        columns, layout = _read_parquet(p, source, timestamp_column)
    else:
        columns, layout = _read_csv(p, source, timestamp_column)
    return _frame(symbol, source, columns, layout, date_format)


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


def _check_date_format(date_format: str | None) -> None:
    """A date format is strptime directives; "DD/MM/YYYY" would match nothing, so say how to write it."""
    if date_format is None:
        return
    if not isinstance(date_format, str) or "%" not in date_format:
        raise InputError(
            f"date format {date_format!r} has no strptime directives; write it like '%d/%m/%Y' (day first), "
            "'%m/%d/%Y %H:%M' (month first, with a time) or '%Y%m%d'"
        )


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
    symbol: str, source: str, columns: dict[str, pa.ChunkedArray], layout: _Layout, date_format: str | None
) -> OHLCV:
    """Convert the columns, choose the volume, put a newest-first file in time order, then validate.

    Conversion runs in file order, so a bad cell is reported at its row; validation is told when the rows were
    reversed, so it too reports the file's row numbers.
    """
    header = dict(layout.header)
    ts = _bar_times(columns, layout, source, date_format)
    prices = [_floats(columns[c], source, header[c]) for c in _PRICES]
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


def _bar_times(
    columns: dict[str, pa.ChunkedArray], layout: _Layout, source: str, date_format: str | None
) -> np.ndarray:
    name = layout.header["timestamp"]
    if "time" in columns:
        return _date_and_time_to_ns(
            columns["timestamp"], columns["time"], source, name, layout.header["time"], date_format
        )
    return _timestamps(columns["timestamp"], source, name, date_format)


def _volume(
    columns: dict[str, pa.ChunkedArray], header: dict[str, str], source: str, n: int
) -> tuple[np.ndarray, str, bool, list[str]]:
    """The volume to use, the file's name for it, whether the file has any, and a note when it is not plain volume.

    MetaTrader writes real volume in <VOL> only for exchange-traded instruments and zeros otherwise; its tick
    count <TICKVOL> is then the only activity measure there is, so it is used, and the note says so.
    """
    volume = _floats(columns["volume"], source, header["volume"]) if "volume" in columns else None
    if "tick_volume" in columns and (volume is None or (len(volume) > 0 and not volume.any())):
        tick_name = header["tick_volume"]
        why = f"'{header['volume']}' is 0 on every bar" if volume is not None else "the file has no other volume"
        tick = _floats(columns["tick_volume"], source, tick_name)
        return tick, tick_name, True, [f"volume is tick volume from '{tick_name}' ({why})"]
    if volume is None:
        return np.zeros(n, dtype=np.float64), "volume", False, [NOTE_NO_VOLUME]
    return volume, header["volume"], True, []


def _is_newest_first(ts: np.ndarray) -> bool:
    """Strictly decreasing: the whole file is newest-first. Anything else out of order stays a validation error."""
    return len(ts) > 1 and ts[0] > ts[-1] and bool(np.all(ts[1:] < ts[:-1]))


# ---------------------------------------------------------------------------------------------------------------
# Column layout


def _normalize(name: str) -> str:
    """How a header name is compared: no BOM, no padding, no MetaTrader angle brackets, lower case."""
    n = name.replace("\ufeff", "").strip()
    if len(n) >= 2 and n[0] == "<" and n[-1] == ">":
        n = n[1:-1].strip()
    return n.lower()


def _listing(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names) or "none"


def _layout(
    source: str, names: list[str], *, index_column: str | None = None, timestamp_column: str | None = None
) -> _Layout:
    """Map the file's header to the roles, or explain what is missing or ambiguous."""
    normalized = [_normalize(n) for n in names]
    # Angle-bracket headers are MetaTrader's (and Finam's): <VOL> is volume there, <TICKVOL> its tick count.
    metatrader = any(n.strip().startswith("<") and n.strip().endswith(">") for n in names)
    accepted: dict[str, tuple[str, ...]] = {c: (c,) for c in _PRICES}
    accepted["volume"] = ("volume", "vol") if metatrader else ("volume",)
    if metatrader:
        accepted["tick_volume"] = ("tickvol",)
    position: dict[str, int] = {}
    for role, aliases in accepted.items():
        found = [i for i, n in enumerate(normalized) if n in aliases]
        if len(found) > 1:
            raise DataError(
                source,
                f"columns {', '.join(repr(names[i]) for i in found)} all look like '{role}'; keep one",
                column=role,
            )
        if found:
            position[role] = found[0]

    _place_timestamp(source, names, normalized, position, index_column, timestamp_column)
    no_volume = "volume" not in position and "tick_volume" not in position
    missing = [c for c in _REQUIRED if c not in position]
    if missing:
        raise _missing_columns(source, names, missing, volume_missing=no_volume)
    if no_volume:
        _refuse_volume_lookalikes(source, names, normalized, position)

    header = {}
    for role, i in position.items():
        shown = names[i].replace("\ufeff", "").strip()
        header[role] = role if normalized[i] in (*_UNNAMED_FIRST, _PANDAS_INDEX) else shown
    return _Layout(position, header, (_NOTE_SERVER_CLOCK,) if metatrader else ())


def _place_timestamp(
    source: str,
    names: list[str],
    normalized: list[str],
    position: dict[str, int],
    index_column: str | None,
    timestamp_column: str | None,
) -> None:
    """Choose the timestamp column (and a separate time-of-day column) into `position`."""
    if timestamp_column is not None:
        wanted = _normalize(timestamp_column)
        found = [i for i, n in enumerate(normalized) if n == wanted]
        if not found:
            raise DataError(
                source,
                f"no column named '{timestamp_column}' for the timestamp (columns found: {_listing(names)})",
                column=timestamp_column,
            )
        if len(found) > 1:
            raise DataError(
                source,
                f"columns {', '.join(repr(names[i]) for i in found)} are all named '{timestamp_column}'; keep one",
                column=timestamp_column,
            )
        taken = {i: role for role, i in position.items()}
        if found[0] in taken:
            shown = names[found[0]].strip()
            raise DataError(
                source,
                f"timestamp_column '{timestamp_column}' is the {taken[found[0]]} column; name the timestamp column",
                column=shown,
            )
        position["timestamp"] = found[0]
        return

    time_columns: dict[str, int] = {}
    for i, n in enumerate(normalized):
        if n in _TIME_NAMES:
            time_columns.setdefault(n, i)
    chosen = next((n for n in _TIME_NAMES if n in time_columns), None)
    if chosen is not None:
        position["timestamp"] = time_columns[chosen]
        if chosen == "date" and "time" in time_columns:
            position["time"] = time_columns["time"]
    elif index_column is not None and index_column in names:
        position["timestamp"] = names.index(index_column)
    elif normalized and normalized[0] in _UNNAMED_FIRST:
        position["timestamp"] = 0


def _missing_columns(source: str, names: list[str], missing: list[str], *, volume_missing: bool) -> DataError:
    wanted = ", ".join(f"'{c}'" for c in missing) + (", 'volume' (optional)" if volume_missing else "")
    count = len(missing) + volume_missing
    problem = (
        f"missing required column{'s' if count > 1 else ''} {wanted} (columns found: {_listing(names)}); "
        "need a timestamp (a column named timestamp/datetime/date/time/open_time, separate date and time columns, "
        "an unnamed first index column, or timestamp_column), open, high, low and close; volume is optional"
    )
    if len(names) > 2 and all(_NUMBER.fullmatch(n.strip()) for n in names[1:]):
        problem += (
            "; the first row looks like data, not a header: a file is read without a header only when every "
            "cell of its first row is a number (epoch timestamps), so add a header row"
        )
    return DataError(source, problem, column=missing[0])


def _refuse_volume_lookalikes(source: str, names: list[str], normalized: list[str], position: dict[str, int]) -> None:
    """No 'volume' column but columns that look like one ("Vol", "Volume BTC"): refuse rather than drop them.

    Loading such a file without volume would silently switch volume-based limits off; which of two volume
    columns (base or quote currency) is the right one cannot be guessed.
    """
    used = set(position.values())
    lookalikes = [names[i].strip() for i, n in enumerate(normalized) if i not in used and _VOLUME_LIKE.search(n)]
    if not lookalikes:
        return
    one = len(lookalikes) == 1
    raise DataError(
        source,
        f"missing required column 'volume' (columns found: {_listing(names)}): {_listing(lookalikes)} "
        f"{'looks' if one else 'look'} like volume but {'is' if one else 'are'} not named 'volume'; rename the "
        f"column that holds traded volume (in units of the instrument) to 'volume', or remove "
        f"{'it' if one else 'them'} to load without volume",
        column="volume",
    )


# ---------------------------------------------------------------------------------------------------------------
# CSV


@dataclass(frozen=True, slots=True)
class _CsvHead:
    """What the first line says: column names (assigned, for a file without a header), delimiter, and more."""

    names: list[str]
    delimiter: str
    header_row: bool  # False: the first line is data row 1
    has_data: bool
    note: str | None = None


def _read_csv(p: Path, source: str, timestamp_column: str | None) -> tuple[dict[str, pa.ChunkedArray], _Layout]:
    head = _csv_head(p, source)
    layout = _layout(source, head.names, timestamp_column=timestamp_column)
    if head.note:
        layout = replace(layout, notes=(head.note, *layout.notes))
    if not head.has_data:
        empty = {r: pa.chunked_array([], pa.string() if r in _TEXT_ROLES else pa.float64()) for r in layout.position}
        return empty, layout
    try:
        table = _csv_table(p, source, head, layout, as_text=False)
    except _Reread:
        # Some cell is not what the column's type needs: read everything as text and find the first bad cell.
        table = _csv_table(p, source, head, layout, as_text=True)
    return {role: table.column(f"c{i}") for role, i in layout.position.items()}, layout


def _csv_head(p: Path, source: str) -> _CsvHead:
    """Names, delimiter (sniffed from the first line: comma, semicolon or tab), header or not, data or not."""
    opener = gzip.open if p.name.lower().endswith(".gz") else open
    try:
        with opener(p, "rb") as f:
            first = f.readline()
            nothing_after = not first.endswith(b"\n") or f.read(1) == b""
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(source, f"cannot read the file: {exc}") from None
    if not first.strip():
        raise DataError(source, "empty file: no header row and no data rows")
    try:
        line = first.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        raise DataError(source, "the header row is not UTF-8 text; is this really a CSV file?") from None
    delimiter = max((",", ";", "\t"), key=line.count)
    fields = next(csv.reader([line], delimiter=delimiter))
    if _is_data_row(fields):
        names, note = _headerless(source, len(fields))
        return _CsvHead(list(names), delimiter, header_row=False, has_data=True, note=note)
    return _CsvHead(fields, delimiter, header_row=True, has_data=not nothing_after)


def _is_data_row(fields: list[str]) -> bool:
    """A first row of numbers only is data (ccxt, Binance); "0,1,2,..." is pandas' header of unnamed columns."""
    if len(fields) < 2 or not all(_NUMBER.fullmatch(f.strip()) for f in fields):
        return False
    return [f.strip() for f in fields] != [str(i) for i in range(len(fields))]


def _headerless(source: str, count: int) -> tuple[tuple[str, ...], str]:
    """The first row is all numbers, so it is data: the column count says which exporter's layout it is."""
    if count not in _HEADERLESS:
        raise DataError(
            source,
            f"the first row is all numbers, so the file has no header, but it has {count} columns; a file without "
            "a header must be timestamp, open, high, low, close[, volume] (5 or 6 columns, as ccxt's fetch_ohlcv "
            "writes) or a Binance kline file (12 columns); otherwise add a header row naming the columns",
        )
    return _HEADERLESS[count]


class _Reread(Exception):
    """Internal: the typed fast path failed on a cell; read again as text to locate it."""


def _csv_table(p: Path, source: str, head: _CsvHead, layout: _Layout, *, as_text: bool) -> pa.Table:
    """Read only the needed columns. Columns get positional names, so empty or repeated headers cannot clash."""
    column_names = [f"c{i}" for i in range(len(head.names))]
    types = {
        f"c{i}": pa.string() if (as_text or role in _TEXT_ROLES) else pa.float64()
        for role, i in layout.position.items()
    }
    invalid: list[pcsv.InvalidRow] = []

    def on_invalid_row(row: pcsv.InvalidRow) -> str:
        invalid.append(row)
        return "skip"

    def read(use_threads: bool) -> pa.Table:
        gz = p.name.lower().endswith(".gz")
        with pa.input_stream(str(p), compression="gzip" if gz else None) as stream:
            return pcsv.read_csv(
                stream,
                read_options=pcsv.ReadOptions(
                    column_names=column_names, skip_rows=1 if head.header_row else 0, use_threads=use_threads
                ),
                parse_options=pcsv.ParseOptions(delimiter=head.delimiter, invalid_row_handler=on_invalid_row),
                convert_options=pcsv.ConvertOptions(
                    include_columns=list(types),
                    column_types=types,
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                ),
            )

    try:
        table = read(use_threads=True)
        if invalid and invalid[0].number is None:
            # Row numbers are only known to a single-threaded reader; worth it on this error path only.
            invalid.clear()
            read(use_threads=False)
    except pa.ArrowInvalid as exc:
        message = _first_line(exc)
        if "conversion error" in message and not as_text:
            raise _Reread from None
        raise DataError(source, f"cannot parse the CSV file: {message}") from None
    except (OSError, pa.ArrowException, EOFError) as exc:
        raise DataError(source, f"cannot read the file: {_first_line(exc)}") from None

    if invalid:
        row = invalid[0]
        # pyarrow numbers the file's lines from 1: with a header, data row 1 is line 2.
        data_row = row.number - head.header_row if row.number is not None else None
        raise DataError(
            source,
            f"expected {row.expected_columns} fields, found {row.actual_columns}: {_clip(row.text)!r}",
            row=data_row,
        )
    return table


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _clip(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


# ---------------------------------------------------------------------------------------------------------------
# Parquet


def _read_parquet(p: Path, source: str, timestamp_column: str | None) -> tuple[dict[str, pa.ChunkedArray], _Layout]:
    try:
        schema = pq.read_schema(p)
        names = schema.names
        layout = _layout(source, names, index_column=_pandas_index_column(schema), timestamp_column=timestamp_column)
        roles = list(layout.position)
        table = pq.read_table(p, columns=[names[layout.position[r]] for r in roles])
    except DataError:
        raise
    except (OSError, pa.ArrowException, EOFError) as exc:
        raise DataError(source, f"cannot read the Parquet file: {_first_line(exc)}") from None
    return {role: table.column(i) for i, role in enumerate(roles)}, layout


def _pandas_index_column(schema: pa.Schema) -> str | None:
    """The column holding a pandas index (e.g. a DatetimeIndex), from the metadata pandas writes."""
    index_columns = [c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)]
    if index_columns:
        return index_columns[0]
    return _PANDAS_INDEX if _PANDAS_INDEX in schema.names else None


# ---------------------------------------------------------------------------------------------------------------
# Column conversion (shared by CSV and Parquet)


def _first_null(col: pa.ChunkedArray) -> int | None:
    if col.null_count == 0:
        return None
    return int(np.argmax(pc.is_null(col).to_numpy(zero_copy_only=False)))


def _floats(col: pa.ChunkedArray, source: str, name: str) -> np.ndarray:
    """A float64 numpy column; a missing or non-numeric cell is a DataError with its row and value."""
    if len(col) == 0:
        return np.empty(0, dtype=np.float64)
    missing = _first_null(col)
    if missing is not None:
        raise DataError(
            source, "missing value (empty cell or NA marker); a number is required", row=missing + 1, column=name
        )
    t = col.type
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t):
        try:
            return col.cast(pa.float64(), safe=False).to_numpy()
        except pa.ArrowException as exc:
            raise DataError(source, f"cannot convert {t} values to numbers: {_first_line(exc)}", column=name) from None
    if _is_text(t):
        text = pc.utf8_trim_whitespace(col)
        try:
            return text.cast(pa.float64()).to_numpy()
        except pa.ArrowInvalid:
            i = _first_failure(text, lambda part: part.cast(pa.float64()))
            raise DataError(source, f"not a number: {text[i].as_py()!r}", row=i + 1, column=name) from None
    raise DataError(source, f"holds {t} values, not numbers", column=name)


def _first_failure(values: pa.ChunkedArray, convert: Callable[[pa.ChunkedArray], object]) -> int:
    """Index of the first element `convert` refuses, by bisection: exactly pyarrow's own rules, in O(n) work.

    Only called once the whole column is known to fail, so some element does.
    """
    lo, n = 0, len(values)
    while n > 1:
        half = n // 2
        try:
            convert(values.slice(lo, half))
        except pa.ArrowInvalid:
            n = half
        else:
            lo, n = lo + half, n - half
    return lo


def _timestamps(col: pa.ChunkedArray, source: str, name: str, date_format: str | None = None) -> np.ndarray:
    """int64 nanoseconds since the epoch, UTC, from whatever timestamp encoding the column holds.

    `date_format` applies to text only: typed columns (Parquet timestamps, epoch numbers) need none.
    """
    if len(col) == 0:
        return np.empty(0, dtype=np.int64)
    missing = _first_null(col)
    if missing is not None:
        raise DataError(source, "missing timestamp", row=missing + 1, column=name)
    t = col.type
    if pa.types.is_timestamp(t):
        return _timestamp_type_to_ns(col, source, name)
    if pa.types.is_date(t):
        return _timestamp_type_to_ns(col.cast(pa.timestamp("s")), source, name)
    if pa.types.is_integer(t):
        try:
            whole = col.cast(pa.int64()).to_numpy()
        except pa.ArrowInvalid:  # uint64 beyond int64
            i = _first_failure(col, lambda part: part.cast(pa.int64()))
            raise DataError(source, _OUT_OF_RANGE.format(value=col[i].as_py()), row=i + 1, column=name) from None
        return _epoch_to_ns(whole, None, lambda i: str(whole[i]), source, name)
    if pa.types.is_floating(t):
        return _float_epoch_to_ns(col.cast(pa.float64()).to_numpy(), source, name)
    if _is_text(t):
        text = pc.utf8_trim_whitespace(col)
        return _formatted_to_ns(text, date_format, source, name) if date_format else _text_to_ns(text, source, name)
    raise DataError(source, f"holds {t} values, not timestamps; {_TIME_HINT}", column=name)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _timestamp_type_to_ns(col: pa.ChunkedArray, source: str, name: str) -> np.ndarray:
    """Arrow timestamps store UTC instants whatever their zone; a naive one is taken as UTC."""
    target = pa.timestamp("ns", tz=col.type.tz)
    try:
        return col.cast(target).cast(pa.int64()).to_numpy()
    except pa.ArrowInvalid:
        i = _first_failure(col, lambda part: part.cast(target))
        raw = col.cast(pa.int64())[i].as_py()
        shown = f"{raw} ({col.type.unit} since 1970)"
        raise DataError(source, _OUT_OF_RANGE.format(value=shown), row=i + 1, column=name) from None


def _float_epoch_to_ns(values: np.ndarray, source: str, name: str) -> np.ndarray:
    """Epoch numbers stored as floats (e.g. a Parquet double column), split into whole units and a fraction."""
    missing = ~np.isfinite(values)
    if missing.any():
        i = int(np.argmax(missing))
        raise DataError(source, f"timestamp {values[i]} is not a time; {_TIME_HINT}", row=i + 1, column=name)
    huge = np.abs(values) >= 2.0**63
    if huge.any():
        i = int(np.argmax(huge))
        raise DataError(source, _OUT_OF_RANGE.format(value=values[i]), row=i + 1, column=name)
    whole = np.trunc(values)
    fraction = np.round((values - whole) * 1e9).astype(np.int64)
    return _epoch_to_ns(whole.astype(np.int64), fraction, lambda i: repr(float(values[i])), source, name)


def _epoch_to_ns(
    whole: np.ndarray, billionths: np.ndarray | None, shown: Callable[[int], str], source: str, name: str
) -> np.ndarray:
    """Epoch numbers to nanoseconds with integer arithmetic (float64 cannot hold ns since 1970 exactly).

    `whole` is the integer part, `billionths` the fraction in units of 1e-9 of the same unit (sign included).
    One unit per column, decided by magnitude; a row whose magnitude says another unit is an error, as are
    columns that are really a row counter or YYYYMMDD dates (both would silently load as 1970).
    """
    magnitude = np.abs(whole.astype(np.float64))
    band = np.searchsorted(_EPOCH_BOUNDS, magnitude, side="right")
    mixed = band != band[0]
    if mixed.any():
        i = int(np.argmax(mixed))
        raise DataError(
            source,
            f"epoch timestamp {shown(i)} looks like {_EPOCH_UNITS[band[i]][0]} but row 1 ({shown(0)}) looks "
            f"like {_EPOCH_UNITS[band[0]][0]}; use one unit for the whole column",
            row=i + 1,
            column=name,
        )
    unit, factor = _EPOCH_UNITS[int(band[0])]
    integral = billionths is None or not billionths.any()
    if integral and len(whole) > 1 and whole[0] in (0, 1) and bool(np.all(np.diff(whole) == 1)):
        raise DataError(
            source,
            f"the timestamp column counts {shown(0)}, {shown(1)}, ...: that is a row index, not times; {_TIME_HINT}",
            column=name,
        )
    if integral and whole.min() >= 19000101 and whole.max() <= 21001231:
        raise DataError(
            source,
            f"timestamps like {shown(0)} look like YYYYMMDD dates, which as epoch seconds would mean 1970; "
            "write them as ISO dates (2024-01-31)",
            column=name,
        )
    too_big = magnitude >= (_INT64_MAX // factor) - 1
    if too_big.any():
        i = int(np.argmax(too_big))
        raise DataError(source, _OUT_OF_RANGE.format(value=f"{shown(i)} ({unit})"), row=i + 1, column=name)
    ns = whole.astype(np.int64) * np.int64(factor)
    if billionths is not None:
        # Round the fraction to whole nanoseconds: |billionths| * factor < 1e18 fits int64.
        ns += np.sign(billionths) * ((np.abs(billionths) * factor + 500_000_000) // 1_000_000_000)
    return ns


def _text_to_ns(text: pa.ChunkedArray, source: str, name: str) -> np.ndarray:
    """ISO 8601 text (pyarrow's fast casts first; pandas for mixed zones), or epoch numbers written as text.

    Year-first dates with dots or slashes (2024.01.31, MetaTrader) are rewritten to ISO first; day/month dates
    (01/02/2024) are refused at once, since only the user knows which of the two comes first.
    """
    first = text[0].as_py()
    if _EPOCH_TEXT.fullmatch(first):
        return _epoch_text_to_ns(text, source, name)
    if _AMBIGUOUS_DATE.match(first):
        raise DataError(source, _ambiguous_date(first), row=1, column=name)
    if _YEAR_FIRST.match(first):
        text = pc.replace_substring_regex(text, pattern=r"^(\d{4})[./](\d{2})[./](\d{2})", replacement=r"\1-\2-\3")
    for target in (pa.timestamp("ns", tz="UTC"), pa.timestamp("ns")):
        try:
            return text.cast(target).cast(pa.int64()).to_numpy()
        except pa.ArrowInvalid:
            pass
    return _text_to_ns_mixed(text, source, name)


def _epoch_text_to_ns(text: pa.ChunkedArray, source: str, name: str) -> np.ndarray:
    """Epoch numbers written as text, fraction included, parsed exactly (no trip through float64).

    Whole numbers (the usual epoch milliseconds) take pyarrow's integer cast, several times faster than the
    regular expression that splits off a fraction and that finds the first cell that is not a number.
    """
    try:
        whole = text.cast(pa.int64()).to_numpy()
    except pa.ArrowInvalid:
        pass
    else:
        return _epoch_to_ns(whole, None, lambda i: str(text[i].as_py()), source, name)
    parts = pc.extract_regex(text, r"^(?P<sign>-?)(?P<whole>\d+)(?:\.(?P<frac>\d*))?$")
    unreadable = _first_null(parts)
    if unreadable is not None:
        raise DataError(
            source,
            f"cannot read timestamp {text[unreadable].as_py()!r}: row 1 holds an epoch number and this is not one",
            row=unreadable + 1,
            column=name,
        )
    whole_text = pc.struct_field(parts, "whole")
    try:
        whole = whole_text.cast(pa.int64()).to_numpy()
    except pa.ArrowInvalid:
        i = _first_failure(whole_text, lambda part: part.cast(pa.int64()))
        raise DataError(source, _OUT_OF_RANGE.format(value=repr(text[i].as_py())), row=i + 1, column=name) from None
    digits = pc.utf8_slice_codeunits(pc.utf8_rpad(pc.struct_field(parts, "frac"), 9, "0"), 0, 9)
    billionths = digits.cast(pa.int64()).to_numpy()
    negative = pc.equal(pc.struct_field(parts, "sign"), "-").to_numpy(zero_copy_only=False)
    sign = np.where(negative, -1, 1)
    return _epoch_to_ns(whole * sign, billionths * sign, lambda i: str(text[i].as_py()), source, name)


def _text_to_ns_mixed(text: pa.ChunkedArray, source: str, name: str) -> np.ndarray:
    """Mixed zones (some with offsets, some naive) or anything pyarrow's strict ISO parser refused."""
    import pandas as pd  # only on this path: keeps importing the loader cheap

    values = text.to_numpy(zero_copy_only=False)
    try:
        parsed = pd.DatetimeIndex(pd.to_datetime(values, utc=True, format="ISO8601"))
        return parsed.as_unit("ns").asi8.copy()
    except (ValueError, OverflowError):
        pass
    coerced = pd.DatetimeIndex(pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce"))
    unreadable = np.asarray(coerced.isna())
    if unreadable.any():
        i = int(np.argmax(unreadable))
        value = str(values[i])
        problem = (
            _ambiguous_date(value) if _AMBIGUOUS_DATE.match(value) else f"cannot read timestamp {value!r}; {_TIME_HINT}"
        )
        raise DataError(source, problem, row=i + 1, column=name)
    micros = coerced.as_unit("us").asi8
    outside = np.abs(micros.astype(np.float64)) > _INT64_MAX / 1_000
    i = int(np.argmax(outside))
    raise DataError(source, _OUT_OF_RANGE.format(value=repr(values[i])), row=i + 1, column=name)


def _ambiguous_date(value: str) -> str:
    """Why NN/NN/YYYY is refused, with the two formats it could be, written for this very value."""
    m = _AMBIGUOUS_DATE.match(value)
    if m is None:  # callers match first; keep a plain message rather than fail
        return f"cannot read date {value!r}; pass a date format (--date-format, e.g. '%d/%m/%Y')"
    sep, year = m.group(2), "%Y" if len(m.group(4)) == 4 else "%y"
    clock = _CLOCK.match(value, m.end())
    time = f" %H:%M{':%S' if clock.group(3) else ''}" if clock else ""
    day_first, month_first = f"%d{sep}%m{sep}{year}{time}", f"%m{sep}%d{sep}{year}{time}"
    return (
        f"cannot tell whether date {value!r} is day-first or month-first; pass a date format "
        f"(--date-format): '{day_first}' if the day comes first, '{month_first}' if the month does"
    )


# ---------------------------------------------------------------------------------------------------------------
# Explicit date formats, and separate date and time columns


def _formatted_to_ns(
    text: pa.ChunkedArray, fmt: str, source: str, name: str, *, label: str = "timestamp", detail: str = ""
) -> np.ndarray:
    """Cells written as `fmt` (strptime directives) to ns UTC; a cell that does not match is a DataError.

    pyarrow's strptime does the bulk, but it rolls an impossible day over (31/04 reads as 1 May) and knows no
    %f. So the rows it could not read, and those whose parsed day could be a roll-over (1-3, or near a month's
    end when %z moved the day), are parsed again by pandas, whose strict strptime decides. No zone means UTC.
    """
    n = len(text)
    try:
        parsed = pc.strptime(text, format=fmt, unit="s", error_is_null=True)
    except pa.ArrowException:
        parsed = None
    if parsed is None:
        seconds, suspect, rolled = np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
    else:
        day = pc.day(parsed)
        risky = pc.less_equal(day, 3)
        if "%z" in fmt:
            risky = pc.or_(risky, pc.greater_equal(day, 28))
        suspect = pc.fill_null(risky, True).to_numpy(zero_copy_only=False)
        rolled = suspect & ~pc.is_null(parsed).to_numpy(zero_copy_only=False)  # pyarrow read it: a roll-over?
        seconds = pc.fill_null(parsed.cast(pa.int64()), 0).to_numpy()
        too_big = ~suspect & (np.abs(seconds) >= _INT64_MAX // 10**9)
        if too_big.any():
            i = int(np.argmax(too_big))
            raise DataError(source, _OUT_OF_RANGE.format(value=repr(text[i].as_py())), row=i + 1, column=name)
    ns = seconds * np.int64(10**9)
    rows = np.flatnonzero(suspect)
    if rows.size:
        values = text.take(pa.array(rows)).to_numpy(zero_copy_only=False)
        ns[rows] = _strict_strptime(values, rows, rolled[rows], fmt, source, name, label, detail)
    return ns


def _strict_strptime(
    values: np.ndarray,
    rows: np.ndarray,
    rolled: np.ndarray,
    fmt: str,
    source: str,
    name: str,
    label: str,
    detail: str,
) -> np.ndarray:
    """pandas' strict strptime on the rows pyarrow could not vouch for; `rows` are their 0-based indices.

    `rolled` marks rows pyarrow did read: refused here, they have the format's shape but are no real date.
    """
    import pandas as pd  # only on this path: keeps importing the loader cheap

    try:
        parsed = pd.DatetimeIndex(pd.to_datetime(values, format=fmt, utc=True, errors="coerce"))
    except ValueError as exc:  # a bad directive, e.g. '%Q'
        raise InputError(f"date format '{fmt}' is not a valid strptime format: {_first_line(exc)}") from None
    unreadable = np.asarray(parsed.isna())
    if unreadable.any():
        j = int(np.argmax(unreadable))
        why = "is not a real date in" if rolled[j] else "does not match"
        raise DataError(
            source,
            f"{label} {values[j]!r}{detail} {why} the date format '{fmt}'",
            row=int(rows[j]) + 1,
            column=name,
        )
    factor = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[parsed.unit]
    raw = parsed.asi8
    outside = np.abs(raw) >= _INT64_MAX // factor
    if outside.any():
        j = int(np.argmax(outside))
        raise DataError(source, _OUT_OF_RANGE.format(value=repr(values[j])), row=int(rows[j]) + 1, column=name)
    return raw * np.int64(factor)


def _date_and_time_to_ns(
    dates: pa.ChunkedArray,
    times: pa.ChunkedArray,
    source: str,
    date_name: str,
    time_name: str,
    date_format: str | None,
) -> np.ndarray:
    """One timestamp from separate date and time columns (MetaTrader, broker exports): the date plus the time.

    A date format holding time directives (%H, %M, %p, ...) describes both cells joined by a space; any other
    describes the date alone. Each part is read on its own, so a bad cell is reported in its own column.
    """
    if len(dates) == 0:
        return np.empty(0, dtype=np.int64)
    for col, name, what in ((dates, date_name, "date"), (times, time_name, "time")):
        missing = _first_null(col)
        if missing is not None:
            raise DataError(source, f"missing {what}", row=missing + 1, column=name)
    if date_format and _TIME_DIRECTIVE.search(date_format):
        joined = pc.binary_join_element_wise(_trimmed_text(dates), _trimmed_text(times), " ")
        detail = f" (columns '{date_name}' and '{time_name}' joined by a space)"
        return _formatted_to_ns(joined, date_format, source, date_name, label="date and time", detail=detail)
    day = _dates_to_ns(dates, source, date_name, time_name, date_format)
    clock = _times_to_ns(times, source, time_name)
    outside = day > _INT64_MAX - clock
    if outside.any():
        i = int(np.argmax(outside))
        shown = f"{dates[i].as_py()} {times[i].as_py()}"
        raise DataError(source, _OUT_OF_RANGE.format(value=repr(shown)), row=i + 1, column=date_name)
    return day + clock


def _trimmed_text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.utf8_trim_whitespace(col if _is_text(col.type) else col.cast(pa.string()))


def _dates_to_ns(col: pa.ChunkedArray, source: str, name: str, time_name: str, date_format: str | None) -> np.ndarray:
    """Midnight UTC of each date; a date that carries a time of day is refused (it would be counted twice)."""
    t = col.type
    if pa.types.is_date(t):
        ns = _timestamp_type_to_ns(col.cast(pa.timestamp("s")), source, name)
    elif pa.types.is_timestamp(t):
        ns = _timestamp_type_to_ns(col, source, name)
    elif _is_text(t):
        text = pc.utf8_trim_whitespace(col)
        ns = (
            _formatted_to_ns(text, date_format, source, name, label="date")
            if date_format
            else _iso_dates(text, source, name)
        )
    else:
        raise DataError(source, f"holds {t} values, not dates", column=name)
    with_time = ns % _NS_PER_DAY != 0
    if with_time.any():
        i = int(np.argmax(with_time))
        raise DataError(
            source,
            f"date {str(col[i].as_py())!r} has a time of day, but the time belongs in column '{time_name}' "
            f"(to use this column alone, pass --timestamp-column '{name}')",
            row=i + 1,
            column=name,
        )
    return ns


def _iso_dates(text: pa.ChunkedArray, source: str, name: str) -> np.ndarray:
    """Year-first dates: 2024-01-31, 2024.01.31 (MetaTrader), 2024/01/31 or 20240131 (Finam, many brokers)."""
    first = text[0].as_py()
    if _AMBIGUOUS_DATE.match(first):
        raise DataError(source, _ambiguous_date(first), row=1, column=name)
    iso = pc.replace_substring_regex(text, pattern=r"^(\d{4})[./]?(\d{2})[./]?(\d{2})$", replacement=r"\1-\2-\3")
    target = pa.timestamp("ns")
    try:
        return iso.cast(target).cast(pa.int64()).to_numpy()
    except pa.ArrowInvalid:
        i = _first_failure(iso, lambda part: part.cast(target))
    value = text[i].as_py()
    problem = (
        _ambiguous_date(value)
        if _AMBIGUOUS_DATE.match(value)
        else f"cannot read date {value!r}; expected a year-first date (2024-01-31, 2024.01.31, 20240131) "
        "or a date format (--date-format, e.g. '%d/%m/%Y')"
    )
    raise DataError(source, problem, row=i + 1, column=name)


def _times_to_ns(col: pa.ChunkedArray, source: str, name: str) -> np.ndarray:
    """Nanoseconds since midnight from HH:MM[:SS[.fff]], H:MM or HHMM[SS] text (or a Parquet time column)."""
    t = col.type
    if pa.types.is_time(t):
        return col.cast(pa.time64("ns")).cast(pa.int64()).to_numpy()
    if not _is_text(t):
        raise DataError(source, f"holds {t} values, not times of day", column=name)
    text = pc.utf8_trim_whitespace(col)
    target = pa.timestamp("ns")

    def parse(clock: pa.ChunkedArray) -> pa.ChunkedArray:
        # On the epoch day, pyarrow's strict ISO parser checks hours < 24, minutes and seconds < 60.
        return pc.binary_join_element_wise("1970-01-01T", clock, "").cast(target)

    try:
        return parse(text).cast(pa.int64()).to_numpy()
    except pa.ArrowInvalid:
        pass
    padded = _padded_times(text)
    try:
        return parse(padded).cast(pa.int64()).to_numpy()
    except pa.ArrowInvalid:
        i = _first_failure(padded, parse)
    raise DataError(
        source,
        f"cannot read time of day {text[i].as_py()!r}; expected HH:MM, HH:MM:SS or HHMMSS "
        f"(if this column holds whole timestamps, pass --timestamp-column '{name}')",
        row=i + 1,
        column=name,
    )


def _padded_times(text: pa.ChunkedArray) -> pa.ChunkedArray:
    """ISO times from the other common spellings: 9:30 -> 09:30, 0930 -> 09:30, 093000 -> 09:30:00."""
    text = pc.replace_substring_regex(text, pattern=r"^(\d{2})(\d{2})(\d{2})$", replacement=r"\1:\2:\3")
    text = pc.replace_substring_regex(text, pattern=r"^(\d{2})(\d{2})$", replacement=r"\1:\2")
    return pc.replace_substring_regex(text, pattern=r"^(\d):", replacement=r"0\1:")


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
            **{c: pa.array(np.asarray(getattr(frame, c), dtype=np.float64)) for c in COLUMNS[1:]},
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
            **{c: pa.array(np.asarray(getattr(frame, c), dtype=np.float64)) for c in COLUMNS[1:]},
        }
    )
    pq.write_table(table, str(p))
    return p


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
