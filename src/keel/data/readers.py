"""Reading CSV (plain or gzipped) and Parquet files into Arrow columns, one per role of the file's layout.

The fast path is pyarrow's multi-threaded CSV reader with the needed columns typed up front (prices as float64,
timestamps as text), so a clean file costs one parse. Only when pyarrow refuses a cell is the file read again
as text, for the conversions to find that cell and report its row, column and value. What the first line says
(delimiter, header or not) is sniffed here; what the names mean is `layout`'s.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from keel.data.cells import first_line
from keel.data.layout import PANDAS_INDEX, Layout, headerless, is_data_row, map_header
from keel.domain.errors import DataError

__all__ = ["read_csv", "read_parquet"]

# Roles read as text: timestamps come in too many encodings for the CSV reader to type them.
_TEXT_ROLES = ("timestamp", "time")


# ---------------------------------------------------------------------------------------------------------------
# CSV


@dataclass(frozen=True, slots=True)
class _CsvHead:
    """What the first line says: column names (assigned, for a file without a header), delimiter, and more."""

    names: list[str]
    delimiter: str
    gzipped: bool
    header_row: bool  # False: the first line is data row 1
    has_data: bool
    note: str | None = None


def read_csv(p: Path, source: str, timestamp_column: str | None) -> tuple[dict[str, pa.ChunkedArray], Layout]:
    """The file's layout and one column per role: typed when every cell allows it, else all text."""
    head = _csv_head(p, source)
    layout = map_header(source, head.names, timestamp_column=timestamp_column)
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
    gzipped = p.name.lower().endswith(".gz")
    opener = gzip.open if gzipped else open
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
    if is_data_row(fields):
        names, note = headerless(source, len(fields))
        return _CsvHead(list(names), delimiter, gzipped, header_row=False, has_data=True, note=note)
    return _CsvHead(fields, delimiter, gzipped, header_row=True, has_data=not nothing_after)


class _Reread(Exception):
    """Internal: the typed fast path failed on a cell; read again as text to locate it."""


def _csv_table(p: Path, source: str, head: _CsvHead, layout: Layout, *, as_text: bool) -> pa.Table:
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
        with pa.input_stream(str(p), compression="gzip" if head.gzipped else None) as stream:
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
        message = first_line(exc)
        if "conversion error" in message and not as_text:
            raise _Reread from None
        raise DataError(source, f"cannot parse the CSV file: {message}") from None
    except (OSError, pa.ArrowException, EOFError) as exc:
        raise DataError(source, f"cannot read the file: {first_line(exc)}") from None

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


def _clip(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


# ---------------------------------------------------------------------------------------------------------------
# Parquet


def read_parquet(p: Path, source: str, timestamp_column: str | None) -> tuple[dict[str, pa.ChunkedArray], Layout]:
    """The file's layout and its columns for the roles, as typed as the file stores them; nothing else is read."""
    try:
        schema = pq.read_schema(p)
        names = schema.names
        layout = map_header(source, names, index_column=_pandas_index_column(schema), timestamp_column=timestamp_column)
        roles = list(layout.position)
        table = pq.read_table(p, columns=[names[layout.position[r]] for r in roles])
    except DataError:
        raise
    except (OSError, pa.ArrowException, EOFError) as exc:
        raise DataError(source, f"cannot read the Parquet file: {first_line(exc)}") from None
    return {role: table.column(i) for i, role in enumerate(roles)}, layout


def _pandas_index_column(schema: pa.Schema) -> str | None:
    """The column holding a pandas index (e.g. a DatetimeIndex), from the metadata pandas writes."""
    index_columns = [c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)]
    if index_columns:
        return index_columns[0]
    return PANDAS_INDEX if PANDAS_INDEX in schema.names else None
