"""Arrow columns into numpy, and the first bad cell when a column will not convert.

The readers hand over whole pyarrow columns, and every conversion (numbers here, timestamps in `timestamps`)
casts a whole column at C speed; only when that fails does it look for the cell to blame, with the helpers
below, so the error names the row and the value while a clean file pays nothing for the search.
Rows are 0-based here; the conversions report them 1-based, as the user counts data rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.domain.errors import DataError

__all__ = ["first_failure", "first_line", "first_null", "floats", "is_text"]


def first_null(col: pa.ChunkedArray) -> int | None:
    """Index of the first missing cell (empty, or an NA marker the reader turned into null), or None."""
    if col.null_count == 0:
        return None
    return int(np.argmax(pc.is_null(col).to_numpy(zero_copy_only=False)))


def first_failure(values: pa.ChunkedArray, convert: Callable[[pa.ChunkedArray], object]) -> int:
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


def is_text(t: pa.DataType) -> bool:
    """Whether cells of this type are text (and so may hold anything, to be parsed and checked)."""
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message: pyarrow's and pandas' go on with internals no user needs."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def floats(col: pa.ChunkedArray, source: str, name: str) -> np.ndarray:
    """A float64 numpy column; a missing or non-numeric cell is a DataError with its row and value."""
    if len(col) == 0:
        return np.empty(0, dtype=np.float64)
    missing = first_null(col)
    if missing is not None:
        raise DataError(
            source, "missing value (empty cell or NA marker); a number is required", row=missing + 1, column=name
        )
    t = col.type
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t):
        try:
            return col.cast(pa.float64(), safe=False).to_numpy()
        except pa.ArrowException as exc:
            raise DataError(source, f"cannot convert {t} values to numbers: {first_line(exc)}", column=name) from None
    if is_text(t):
        text = pc.utf8_trim_whitespace(col)
        try:
            return text.cast(pa.float64()).to_numpy()
        except pa.ArrowInvalid:
            i = first_failure(text, lambda part: part.cast(pa.float64()))
            raise DataError(source, f"not a number: {text[i].as_py()!r}", row=i + 1, column=name) from None
    raise DataError(source, f"holds {t} values, not numbers", column=name)
