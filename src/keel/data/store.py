"""The research data store: one canonical Parquet file per source, symbol and timeframe, each with its manifest.

Layout, under a data home (by default `<home>/data`, beside the control plane):

    <data home>/<source>/<SYMBOL>/<timeframe>.parquet   the bars: timestamp (ns, UTC), open, high, low, close, volume
    <data home>/<source>/<SYMBOL>/<timeframe>.json      the manifest, for people and tools (a copy)

A bar's timestamp is its open time (ccxt's, Binance's and the backtests' convention); its values are known once it
has closed, at timestamp + timeframe. The manifest (row count, first and last bar, gaps, where the bars came from,
the SHA-256 of their content) is stored inside the Parquet file's metadata too, so data and manifest are replaced in
one atomic rename: a crash leaves the old dataset or the new one, never a mix. The JSON beside it is a copy written
after the rename; where the two disagree, the Parquet file wins and the copy is rewritten.

Every dataset written here has passed the quality checks the backtests apply (`keel.data.quality`) and sits on its
timeframe's grid (each bar a whole number of timeframes after the previous one); what is missing between two bars
is a gap, counted and listed in the manifest, never filled. Reading a dataset checks its content against the
manifest's hash, so a file edited or damaged outside Keel is refused, not traded on.

Writing never overwrites silently: new bars are merged with the stored ones (a bar stored with other values is a
conflict, refused with both values), and replacing a dataset is explicit (`replace=True`). One writer at a time per
dataset (a lock file beside it); a second is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from keel.data.files import NOTE_NEWEST_FIRST, load_ohlcv
from keel.data.frame import NS_PER_SECOND, OHLCV, datetime_to_ns, ns_to_datetime
from keel.data.quality import validate_ohlcv
from keel.domain.errors import DataError, InputError, KeelError
from keel.durable import try_lock as _try_lock
from keel.durable import unlock as _unlock

__all__ = [
    "MANIFEST_KEY",
    "SCHEMA_VERSION",
    "DataStore",
    "DatasetKey",
    "Gap",
    "Manifest",
    "Timeframe",
    "Written",
    "find_gaps",
    "import_file",
    "import_frame",
    "infer_timeframe",
    "load_file",
    "prepare_import",
]

SCHEMA_VERSION = 1
MANIFEST_KEY = b"keel.manifest"
#: how many gaps a manifest lists (it always counts them all)
GAPS_LISTED = 100
#: how many past writes a manifest remembers
HISTORY_KEPT = 20

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_TIMEFRAME = re.compile(r"([1-9][0-9]*)([smhdw])")
#: 1970-01-05, the first Monday after the epoch: weeks start on Mondays, as exchanges' weekly bars do
_WEEK_ORIGIN_NS = 4 * 86_400 * NS_PER_SECOND
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SYMBOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:-]{0,63}")


# ---------------------------------------------------------------------------------------------------------------
# Timeframes


@dataclass(frozen=True, slots=True)
class Timeframe:
    """A bar length in whole seconds, written as exchanges write it: "1m", "5m", "1h", "4h", "1d", "1w"."""

    seconds: int

    def __post_init__(self) -> None:
        if not isinstance(self.seconds, int) or self.seconds < 1:
            raise InputError(f"a timeframe is a whole number of seconds >= 1, not {self.seconds!r}")

    @classmethod
    def parse(cls, text: str) -> Timeframe:
        value = str(text).strip()
        match = _TIMEFRAME.fullmatch(value)
        if match is None:
            hint = (
                "calendar months have no fixed length, so they are not a timeframe here; use 1w or 1d"
                if value.endswith("M")
                else "write a number and a unit: s, m, h, d or w (e.g. 1m, 5m, 1h, 4h, 1d, 1w)"
            )
            raise InputError(f"timeframe {value!r} is not one Keel reads", hint=hint)
        return cls(int(match.group(1)) * _UNITS[match.group(2)])

    @property
    def ns(self) -> int:
        return self.seconds * NS_PER_SECOND

    @property
    def label(self) -> str:
        """The largest unit that divides the length: 60 s is "1m", 5400 s is "90m"."""
        for unit in ("w", "d", "h", "m"):
            if self.seconds % _UNITS[unit] == 0:
                return f"{self.seconds // _UNITS[unit]}{unit}"
        return f"{self.seconds}s"

    @property
    def origin_ns(self) -> int:
        """Where bins of this length are counted from: the epoch, or a Monday for whole weeks."""
        return _WEEK_ORIGIN_NS if self.seconds % _UNITS["w"] == 0 else 0

    def floor(self, ts: np.ndarray) -> np.ndarray:
        """The open time of the bin each timestamp falls in, bins aligned to UTC boundaries."""
        origin = self.origin_ns
        return (ts - origin) // self.ns * self.ns + origin

    def __str__(self) -> str:
        return self.label


def infer_timeframe(ts: np.ndarray, source: str) -> Timeframe:
    """The bar length of a series: its most common spacing (gaps are rarer than bars), in whole seconds."""
    if len(ts) < 2:
        raise DataError(source, "one bar cannot tell its timeframe; pass it (--timeframe, e.g. 1m)")
    diffs, counts = np.unique(np.diff(ts), return_counts=True)
    spacing = int(diffs[int(np.argmax(counts))])  # ties: the shortest, np.unique sorts ascending
    if spacing % NS_PER_SECOND:
        raise DataError(source, f"bars are {spacing / NS_PER_SECOND:g} s apart: a timeframe must be whole seconds")
    return Timeframe(spacing // NS_PER_SECOND)


# ---------------------------------------------------------------------------------------------------------------
# Gaps


@dataclass(frozen=True, slots=True)
class Gap:
    """Bars missing between two stored ones: the open times of the first and the last missing bar, and how many."""

    first_ns: int
    last_ns: int
    missing: int

    def as_dict(self) -> dict[str, Any]:
        return {"from": _iso(self.first_ns), "to": _iso(self.last_ns), "missing": self.missing}


def find_gaps(ts: np.ndarray, timeframe: Timeframe) -> list[Gap]:
    """Every run of missing bars in a series on `timeframe`'s grid, oldest first."""
    if len(ts) < 2:
        return []
    step = np.diff(ts)
    where = np.flatnonzero(step > timeframe.ns)
    return [
        Gap(int(ts[i]) + timeframe.ns, int(ts[i + 1]) - timeframe.ns, int(step[i] // timeframe.ns) - 1) for i in where
    ]


def _check_grid(frame: OHLCV, timeframe: Timeframe, row_of: Callable[[int], int] | None = None) -> None:
    """Every bar a whole number of timeframes after the previous one; else the first row that is not."""
    step = np.diff(np.asarray(frame.ts))
    off = np.flatnonzero(step % timeframe.ns)
    if off.size:
        i = int(off[0]) + 1
        row = row_of(i) if row_of is not None else i + 1
        raise DataError(
            frame.source,
            f"bar at {_iso(int(frame.ts[i]))} is {_seconds(int(step[i - 1]))} after the previous one, not a whole "
            f"number of {timeframe.label} bars; pass the right --timeframe, or fix the file",
            row=row,
            column="timestamp",
        )


# ---------------------------------------------------------------------------------------------------------------
# Keys and manifests


@dataclass(frozen=True, slots=True)
class DatasetKey:
    """Which dataset: where the bars came from (an exchange id, or a name for imported files), symbol, timeframe."""

    source: str
    symbol: str
    timeframe: Timeframe

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.source):
            raise InputError(
                f"source {self.source!r} is not a usable name",
                hint="letters, digits, '.', '_' or '-', up to 64, starting with a letter or digit (e.g. binance)",
            )
        if not _SYMBOL.fullmatch(self.symbol):
            raise InputError(
                f"symbol {self.symbol!r} is not a usable name",
                hint="letters, digits and . _ - / :, up to 64 (e.g. BTC/USDT or BTCUSDT)",
            )

    @property
    def folder(self) -> str:
        """The symbol as a folder name: '/' and ':' (ccxt's BTC/USDT, BTC/USDT:USDT) become '_'."""
        return self.symbol.replace("/", "_").replace(":", "_")

    def __str__(self) -> str:
        return f"{self.source}/{self.symbol}/{self.timeframe.label}"


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a dataset holds and where it came from; stored in the Parquet file's metadata and beside it as JSON."""

    source: str
    symbol: str
    timeframe: str
    rows: int
    first_ns: int
    last_ns: int
    content_sha256: str
    has_volume: bool
    gap_count: int
    missing_bars: int
    gaps: tuple[Gap, ...]
    aligned: bool
    updated_at: str
    history: tuple[dict[str, Any], ...] = ()
    derived_from: dict[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def key(self) -> DatasetKey:
        return DatasetKey(self.source, self.symbol, Timeframe.parse(self.timeframe))

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "source": self.source,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "rows": self.rows,
            "first": _iso(self.first_ns),
            "last": _iso(self.last_ns),
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
            "content_sha256": self.content_sha256,
            "has_volume": self.has_volume,
            "aligned": self.aligned,
            "gap_count": self.gap_count,
            "missing_bars": self.missing_bars,
            "gaps": [g.as_dict() for g in self.gaps],
            "gaps_listed": len(self.gaps),
            "derived_from": self.derived_from,
            "updated_at": self.updated_at,
            "history": list(self.history),
        }

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> Manifest:
        Timeframe.parse(body["timeframe"])
        gaps = tuple(Gap(_parse_iso(g["from"]), _parse_iso(g["to"]), int(g["missing"])) for g in body.get("gaps") or ())
        return cls(
            source=str(body["source"]),
            symbol=str(body["symbol"]),
            timeframe=str(body["timeframe"]),
            rows=int(body["rows"]),
            first_ns=int(body["first_ns"]),
            last_ns=int(body["last_ns"]),
            content_sha256=str(body["content_sha256"]),
            has_volume=bool(body["has_volume"]),
            gap_count=int(body["gap_count"]),
            missing_bars=int(body["missing_bars"]),
            gaps=gaps,
            aligned=bool(body["aligned"]),
            updated_at=str(body["updated_at"]),
            history=tuple(body.get("history") or ()),
            derived_from=body.get("derived_from"),
            schema_version=int(body.get("schema_version", SCHEMA_VERSION)),
        )


@dataclass(frozen=True, slots=True)
class Written:
    """What a write did: the dataset's manifest now, bars added, bars that were already stored (same values)."""

    manifest: Manifest
    added: int
    already_stored: int
    replaced: bool = False
    path: Path = field(default=Path())
    #: what the loader assumed or changed reading the file (no volume, rows reversed, ...)
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": str(self.manifest.key),
            "path": str(self.path),
            "added": self.added,
            "already_stored": self.already_stored,
            "replaced": self.replaced,
            "notes": list(self.notes),
            "manifest": self.manifest.as_dict(),
        }


def content_hash(frame: OHLCV) -> str:
    """SHA-256 of the bars themselves (timestamps and values, not the symbol nor how the file is encoded)."""
    h = hashlib.sha256()
    for arr in (frame.ts, frame.open, frame.high, frame.low, frame.close, frame.volume):
        dtype = np.int64 if arr is frame.ts else np.float64
        h.update(np.ascontiguousarray(arr, dtype=dtype).tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# The store


class DataStore:
    """The datasets under one data home. `clock` dates the writes (a manifest's `updated_at` and history)."""

    def __init__(self, home: str | os.PathLike[str], *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.home = Path(home).expanduser()
        self._clock = clock

    # -- where ------------------------------------------------------------------------------------------

    def folder(self, key: DatasetKey) -> Path:
        return self.home / key.source / key.folder

    def path(self, key: DatasetKey) -> Path:
        return self.folder(key) / f"{key.timeframe.label}.parquet"

    def manifest_path(self, key: DatasetKey) -> Path:
        return self.folder(key) / f"{key.timeframe.label}.json"

    def exists(self, key: DatasetKey) -> bool:
        return self.path(key).is_file()

    # -- reading ----------------------------------------------------------------------------------------

    def manifest(self, key: DatasetKey) -> Manifest | None:
        """The dataset's manifest (from its Parquet file), or None when there is no such dataset."""
        path = self.path(key)
        if not path.is_file():
            return None
        manifest = _footer_manifest(path)
        if manifest.symbol != key.symbol:
            raise InputError(
                f"{path} holds {manifest.symbol!r}, not {key.symbol!r}: both symbols map to the folder '{key.folder}'",
                hint="import one of them under another --source",
            )
        return manifest

    def read(self, key: DatasetKey) -> OHLCV:
        """The dataset's bars, validated, and checked against its manifest's content hash."""
        manifest = self.manifest(key)
        if manifest is None:
            raise InputError(f"no dataset {key} in {self.home}", hint="see `keel data list`")
        path = self.path(key)
        frame = load_ohlcv(path, symbol=key.symbol)
        frame = replace(frame, has_volume=manifest.has_volume, notes=())
        if content_hash(frame) != manifest.content_sha256 or len(frame) != manifest.rows:
            raise DataError(
                str(path),
                "the bars do not match the manifest's content hash: the file was changed outside Keel or is damaged",
            )
        return frame

    def scan(self) -> tuple[list[Manifest], list[str]]:
        """Every dataset's manifest, by source, symbol and timeframe length, and a problem line per file that is not
        a readable dataset (damaged, or not written by Keel), so one bad file does not hide the others."""
        found: list[Manifest] = []
        problems: list[str] = []
        if not self.home.is_dir():
            return found, problems
        for path in sorted(self.home.glob("*/*/*.parquet")):
            try:
                found.append(_footer_manifest(path))
            except DataError as exc:
                problems.append(exc.message)
        found.sort(key=lambda m: (m.source, m.symbol, Timeframe.parse(m.timeframe).seconds))
        for manifest in found:
            self._refresh_copy(manifest)
        return found, problems

    # -- writing ----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def writing(self, key: DatasetKey) -> Iterator[None]:
        """Hold the dataset's writer lock; another writer (another keel process) is refused while it is held."""
        folder = self.folder(key)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fh = open(folder / f".{key.timeframe.label}.lock", "a+", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise KeelError(f"cannot write under {folder}: {exc.strerror or exc}") from None
        with fh:
            if not _try_lock(fh):
                raise InputError(
                    f"another keel process is writing {key} right now; nothing was written",
                    hint="wait for it to finish, then run again",
                )
            # What a writer killed mid-write left behind (never renamed into place, so never part of the dataset).
            for stale in folder.glob(f".{key.timeframe.label}.parquet.*.tmp"):
                with contextlib.suppress(OSError):
                    stale.unlink()
            try:
                yield
            finally:
                _unlock(fh)

    def write(
        self,
        key: DatasetKey,
        frame: OHLCV,
        *,
        action: str,
        detail: str,
        replace_existing: bool = False,
        derived_from: dict[str, Any] | None = None,
    ) -> Written:
        """Merge `frame` (validated, on `key`'s grid) into the dataset, or replace it when `replace_existing`.

        The caller holds `writing(key)`. Merging refuses a bar already stored with other values, and bars without
        volume into a dataset with volume (or the reverse); nothing is written then.
        """
        _check(frame, key.timeframe)
        stored = None if replace_existing else self.manifest(key)
        replacing = replace_existing and self.exists(key)
        added, same = len(frame), 0
        history: tuple[dict[str, Any], ...] = ()
        if stored is not None:
            old = self.read(key)
            frame, added, same = _merge(old, frame, key, self.path(key))
            history = stored.history
            # Bars merged into a resampled dataset make it something a new resample must not silently discard.
        elif replacing:
            previous = None
            with contextlib.suppress(DataError):  # a damaged dataset can still be replaced (another symbol's cannot)
                previous = self.manifest(key)
            history = previous.history if previous is not None else ()
        now = self._clock().astimezone(UTC)
        event = {"at": now.isoformat().replace("+00:00", "Z"), "action": action, "detail": detail, "added": added}
        if replacing:
            event["replaced"] = True
        manifest = _manifest_of(key, frame, now, (*history, event)[-HISTORY_KEPT:], derived_from)
        path = self.path(key)
        if stored is not None and added == 0:
            return Written(stored, 0, same, path=path)
        _write_atomically(path, frame, manifest)
        self._refresh_copy(manifest, force=True)
        return Written(manifest, added, same, replaced=replacing, path=path)

    def _refresh_copy(self, manifest: Manifest, *, force: bool = False) -> None:
        """Rewrite the JSON copy beside the data when it is missing or says something else (best effort)."""
        target = self.manifest_path(manifest.key)
        text = json.dumps(manifest.as_dict(), indent=2, sort_keys=True) + "\n"
        with contextlib.suppress(OSError):
            if not force and target.is_file() and target.read_text(encoding="utf-8") == text:
                return
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, target)


# ---------------------------------------------------------------------------------------------------------------
# Importing files


def import_file(
    store: DataStore,
    path: str | os.PathLike[str],
    *,
    source: str,
    symbol: str | None = None,
    timeframe: Timeframe | None = None,
    replace_existing: bool = False,
    timestamp_column: str | None = None,
    date_format: str | None = None,
) -> Written:
    """Load one file with the backtests' loader (every format it reads, every check it makes), check it sits on its
    timeframe's grid (given, or inferred from the bars' spacing), and merge it into the store (or replace)."""
    frame = load_file(path, symbol=symbol, timestamp_column=timestamp_column, date_format=date_format)
    key = prepare_import(frame, source=source, timeframe=timeframe)
    return import_frame(store, key, frame, detail=str(Path(path)), replace_existing=replace_existing)


def prepare_import(frame: OHLCV, *, source: str, timeframe: Timeframe | None = None) -> DatasetKey:
    """The dataset a loaded file goes to, once its bars are known to sit on the timeframe's grid."""
    tf = timeframe or infer_timeframe(np.asarray(frame.ts), frame.source)
    key = DatasetKey(source, frame.symbol, tf)
    n = len(frame)
    newest_first = NOTE_NEWEST_FIRST in frame.notes  # the loader reversed the rows: name them as the file has them
    _check_grid(frame, tf, (lambda i: n - i) if newest_first else None)
    return key


def import_frame(
    store: DataStore, key: DatasetKey, frame: OHLCV, *, detail: str, replace_existing: bool = False
) -> Written:
    """Store a loaded file's bars under `key` (merged, or replacing the dataset), holding its writer lock."""
    with store.writing(key):
        written = store.write(key, frame, action="import", detail=detail, replace_existing=replace_existing)
    return replace(written, notes=frame.notes)


def load_file(
    path: str | os.PathLike[str],
    *,
    symbol: str | None = None,
    timestamp_column: str | None = None,
    date_format: str | None = None,
) -> OHLCV:
    """`load_ohlcv`, with the symbol of a file named like a timeframe ("1m.parquet") asked for, not guessed."""
    p = Path(path)
    if symbol is None and _TIMEFRAME.fullmatch(p.name.split(".")[0]):
        raise DataError(str(p), "the file name is a timeframe, not a symbol; pass the symbol (--symbol)")
    return load_ohlcv(p, symbol=symbol, timestamp_column=timestamp_column, date_format=date_format)


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def _check(frame: OHLCV, timeframe: Timeframe) -> None:
    validate_ohlcv(frame)
    _check_grid(frame, timeframe)


def _merge(old: OHLCV, new: OHLCV, key: DatasetKey, where: Path) -> tuple[OHLCV, int, int]:
    """Stored bars plus new ones; a bar at a stored time must carry the stored values exactly."""
    if old.has_volume != new.has_volume:
        with_volume = (
            "the stored bars have volume and the new ones do not"
            if old.has_volume
            else ("the new bars have volume and the stored ones do not")
        )
        raise InputError(
            f"{new.source}: cannot merge into {key}: {with_volume}; nothing was written",
            hint="import it under another --source, or replace the dataset with --replace",
        )
    old_ts, new_ts = np.asarray(old.ts), np.asarray(new.ts)
    common, i_old, i_new = np.intersect1d(old_ts, new_ts, assume_unique=True, return_indices=True)
    columns = ("open", "high", "low", "close", "volume")
    if common.size:
        differs = np.zeros(common.size, dtype=bool)
        for c in columns:
            differs |= np.asarray(getattr(old, c))[i_old] != np.asarray(getattr(new, c))[i_new]
        if differs.any():
            j = int(np.argmax(differs))
            diff = ", ".join(
                f"{c} {float(getattr(old, c)[i_old[j]])!r} stored, {float(getattr(new, c)[i_new[j]])!r} new"
                for c in columns
                if getattr(old, c)[i_old[j]] != getattr(new, c)[i_new[j]]
            )
            raise InputError(
                f"{new.source}, row {int(i_new[j]) + 1}: the bar at {_iso(int(common[j]))} is already stored in "
                f"{where} with other values ({diff}); nothing was written",
                hint="pass --replace to replace the whole dataset with this file, or import it under another --source",
            )
    keep = np.ones(new_ts.size, dtype=bool)
    keep[i_new] = False
    ts = np.concatenate([old_ts, new_ts[keep]])
    order = np.argsort(ts, kind="stable")
    arrays = [ts[order]]
    for c in columns:
        arrays.append(np.concatenate([np.asarray(getattr(old, c)), np.asarray(getattr(new, c))[keep]])[order])
    merged = OHLCV(key.symbol, *arrays, source=new.source, has_volume=old.has_volume)
    _check_grid(merged, key.timeframe)
    return merged, int(keep.sum()), int(common.size)


def _manifest_of(
    key: DatasetKey,
    frame: OHLCV,
    now: datetime,
    history: tuple[dict[str, Any], ...],
    derived_from: dict[str, Any] | None,
) -> Manifest:
    ts = np.asarray(frame.ts)
    gaps = find_gaps(ts, key.timeframe)
    return Manifest(
        source=key.source,
        symbol=key.symbol,
        timeframe=key.timeframe.label,
        rows=len(frame),
        first_ns=int(ts[0]),
        last_ns=int(ts[-1]),
        content_sha256=content_hash(frame),
        has_volume=frame.has_volume,
        gap_count=len(gaps),
        missing_bars=sum(g.missing for g in gaps),
        gaps=tuple(gaps[:GAPS_LISTED]),
        aligned=bool(np.all(key.timeframe.floor(ts[:1]) == ts[:1])),
        updated_at=now.isoformat().replace("+00:00", "Z"),
        history=history,
        derived_from=derived_from,
    )


def _write_atomically(path: Path, frame: OHLCV, manifest: Manifest) -> None:
    """The bars and their manifest in one file, renamed into place: readers see the old dataset or the new one."""
    table = pa.table(
        {
            "timestamp": pa.array(np.asarray(frame.ts, dtype=np.int64), type=pa.timestamp("ns", tz="UTC")),
            **{c: pa.array(np.asarray(getattr(frame, c), dtype=np.float64)) for c in ("open", "high", "low", "close")},
            "volume": pa.array(np.asarray(frame.volume, dtype=np.float64)),
        }
    )
    body = json.dumps(manifest.as_dict(), sort_keys=True).encode()
    table = table.replace_schema_metadata({MANIFEST_KEY: body})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, str(tmp), compression="zstd")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise KeelError(f"cannot write {path}: {exc.strerror or exc}; the dataset was left as it was") from None
    with contextlib.suppress(OSError):  # the rename itself survives a power cut once the folder is synced
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _footer_manifest(path: Path) -> Manifest:
    """The manifest a dataset's Parquet file carries (its footer only is read)."""
    try:
        metadata = pq.read_schema(path).metadata or {}
        body = json.loads(metadata[MANIFEST_KEY])
        return Manifest.from_dict(body)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(str(path), f"cannot read the dataset: {exc}") from None
    except (KeyError, ValueError, TypeError, InputError):
        raise DataError(
            str(path), "no readable Keel manifest in this Parquet file: it was not written by `keel data`"
        ) from None


def _iso(ns: int) -> str:
    return ns_to_datetime(ns).isoformat().replace("+00:00", "Z")


def _parse_iso(text: str) -> int:
    return datetime_to_ns(datetime.fromisoformat(text.replace("Z", "+00:00")))


def _seconds(ns: int) -> str:
    return Timeframe(ns // NS_PER_SECOND).label if ns % NS_PER_SECOND == 0 and ns > 0 else f"{ns / 1e9:g} s"
