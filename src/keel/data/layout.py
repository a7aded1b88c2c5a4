"""Which column of a file holds what: its header (or a headerless first row) mapped to the canonical columns.

Exporters name the same columns differently ("Date", "<CLOSE>", "open_time", an unnamed pandas index), and ccxt
or Binance dumps have no header at all. This module decides from the names alone, before any cell is read, where
the timestamp, the prices and the optional volume are, and refuses a header it cannot map without guessing (two
'close' columns, volume under another name, a missing price), so a file is never loaded with its columns mixed up.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from keel.data.quality import COLUMNS, PRICES
from keel.domain.errors import DataError

__all__ = ["PANDAS_INDEX", "Layout", "headerless", "is_data_row", "map_header"]

PANDAS_INDEX = "__index_level_0__"
"""The column name pyarrow gives a pandas index that had no name."""

_NOTE_SERVER_CLOCK = "times have no zone (MetaTrader-style exports use the trade server's clock); read as UTC"
_REQUIRED = ("timestamp", *PRICES)
# Timestamp column names, in order of preference when a file has several (e.g. "timestamp" and "date").
# "date" together with "time" means separate date and time-of-day columns.
_TIME_NAMES = ("timestamp", "datetime", "open_time", "open time", "date", "time")
# What exporters call a column that was the (unnamed) index: pandas to_csv, read_csv round trips, pyarrow.
_UNNAMED_FIRST = ("", "unnamed: 0")

# Files without a header, by column count: what each column is, and the note saying how the file was read.
_CCXT = COLUMNS  # ccxt's fetch_ohlcv writes the canonical order
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

# A cell that is a number: a first row of nothing else is data, not a header.
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
# A column that may hold volume under another name ("Vol", "Volume BTC", "quote_volume"), but not "volatility".
_VOLUME_LIKE = re.compile(r"volume|(^|[^a-z])vol([^a-z]|$)")


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each role's column sits in the file, what the file calls it, and what reading it assumed.

    Roles: timestamp, open, high, low, close, and when present volume, tick_volume (MetaTrader's <TICKVOL>)
    and time (a time-of-day column; "timestamp" is then the date column).
    """

    position: dict[str, int]
    header: dict[str, str]
    notes: tuple[str, ...] = ()


def _normalize(name: str) -> str:
    """How a header name is compared: no BOM, no padding, no MetaTrader angle brackets, lower case."""
    n = name.replace("\ufeff", "").strip()
    if len(n) >= 2 and n[0] == "<" and n[-1] == ">":
        n = n[1:-1].strip()
    return n.lower()


def _listing(names: Sequence[str]) -> str:
    """Names as an error message lists them: quoted, comma-separated."""
    return ", ".join(repr(n) for n in names) or "none"


def map_header(
    source: str, names: list[str], *, index_column: str | None = None, timestamp_column: str | None = None
) -> Layout:
    """Map the file's header to the roles, or explain what is missing or ambiguous.

    `index_column` is the column a Parquet file's pandas metadata names as its index: the timestamp when no
    column is named like one. `timestamp_column` (any case) overrides the choice of the timestamp column.
    """
    normalized = [_normalize(n) for n in names]
    # Angle-bracket headers are MetaTrader's (and Finam's): <VOL> is volume there, <TICKVOL> its tick count.
    metatrader = any(n.strip().startswith("<") and n.strip().endswith(">") for n in names)
    accepted: dict[str, tuple[str, ...]] = {c: (c,) for c in PRICES}
    accepted["volume"] = ("volume", "vol") if metatrader else ("volume",)
    if metatrader:
        accepted["tick_volume"] = ("tickvol",)
    position: dict[str, int] = {}
    for role, aliases in accepted.items():
        found = [i for i, n in enumerate(normalized) if n in aliases]
        if len(found) > 1:
            raise DataError(
                source,
                f"columns {_listing([names[i] for i in found])} all look like '{role}'; keep one",
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
        header[role] = role if normalized[i] in (*_UNNAMED_FIRST, PANDAS_INDEX) else shown
    return Layout(position, header, (_NOTE_SERVER_CLOCK,) if metatrader else ())


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
                f"columns {_listing([names[i] for i in found])} are all named '{timestamp_column}'; keep one",
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
    """What is missing, what the file has, and, when the header looks like data, how to make it a header."""
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


def is_data_row(fields: list[str]) -> bool:
    """A first row of numbers only is data (ccxt, Binance); "0,1,2,..." is pandas' header of unnamed columns."""
    if len(fields) < 2 or not all(_NUMBER.fullmatch(f.strip()) for f in fields):
        return False
    return [f.strip() for f in fields] != [str(i) for i in range(len(fields))]


def headerless(source: str, count: int) -> tuple[tuple[str, ...], str]:
    """The first row is all numbers, so it is data: the column count says which exporter's layout it is."""
    if count not in _HEADERLESS:
        raise DataError(
            source,
            f"the first row is all numbers, so the file has no header, but it has {count} columns; a file without "
            "a header must be timestamp, open, high, low, close[, volume] (5 or 6 columns, as ccxt's fetch_ohlcv "
            "writes) or a Binance kline file (12 columns); otherwise add a header row naming the columns",
        )
    return _HEADERLESS[count]
