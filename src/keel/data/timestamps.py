"""Timestamps as files write them, to int64 nanoseconds since the epoch, UTC.

One column, every encoding: Parquet timestamp and date types (any zone), epoch seconds, milliseconds,
microseconds or nanoseconds (integers, floats or text, the unit told apart by magnitude), ISO 8601 text with or
without a zone (none means UTC), year-first dates with dots or slashes, and text in an explicit `date_format`.
A day/month date (01/02/2024) without a format is refused with the two formats it could be. Each encoding gets
one vectorized cast; a column that fails is searched for its first bad cell, so the error names row and value.
Separate date and time-of-day columns are `date_and_time`'s, built on the conversions here.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.data.cells import first_failure, first_line, first_null, is_text
from keel.domain.errors import DataError, InputError

__all__ = [
    "INT64_MAX",
    "ambiguous_date",
    "check_date_format",
    "formatted_to_ns",
    "out_of_range",
    "timestamps_to_ns",
    "typed_to_ns",
]

INT64_MAX = np.iinfo(np.int64).max

# NN/NN/YYYY (or with . or -): day-first or month-first cannot be told from the text.
_AMBIGUOUS_DATE = re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})(?![\d/.-])")
_CLOCK = re.compile(r"[ T](\d{1,2}):(\d{2})(:\d{2})?")
# 2024.01.31 or 2024/01/31 (MetaTrader, some vendors): unambiguous, rewritten to ISO before parsing.
_YEAR_FIRST = re.compile(r"\d{4}[./]\d{2}[./]\d{2}")
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


def check_date_format(date_format: str | None) -> None:
    """A date format is strptime directives; "DD/MM/YYYY" would match nothing, so say how to write it."""
    if date_format is None:
        return
    if not isinstance(date_format, str) or "%" not in date_format:
        raise InputError(
            f"date format {date_format!r} has no strptime directives; write it like '%d/%m/%Y' (day first), "
            "'%m/%d/%Y %H:%M' (month first, with a time) or '%Y%m%d'"
        )


def out_of_range(source: str, value: object, *, row: int, column: str) -> DataError:
    """A timestamp beyond int64 nanoseconds since 1970, the range every later step (numpy datetime64[ns]) holds."""
    return DataError(source, _OUT_OF_RANGE.format(value=value), row=row, column=column)


def timestamps_to_ns(col: pa.ChunkedArray, source: str, name: str, date_format: str | None = None) -> np.ndarray:
    """int64 nanoseconds since the epoch, UTC, from whatever timestamp encoding the column holds.

    `date_format` applies to text only: typed columns (Parquet timestamps, epoch numbers) need none.
    """
    if len(col) == 0:
        return np.empty(0, dtype=np.int64)
    missing = first_null(col)
    if missing is not None:
        raise DataError(source, "missing timestamp", row=missing + 1, column=name)
    t = col.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return typed_to_ns(col, source, name)
    if pa.types.is_integer(t):
        try:
            whole = col.cast(pa.int64()).to_numpy()
        except pa.ArrowInvalid:  # uint64 beyond int64
            i = first_failure(col, lambda part: part.cast(pa.int64()))
            raise out_of_range(source, col[i].as_py(), row=i + 1, column=name) from None
        return _epoch_to_ns(whole, None, lambda i: str(whole[i]), source, name)
    if pa.types.is_floating(t):
        return _float_epoch_to_ns(col.cast(pa.float64()).to_numpy(), source, name)
    if is_text(t):
        text = pc.utf8_trim_whitespace(col)
        return formatted_to_ns(text, date_format, source, name) if date_format else _text_to_ns(text, source, name)
    raise DataError(source, f"holds {t} values, not timestamps; {_TIME_HINT}", column=name)


def typed_to_ns(col: pa.ChunkedArray, source: str, name: str) -> np.ndarray:
    """Arrow timestamps store UTC instants whatever their zone; a naive one is taken as UTC, a date as its midnight."""
    if pa.types.is_date(col.type):
        col = col.cast(pa.timestamp("s"))
    target = pa.timestamp("ns", tz=col.type.tz)
    try:
        return col.cast(target).cast(pa.int64()).to_numpy()
    except pa.ArrowInvalid:
        i = first_failure(col, lambda part: part.cast(target))
        raw = col.cast(pa.int64())[i].as_py()
        shown = f"{raw} ({col.type.unit} since 1970)"
        raise out_of_range(source, shown, row=i + 1, column=name) from None


# ---------------------------------------------------------------------------------------------------------------
# Epoch numbers


def _float_epoch_to_ns(values: np.ndarray, source: str, name: str) -> np.ndarray:
    """Epoch numbers stored as floats (e.g. a Parquet double column), split into whole units and a fraction."""
    missing = ~np.isfinite(values)
    if missing.any():
        i = int(np.argmax(missing))
        raise DataError(source, f"timestamp {values[i]} is not a time; {_TIME_HINT}", row=i + 1, column=name)
    huge = np.abs(values) >= 2.0**63
    if huge.any():
        i = int(np.argmax(huge))
        raise out_of_range(source, values[i], row=i + 1, column=name)
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
    too_big = magnitude >= (INT64_MAX // factor) - 1
    if too_big.any():
        i = int(np.argmax(too_big))
        raise out_of_range(source, f"{shown(i)} ({unit})", row=i + 1, column=name)
    ns = whole.astype(np.int64) * np.int64(factor)
    if billionths is not None:
        # Round the fraction to whole nanoseconds: |billionths| * factor < 1e18 fits int64.
        ns += np.sign(billionths) * ((np.abs(billionths) * factor + 500_000_000) // 1_000_000_000)
    return ns


# ---------------------------------------------------------------------------------------------------------------
# Text


def _text_to_ns(text: pa.ChunkedArray, source: str, name: str) -> np.ndarray:
    """ISO 8601 text (pyarrow's fast casts first; pandas for mixed zones), or epoch numbers written as text.

    Year-first dates with dots or slashes (2024.01.31, MetaTrader) are rewritten to ISO first; day/month dates
    (01/02/2024) are refused at once, since only the user knows which of the two comes first.
    """
    first = text[0].as_py()
    if _EPOCH_TEXT.fullmatch(first):
        return _epoch_text_to_ns(text, source, name)
    problem = ambiguous_date(first)
    if problem:
        raise DataError(source, problem, row=1, column=name)
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
    unreadable = first_null(parts)
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
        i = first_failure(whole_text, lambda part: part.cast(pa.int64()))
        raise out_of_range(source, repr(text[i].as_py()), row=i + 1, column=name) from None
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
        problem = ambiguous_date(value) or f"cannot read timestamp {value!r}; {_TIME_HINT}"
        raise DataError(source, problem, row=i + 1, column=name)
    micros = coerced.as_unit("us").asi8
    outside = np.abs(micros.astype(np.float64)) > INT64_MAX / 1_000
    i = int(np.argmax(outside))
    raise out_of_range(source, repr(values[i]), row=i + 1, column=name)


def ambiguous_date(value: str) -> str | None:
    """Why NN/NN/YYYY is refused, with the two formats it could be, written for this very value; else None."""
    m = _AMBIGUOUS_DATE.match(value)
    if m is None:
        return None
    sep, year = m.group(2), "%Y" if len(m.group(4)) == 4 else "%y"
    clock = _CLOCK.match(value, m.end())
    time = f" %H:%M{':%S' if clock.group(3) else ''}" if clock else ""
    day_first, month_first = f"%d{sep}%m{sep}{year}{time}", f"%m{sep}%d{sep}{year}{time}"
    return (
        f"cannot tell whether date {value!r} is day-first or month-first; pass a date format "
        f"(--date-format): '{day_first}' if the day comes first, '{month_first}' if the month does"
    )


# ---------------------------------------------------------------------------------------------------------------
# Explicit date formats


def formatted_to_ns(
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
        too_big = ~suspect & (np.abs(seconds) >= INT64_MAX // 10**9)
        if too_big.any():
            i = int(np.argmax(too_big))
            raise out_of_range(source, repr(text[i].as_py()), row=i + 1, column=name)
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
        raise InputError(f"date format '{fmt}' is not a valid strptime format: {first_line(exc)}") from None
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
    outside = np.abs(raw) >= INT64_MAX // factor
    if outside.any():
        j = int(np.argmax(outside))
        raise out_of_range(source, repr(values[j]), row=int(rows[j]) + 1, column=name)
    return raw * np.int64(factor)
