"""Columnar OHLCV: the shape market data takes inside the replay hot path.

Bars stay as numpy arrays from load to decision so indicators and signals are computed vectorized, ahead of
the loop; the per-bar loop only reads scalars at the bars where something can happen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

NS_PER_SECOND = 1_000_000_000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def datetime_to_ns(dt: datetime) -> int:
    """Exact int64 nanoseconds of an aware datetime (no float rounding: `timestamp()` can be off by 1 µs)."""
    return (dt - _EPOCH) // _MICROSECOND * 1_000


def ns_to_datetime(ns: int) -> datetime:
    """UTC datetime of an int64 nanosecond epoch timestamp (microsecond precision)."""
    return datetime.fromtimestamp(ns // 1_000 / 1_000_000, tz=UTC)


@dataclass(frozen=True, slots=True, eq=False)
class OHLCV:
    """Validated bars of one symbol. `ts` is int64 nanoseconds since the epoch, UTC, strictly increasing.

    `has_volume` is False when the source had no volume column: `volume` is then all zeros, and anything that
    reads volume (a participation cap, a volume filter) must know it is not real. `notes` are what the loader
    did to read the file (no volume, rows reversed, tick volume used, ...), for the run summary to show.
    """

    symbol: str
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    source: str = "memory"
    has_volume: bool = True
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def slice(self, start: int, stop: int) -> OHLCV:
        return OHLCV(
            self.symbol,
            self.ts[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.volume[start:stop],
            self.source,
            has_volume=self.has_volume,
            notes=self.notes,
        )

    def fingerprint(self) -> str:
        """A stable digest of the data, so a run's evidence names exactly what it read.

        A frame without volume hashes a marker after its arrays, so it never shares a digest with the same bars
        at zero volume; frames with volume keep the digest (and so the run ids) they had before the flag existed.
        Notes are not hashed: they describe how the data was read, not what it is.
        """
        import hashlib

        h = hashlib.sha256(self.symbol.encode())
        for arr in (self.ts, self.open, self.high, self.low, self.close, self.volume):
            h.update(np.ascontiguousarray(arr).tobytes())
        if not self.has_volume:
            h.update(b"\x00has_volume=false")
        return h.hexdigest()
