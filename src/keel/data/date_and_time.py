"""Separate date and time-of-day columns (MetaTrader, Finam, broker exports) made into one timestamp.

A file that splits the timestamp in two needs what a single column does not: dates that must not carry a time
(it would be counted twice), times of day in their own spellings (9:30, 0930, 093000), a range check on the sum,
and errors that point at the date or the time column, whichever holds the bad cell.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.data.cells import first_failure, first_null, is_text
from keel.data.timestamps import INT64_MAX, ambiguous_date, formatted_to_ns, out_of_range, typed_to_ns
from keel.domain.errors import DataError

__all__ = ["date_and_time_to_ns"]

# strptime directives that read a time of day (or a zone): a date format holding one spans date and time.
_TIME_DIRECTIVE = re.compile(r"%[-#^0]?[HIklMSfpPTRXrcsz]")
_NS_PER_DAY = 86_400 * 10**9


def date_and_time_to_ns(
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
        missing = first_null(col)
        if missing is not None:
            raise DataError(source, f"missing {what}", row=missing + 1, column=name)
    if date_format and _TIME_DIRECTIVE.search(date_format):
        joined = pc.binary_join_element_wise(_trimmed_text(dates), _trimmed_text(times), " ")
        detail = f" (columns '{date_name}' and '{time_name}' joined by a space)"
        return formatted_to_ns(joined, date_format, source, date_name, label="date and time", detail=detail)
    day = _dates_to_ns(dates, source, date_name, time_name, date_format)
    clock = _times_to_ns(times, source, time_name)
    outside = day > INT64_MAX - clock
    if outside.any():
        i = int(np.argmax(outside))
        shown = f"{dates[i].as_py()} {times[i].as_py()}"
        raise out_of_range(source, repr(shown), row=i + 1, column=date_name)
    return day + clock


def _trimmed_text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Cells as text without padding, whatever their type, to be joined into one string per row."""
    return pc.utf8_trim_whitespace(col if is_text(col.type) else col.cast(pa.string()))


def _dates_to_ns(col: pa.ChunkedArray, source: str, name: str, time_name: str, date_format: str | None) -> np.ndarray:
    """Midnight UTC of each date; a date that carries a time of day is refused (it would be counted twice)."""
    t = col.type
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        ns = typed_to_ns(col, source, name)
    elif is_text(t):
        text = pc.utf8_trim_whitespace(col)
        ns = (
            formatted_to_ns(text, date_format, source, name, label="date")
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
    problem = ambiguous_date(text[0].as_py())
    if problem:
        raise DataError(source, problem, row=1, column=name)
    iso = pc.replace_substring_regex(text, pattern=r"^(\d{4})[./]?(\d{2})[./]?(\d{2})$", replacement=r"\1-\2-\3")
    target = pa.timestamp("ns")
    try:
        return iso.cast(target).cast(pa.int64()).to_numpy()
    except pa.ArrowInvalid:
        i = first_failure(iso, lambda part: part.cast(target))
    value = text[i].as_py()
    problem = ambiguous_date(value) or (
        f"cannot read date {value!r}; expected a year-first date (2024-01-31, 2024.01.31, 20240131) "
        "or a date format (--date-format, e.g. '%d/%m/%Y')"
    )
    raise DataError(source, problem, row=i + 1, column=name)


def _times_to_ns(col: pa.ChunkedArray, source: str, name: str) -> np.ndarray:
    """Nanoseconds since midnight from HH:MM[:SS[.fff]], H:MM or HHMM[SS] text (or a Parquet time column)."""
    t = col.type
    if pa.types.is_time(t):
        return col.cast(pa.time64("ns")).cast(pa.int64()).to_numpy()
    if not is_text(t):
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
        i = first_failure(padded, parse)
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
