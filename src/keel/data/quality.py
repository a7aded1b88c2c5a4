"""Quality checks every OHLCV frame passes before any strategy, gate or report reads it.

Bad bars are refused, never repaired: a NaN close or a bar out of time order that slipped through would change
indicators, signals and fills silently, and the run's evidence would vouch for data nobody checked (fail closed).

Row numbers are 1-based data rows as the user sees them in the file: row 1 is the first data row after the
header (blank lines in a CSV are not counted). The checks are vectorized: one boolean mask over all bars finds the
first bad row, and only that row is diagnosed in Python, so a million clean bars cost a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from keel.data.frame import OHLCV, ns_to_datetime
from keel.domain.errors import DataError

__all__ = ["COLUMNS", "PRICES", "collect_problems", "validate_ohlcv"]

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
"""Canonical column names, in the order problems within one row are reported."""

PRICES = ("open", "high", "low", "close")
"""The price columns: each must be a positive number."""


def validate_ohlcv(frame: OHLCV, *, column_names: Mapping[str, str] | None = None, newest_first: bool = False) -> None:
    """Raise `DataError` for the first problem in `frame`; return None when every bar is sound.

    "First" means the lowest row; within a row the order is: timestamp order, non-finite values, non-positive
    prices, high/low consistency, negative volume. The error names `frame.source`, the 1-based data row
    (row 1 = the first data row after the header), the column and the offending value.
    Rules: no NaN or inf anywhere; open, high, low, close > 0; high >= max(open, close);
    low <= min(open, close); volume >= 0; timestamps strictly increasing (no duplicate); at least one bar.

    `column_names` maps canonical names ("close") to the names the file uses ("Close"), so the message
    points at the header the user actually wrote. `newest_first` says the loader reversed a newest-first file:
    rows are then numbered as in that file (frame index i is file row len - i), so "first" is the file's first.
    """
    problems = _problems(frame, limit=1, column_names=column_names, newest_first=newest_first)
    if problems:
        row, column, problem = problems[0]
        raise DataError(frame.source, problem, row=row, column=column)


def collect_problems(
    frame: OHLCV,
    limit: int = 20,
    *,
    column_names: Mapping[str, str] | None = None,
    newest_first: bool = False,
) -> list[str]:
    """Up to `limit` problems as readable lines ("row 7, column 'low': ..."), for a report on a whole file.

    Empty when the frame is valid. Same rules and row numbering as `validate_ohlcv`.
    """
    out = []
    for row, column, problem in _problems(frame, limit=limit, column_names=column_names, newest_first=newest_first):
        where = ", ".join(
            part for part in (f"row {row}" if row else "", f"column '{column}'" if column else "") if part
        )
        out.append(f"{where}: {problem}" if where else problem)
    return out


# ---------------------------------------------------------------------------------------------------------------


def _problems(
    frame: OHLCV, *, limit: int, column_names: Mapping[str, str] | None, newest_first: bool = False
) -> list[tuple[int | None, str | None, str]]:
    """(row, column, problem) triples, structural problems first, then row problems in the file's row order."""
    if limit <= 0:
        return []
    names = {c: (column_names or {}).get(c, c) for c in COLUMNS}
    arrays = _columns(frame)
    structural = _structural_problems(arrays, names)
    if structural:
        return structural[:limit]

    bad = np.flatnonzero(_bad_rows(arrays))
    n = int(arrays["timestamp"].shape[0])

    def file_row(index: int) -> int:
        return n - index if newest_first else index + 1

    out: list[tuple[int | None, str | None, str]] = []
    for index in bad[::-1] if newest_first else bad:
        for column, problem in _row_problems(arrays, int(index), file_row):
            out.append((file_row(int(index)), names[column], problem))
            if len(out) >= limit:
                return out
    return out


def _columns(frame: OHLCV) -> dict[str, np.ndarray]:
    return {
        "timestamp": np.asarray(frame.ts),
        "open": np.asarray(frame.open),
        "high": np.asarray(frame.high),
        "low": np.asarray(frame.low),
        "close": np.asarray(frame.close),
        "volume": np.asarray(frame.volume),
    }


def _structural_problems(
    arrays: dict[str, np.ndarray], names: Mapping[str, str]
) -> list[tuple[int | None, str | None, str]]:
    """Shape and type problems: when present, row-by-row checks would be meaningless."""
    out: list[tuple[int | None, str | None, str]] = []
    ts = arrays["timestamp"]
    for column, arr in arrays.items():
        if arr.ndim != 1:
            out.append((None, names[column], f"expected a one-dimensional column, got shape {arr.shape}"))
        elif ts.ndim == 1 and arr.shape[0] != ts.shape[0]:
            out.append((None, names[column], f"has {arr.shape[0]} values but the timestamp column has {ts.shape[0]}"))
    if ts.dtype.kind not in "iu":
        out.append((None, names["timestamp"], f"timestamps must be integer nanoseconds, got dtype {ts.dtype}"))
    for column in COLUMNS[1:]:
        if arrays[column].dtype.kind not in "iuf":
            out.append((None, names[column], f"values must be numbers, got dtype {arrays[column].dtype}"))
    if not out and ts.size == 0:
        out.append((None, None, "no data rows: the file is empty or has a header only"))
    return out


def _bad_rows(a: dict[str, np.ndarray]) -> np.ndarray:
    """One boolean per bar: True where any rule fails. Comparisons with NaN are False; the finite check catches them."""
    ts = a["timestamp"]
    bad = np.zeros(ts.shape[0], dtype=bool)
    bad[1:] = ts[1:] <= ts[:-1]
    for column in COLUMNS[1:]:
        bad |= ~np.isfinite(a[column])
    for column in PRICES:
        bad |= a[column] <= 0
    bad |= a["volume"] < 0
    bad |= a["high"] < np.maximum(a["open"], a["close"])
    bad |= a["low"] > np.minimum(a["open"], a["close"])
    return bad


def _row_problems(a: dict[str, np.ndarray], i: int, file_row: Callable[[int], int]) -> list[tuple[str, str]]:
    """Every rule bar `i` (0-based index) breaks, as (canonical column, problem), in reporting order.

    `file_row` turns an index into the row the user sees, for messages that point at the previous bar.
    """
    out: list[tuple[str, str]] = []
    ts = a["timestamp"]
    if i > 0 and ts[i] <= ts[i - 1]:
        previous = file_row(i - 1)
        if ts[i] == ts[i - 1]:
            out.append(("timestamp", f"duplicate timestamp {_fmt_ts(ts[i])}: row {previous} has the same time"))
        else:
            out.append(
                (
                    "timestamp",
                    f"timestamp {_fmt_ts(ts[i])} is earlier than row {previous} ({_fmt_ts(ts[i - 1])}); "
                    "rows must be in strictly increasing time order",
                )
            )
    value = {c: float(a[c][i]) for c in COLUMNS[1:]}
    finite = {c: bool(np.isfinite(v)) for c, v in value.items()}
    for column in COLUMNS[1:]:
        if not finite[column]:
            kind = "missing value (NaN)" if np.isnan(value[column]) else f"infinite value ({value[column]})"
            out.append((column, f"{kind}; every {column} must be a finite number"))
    for column in PRICES:
        if finite[column] and value[column] <= 0:
            out.append((column, f"{column} {value[column]!r} is not positive; prices must be > 0"))
    o, h, lo, c = value["open"], value["high"], value["low"], value["close"]
    if all(finite[k] for k in PRICES):
        if h < max(o, c):
            out.append(("high", f"high {h!r} is below max(open, close) = {max(o, c)!r}"))
        if lo > min(o, c):
            out.append(("low", f"low {lo!r} is above min(open, close) = {min(o, c)!r}"))
    if finite["volume"] and value["volume"] < 0:
        out.append(("volume", f"volume {value['volume']!r} is negative"))
    return out


def _fmt_ts(ns: np.integer) -> str:
    """ISO 8601 UTC for messages; the raw integer when it is beyond what datetime can show."""
    try:
        return ns_to_datetime(int(ns)).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return f"{int(ns)} ns"
