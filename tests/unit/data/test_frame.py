from datetime import UTC, datetime

from keel.data.frame import datetime_to_ns, ns_to_datetime


def test_datetime_to_ns_is_exact_where_float_timestamps_round():
    dt = datetime(2024, 3, 9, 16, 0, 0, 999_999, tzinfo=UTC)
    assert datetime_to_ns(dt) == 1_710_000_000_999_999_000
    assert ns_to_datetime(datetime_to_ns(dt)) == dt


def _bars(**kwargs):
    import numpy as np

    from keel.data.frame import OHLCV

    n = 4
    close = 100.0 + np.arange(n, dtype=np.float64)
    return OHLCV("X", np.arange(n, dtype=np.int64), close, close + 1, close - 1, close, np.zeros(n), **kwargs)


def test_a_frame_has_volume_and_no_notes_by_default():
    bars = _bars()
    assert bars.has_volume is True and bars.notes == ()


def test_slice_carries_has_volume_and_notes():
    part = _bars(source="f.csv", has_volume=False, notes=("no volume column",)).slice(1, 3)
    assert len(part) == 2 and part.source == "f.csv"
    assert part.has_volume is False and part.notes == ("no volume column",)


def test_fingerprint_tells_missing_volume_from_zero_volume_and_keeps_existing_digests():
    import hashlib

    bars = _bars()
    expected = hashlib.sha256(b"X")
    for arr in (bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume):
        expected.update(arr.tobytes())
    assert bars.fingerprint() == expected.hexdigest()  # frames with volume keep the digest they always had
    assert _bars(has_volume=False).fingerprint() != bars.fingerprint()
    assert _bars(notes=("a note",)).fingerprint() == bars.fingerprint()  # notes describe, they are not data
