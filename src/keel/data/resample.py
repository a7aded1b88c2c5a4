"""Bars of one timeframe into a longer one (1m into 5m, 1h, 1d, ...), without look-ahead.

The convention is the store's and the backtests': a bar is labelled with its open time and its values are known at
its close (label + timeframe). A target bar labelled L aggregates exactly the source bars labelled in [L, L + T):
first open, highest high, lowest low, last close, summed volume. Bins are aligned to UTC boundaries (the epoch; whole
weeks start on Mondays), so an hour bar is 10:00 to 11:00 whatever the first source bar was.

No look-ahead, in two rules:
- a target bar holds no source bar from after its close (the bins above);
- a target bar is emitted only when its bin has closed within the source data: the last source bar's close is at or
  after the bin's end. A last bin the data stops inside is still forming (its high, low and close would change) and is
  dropped, and counted. So resampling a prefix of a series gives a prefix of the resampled series.

A bin with fewer source bars than it should have (a gap inside it, or the data starting inside it) is incomplete: kept
by default, as exchanges build their own long bars from what traded, and listed; `drop_incomplete` leaves them out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keel.data.frame import OHLCV
from keel.data.store import DatasetKey, DataStore, Timeframe, Written
from keel.domain.errors import InputError

__all__ = ["Resampled", "resample", "resample_dataset"]


@dataclass(frozen=True, slots=True)
class Resampled:
    """The target bars, and what was left out or is short: the forming last bin, the incomplete bins."""

    frame: OHLCV
    #: source bars of a last bin that had not closed in the data (not in `frame`)
    forming_bars: int
    #: open times of the bins with fewer source bars than the timeframes imply (in `frame` unless dropped)
    incomplete: tuple[int, ...]
    dropped_incomplete: bool


def resample(frame: OHLCV, source: Timeframe, target: Timeframe, *, drop_incomplete: bool = False) -> Resampled:
    """`frame` (bars of `source`, each on its grid) as bars of `target`, a whole multiple of `source`."""
    if target.seconds <= source.seconds or target.seconds % source.seconds:
        raise InputError(
            f"cannot resample {source} bars into {target}: the target must be a whole multiple of {source}, longer "
            "than it",
            hint=f"e.g. {Timeframe(source.seconds * 5)} or {Timeframe(source.seconds * 60)}",
        )
    ts = np.asarray(frame.ts)
    off = np.flatnonzero(source.floor(ts) != ts)
    if off.size:
        raise InputError(
            f"{frame.source}: the bar at row {int(off[0]) + 1} does not open on a {source} boundary (UTC), so it "
            f"would straddle two {target} bars",
            hint="only bars aligned to UTC boundaries can be resampled",
        )
    empty = np.empty(0, dtype=np.int64)
    if len(ts) == 0:
        return Resampled(_frame(frame, empty, *[np.empty(0)] * 5), 0, (), drop_incomplete)

    bins = target.floor(ts)
    starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
    labels = bins[starts]
    counts = np.diff(np.r_[starts, len(ts)])
    ends = np.r_[starts[1:], len(ts)] - 1
    o = np.asarray(frame.open)[starts]
    h = np.maximum.reduceat(np.asarray(frame.high), starts)
    lo = np.minimum.reduceat(np.asarray(frame.low), starts)
    c = np.asarray(frame.close)[ends]
    v = np.add.reduceat(np.asarray(frame.volume), starts)

    # The last bin has closed only when the data reaches its end: the last source bar closes at or after it.
    closed = np.ones(len(labels), dtype=bool)
    forming = 0
    if int(ts[-1]) + source.ns < int(labels[-1]) + target.ns:
        closed[-1] = False
        forming = int(counts[-1])
    expected = target.seconds // source.seconds
    short = closed & (counts < expected)
    keep = closed & ~short if drop_incomplete else closed
    out = _frame(frame, labels[keep], o[keep], h[keep], lo[keep], c[keep], v[keep])
    return Resampled(out, forming, tuple(int(x) for x in labels[short]), drop_incomplete)


def _frame(like: OHLCV, ts, o, h, lo, c, v) -> OHLCV:
    arrays = [np.ascontiguousarray(ts, dtype=np.int64)]
    arrays += [np.ascontiguousarray(a, dtype=np.float64) for a in (o, h, lo, c, v)]
    for a in arrays:
        a.flags.writeable = False
    return OHLCV(like.symbol, *arrays, source=like.source, has_volume=like.has_volume)


def resample_dataset(
    store: DataStore,
    key: DatasetKey,
    target: Timeframe,
    *,
    drop_incomplete: bool = False,
    replace_existing: bool = False,
) -> tuple[Resampled, Written]:
    """Resample a stored dataset into `target` under the same source and symbol.

    A target dataset resampled earlier is rebuilt from the source as it is now (derived data is never merged); one
    that was imported or downloaded is refused unless `replace_existing`, since rebuilding it would discard its bars.
    """
    frame = store.read(key)
    result = resample(frame, key.timeframe, target, drop_incomplete=drop_incomplete)
    out = DatasetKey(key.source, key.symbol, target)
    if len(result.frame) == 0:
        raise InputError(
            f"{key} has no closed {target} bar: its {len(frame)} bars do not fill one {target} bin; nothing was written",
            hint="import or download more bars first",
        )
    source_manifest = store.manifest(key)
    derived = {
        "timeframe": key.timeframe.label,
        "content_sha256": source_manifest.content_sha256 if source_manifest else None,
        "incomplete_bins": len(result.incomplete),
        "incomplete_dropped": drop_incomplete,
        "forming_bars_dropped": result.forming_bars,
    }
    with store.writing(out):
        existing = store.manifest(out)
        if existing is not None and existing.derived_from is None and not replace_existing:
            raise InputError(
                f"{out} already holds {existing.rows} bars that were not resampled (from "
                f"{_origin(existing)}); nothing was written",
                hint="pass --replace to replace them with bars resampled from " + key.timeframe.label,
            )
        written = store.write(
            out,
            result.frame,
            action="resample",
            detail=f"from {key.timeframe.label}",
            replace_existing=True,
            derived_from=derived,
        )
    return result, written


def _origin(manifest) -> str:
    last = manifest.history[-1] if manifest.history else {}
    return f"{last.get('action', 'unknown')} {last.get('detail', '')}".strip()
