"""Market data files (CSV, gzipped CSV, Parquet) into validated `OHLCV` frames, and back.

Files come from many exporters (pandas, spreadsheets, exchanges, data vendors), so the reader accepts the common
header variants and timestamp encodings, and turns every problem into a `DataError` that names the file, the row
(1 = first data row after the header), the column and the bad value. A pandas or pyarrow exception never reaches
the user.

Speed: the fast path is pyarrow's multi-threaded CSV reader with the numeric columns typed up front, so a clean
file costs one parse. Only when pyarrow refuses a file is it read again as text, to find the first bad cell.
"""

from __future__ import annotations

import csv
import gzip
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from keel.data.frame import OHLCV
from keel.data.quality import COLUMNS, validate_ohlcv
from keel.domain.errors import DataError

__all__ = ["SUPPORTED_SUFFIXES", "load_many", "load_ohlcv", "write_csv", "write_parquet"]

SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")

# Timestamp column names, in order of preference when a file has several (e.g. "timestamp" and "date").
_TIME_NAMES = ("timestamp", "datetime", "date", "time")
# What exporters call a column that was the (unnamed) index: pandas to_csv, read_csv round trips, pyarrow.
_UNNAMED_FIRST = ("", "unnamed: 0")
_PANDAS_INDEX = "__index_level_0__"

_INT64_MAX = np.iinfo(np.int64).max
# Epoch integers: magnitude decides the unit. Below 1e11 is seconds (up to year 5138), then milliseconds,
# microseconds, nanoseconds. Today is ~1.7e9 s, ~1.7e12 ms, ~1.7e15 us, ~1.7e18 ns.
_EPOCH_BOUNDS = (1e11, 1e14, 1e17)
_EPOCH_UNITS = (("seconds", 10**9), ("milliseconds", 10**6), ("microseconds", 10**3), ("nanoseconds", 1))
_EPOCH_TEXT = re.compile(r"-?\d+(\.\d*)?")
_OUT_OF_RANGE = "timestamp {value} is outside the supported range (1677-09-22 to 2262-04-11)"
_TIME_HINT = "expected ISO 8601 (e.g. 2024-01-31T09:30:00Z; no zone means UTC), a date, or epoch s/ms/us/ns"


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each canonical column sits in the file, and what the file calls it."""

    position: dict[str, int]
    header: dict[str, str]


# ---------------------------------------------------------------------------------------------------------------
# Loading


def load_ohlcv(path: str | os.PathLike[str], *, symbol: str | None = None) -> OHLCV:
    """Read one symbol's bars from `.csv`, `.csv.gz`, `.parquet` or `.pq`, then `validate_ohlcv` them.

    Columns (any case): a timestamp column named timestamp/datetime/date/time, or an unnamed first column
    (pandas index export), or a parquet DatetimeIndex; open, high, low, close and volume are required; others
    (e.g. "Adj Close") are ignored. Timestamps: ISO 8601 strings with or without zone (none means UTC),
    dates, or epoch seconds/milliseconds/microseconds/nanoseconds, told apart by magnitude.
    `symbol` defaults to the file name without its suffix, upper-cased ("btc-usd.csv" -> "BTC-USD").
    Raises `DataError` for anything wrong, with row (1 = first data row after the header) and column.
    """
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
        columns, layout = _read_parquet(p, source)
    else:
        columns, layout = _read_csv(p, source)

    frame = OHLCV(
        symbol,
        _readonly(_timestamps(columns["timestamp"], source, layout.header["timestamp"])),
        *(_readonly(_floats(columns[c], source, layout.header[c])) for c in COLUMNS[1:]),
        source=source,
    )
    validate_ohlcv(frame, column_names=layout.header)
    return frame


def load_many(paths: Iterable[str | os.PathLike[str]]) -> list[OHLCV]:
    """Load several files, one symbol each; two files naming the same symbol is an error, not a silent overwrite."""
    frames: list[OHLCV] = []
    seen: dict[str, str] = {}
    for path in paths:
        frame = load_ohlcv(path)
        if frame.symbol in seen:
            raise DataError(
                frame.source,
                f"symbol '{frame.symbol}' is already loaded from {seen[frame.symbol]}; "
                "each symbol must come from exactly one file",
            )
        seen[frame.symbol] = frame.source
        frames.append(frame)
    return frames


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


# ---------------------------------------------------------------------------------------------------------------
# Column layout


def _layout(source: str, names: list[str], *, index_column: str | None = None) -> _Layout:
    """Map the file's header to the canonical columns, or explain what is missing or ambiguous."""
    normalized = [n.replace("\ufeff", "").strip().lower() for n in names]
    position: dict[str, int] = {}
    header: dict[str, str] = {}

    for canonical in COLUMNS[1:]:
        found = [i for i, n in enumerate(normalized) if n == canonical]
        if len(found) > 1:
            raise DataError(
                source,
                f"columns {', '.join(repr(names[i]) for i in found)} all look like '{canonical}'; keep one",
                column=canonical,
            )
        if found:
            position[canonical] = found[0]

    time_columns = {n: i for i, n in enumerate(normalized) if n in _TIME_NAMES}
    chosen = next((n for n in _TIME_NAMES if n in time_columns), None)
    if chosen == "date" and "time" in time_columns:
        raise DataError(
            source,
            f"separate date and time columns ('{names[time_columns['date']]}', '{names[time_columns['time']]}') "
            "are not supported; combine them into one timestamp column",
            column=names[time_columns["date"]],
        )
    if chosen is not None:
        position["timestamp"] = time_columns[chosen]
    elif index_column is not None and index_column in names:
        position["timestamp"] = names.index(index_column)
    elif normalized and normalized[0] in _UNNAMED_FIRST:
        position["timestamp"] = 0

    missing = [c for c in COLUMNS if c not in position]
    if missing:
        wanted = ", ".join(f"'{c}'" for c in missing)
        found_names = ", ".join(repr(n) for n in names) or "none"
        raise DataError(
            source,
            f"missing required column{'s' if len(missing) > 1 else ''} {wanted} (columns found: {found_names}); "
            "need a timestamp (or date/datetime/time, or an unnamed first index column), "
            "open, high, low, close and volume",
            column=missing[0],
        )
    for canonical, i in position.items():
        shown = names[i].replace("\ufeff", "").strip()
        header[canonical] = canonical if normalized[i] in (*_UNNAMED_FIRST, _PANDAS_INDEX) else shown
    return _Layout(position, header)


# ---------------------------------------------------------------------------------------------------------------
# CSV


def _read_csv(p: Path, source: str) -> tuple[dict[str, pa.ChunkedArray], _Layout]:
    names, delimiter, header_only = _csv_header(p, source)
    layout = _layout(source, names)
    if header_only:
        empty = {c: pa.chunked_array([], pa.string() if c == "timestamp" else pa.float64()) for c in COLUMNS}
        return empty, layout
    try:
        table = _csv_table(p, source, names, delimiter, layout, as_text=False)
    except _Reread:
        # Some cell is not what the column's type needs: read everything as text and find the first bad cell.
        table = _csv_table(p, source, names, delimiter, layout, as_text=True)
    return {c: table.column(f"c{layout.position[c]}") for c in COLUMNS}, layout


def _csv_header(p: Path, source: str) -> tuple[list[str], str, bool]:
    """Header names, the delimiter (sniffed from the header: comma, semicolon or tab) and whether data follows."""
    opener = gzip.open if p.name.lower().endswith(".gz") else open
    try:
        with opener(p, "rb") as f:
            first = f.readline()
            header_only = not first.endswith(b"\n") or f.read(1) == b""
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(source, f"cannot read the file: {exc}") from None
    if not first.strip():
        raise DataError(source, "empty file: no header row and no data rows")
    try:
        line = first.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        raise DataError(source, "the header row is not UTF-8 text; is this really a CSV file?") from None
    delimiter = max((",", ";", "\t"), key=line.count)
    names = next(csv.reader([line], delimiter=delimiter))
    return names, delimiter, header_only


class _Reread(Exception):
    """Internal: the typed fast path failed on a cell; read again as text to locate it."""


def _csv_table(p: Path, source: str, names: list[str], delimiter: str, layout: _Layout, *, as_text: bool) -> pa.Table:
    """Read only the needed columns. Columns get positional names, so empty or repeated headers cannot clash."""
    column_names = [f"c{i}" for i in range(len(names))]
    include = [f"c{layout.position[c]}" for c in COLUMNS]
    types = {f"c{layout.position[c]}": pa.string() if (as_text or c == "timestamp") else pa.float64() for c in COLUMNS}
    invalid: list[pcsv.InvalidRow] = []

    def on_invalid_row(row: pcsv.InvalidRow) -> str:
        invalid.append(row)
        return "skip"

    def read(use_threads: bool) -> pa.Table:
        gz = p.name.lower().endswith(".gz")
        with pa.input_stream(str(p), compression="gzip" if gz else None) as stream:
            return pcsv.read_csv(
                stream,
                read_options=pcsv.ReadOptions(column_names=column_names, skip_rows=1, use_threads=use_threads),
                parse_options=pcsv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_invalid_row),
                convert_options=pcsv.ConvertOptions(
                    include_columns=include,
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
        data_row = row.number - 1 if row.number is not None else None  # pyarrow counts the header as row 1
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


def _read_parquet(p: Path, source: str) -> tuple[dict[str, pa.ChunkedArray], _Layout]:
    try:
        schema = pq.read_schema(p)
        names = schema.names
        layout = _layout(source, names, index_column=_pandas_index_column(schema))
        table = pq.read_table(p, columns=[names[layout.position[c]] for c in COLUMNS])
    except DataError:
        raise
    except (OSError, pa.ArrowException, EOFError) as exc:
        raise DataError(source, f"cannot read the Parquet file: {_first_line(exc)}") from None
    return {c: table.column(i) for i, c in enumerate(COLUMNS)}, layout


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
    if pa.types.is_string(t) or pa.types.is_large_string(t):
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


def _timestamps(col: pa.ChunkedArray, source: str, name: str) -> np.ndarray:
    """int64 nanoseconds since the epoch, UTC, from whatever timestamp encoding the column holds."""
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
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _text_to_ns(pc.utf8_trim_whitespace(col), source, name)
    raise DataError(source, f"holds {t} values, not timestamps; {_TIME_HINT}", column=name)


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
    """ISO 8601 text (pyarrow's fast casts first; pandas for mixed zones), or epoch numbers written as text."""
    if _EPOCH_TEXT.fullmatch(text[0].as_py()):
        return _epoch_text_to_ns(text, source, name)
    for target in (pa.timestamp("ns", tz="UTC"), pa.timestamp("ns")):
        try:
            return text.cast(target).cast(pa.int64()).to_numpy()
        except pa.ArrowInvalid:
            pass
    return _text_to_ns_mixed(text, source, name)


def _epoch_text_to_ns(text: pa.ChunkedArray, source: str, name: str) -> np.ndarray:
    """Epoch numbers written as text, fraction included, parsed exactly (no trip through float64)."""
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
        raise DataError(source, f"cannot read timestamp {values[i]!r}; {_TIME_HINT}", row=i + 1, column=name)
    micros = coerced.as_unit("us").asi8
    outside = np.abs(micros.astype(np.float64)) > _INT64_MAX / 1_000
    i = int(np.argmax(outside))
    raise DataError(source, _OUT_OF_RANGE.format(value=repr(values[i])), row=i + 1, column=name)


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
