"""Resampling: OHLC aggregation in UTC-aligned bins labelled by their open time, and never a look into the future."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.data.files import write_csv
from keel.data.frame import OHLCV
from keel.data.resample import resample, resample_dataset
from keel.data.store import DatasetKey, DataStore, Timeframe, import_file
from keel.domain.errors import InputError
from unit.data.samples import MINUTE, T0

M1, M5, H1 = Timeframe(60), Timeframe(300), Timeframe(3600)


def series(n: int, *, start: int = T0, seed: int = 0, drop: tuple[int, ...] = ()) -> OHLCV:
    """n random but valid 1m bars from `start`, less the rows in `drop`."""
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) + rng.uniform(0, 1, n)
    low = np.minimum(open_, close) - rng.uniform(0, 1, n)
    volume = rng.uniform(0, 10, n)
    keep = np.setdiff1d(np.arange(n), drop)
    ts = start + np.arange(n, dtype=np.int64) * MINUTE
    return OHLCV("BTC", ts[keep], open_[keep], high[keep], low[keep], close[keep], volume[keep])


def test_five_minute_bars_take_the_first_open_the_extremes_the_last_close_and_the_summed_volume():
    src = series(10)
    out = resample(src, M1, M5).frame
    assert list(out.ts) == [T0, T0 + 5 * MINUTE]
    for k, (a, b) in enumerate([(0, 5), (5, 10)]):
        assert out.open[k] == src.open[a] and out.close[k] == src.close[b - 1]
        assert out.high[k] == src.high[a:b].max() and out.low[k] == src.low[a:b].min()
        assert out.volume[k] == pytest.approx(src.volume[a:b].sum())


def test_a_last_bin_the_data_ends_inside_has_not_closed_and_is_dropped():
    result = resample(series(13), M1, M5)
    assert list(result.frame.ts) == [T0, T0 + 5 * MINUTE] and result.forming_bars == 3


def test_a_last_bin_whose_final_bar_is_there_has_closed_even_with_a_gap_inside():
    result = resample(series(10, drop=(6,)), M1, M5)
    assert len(result.frame) == 2 and result.forming_bars == 0 and result.incomplete == (T0 + 5 * MINUTE,)


def test_bins_are_aligned_to_utc_boundaries_not_to_the_first_bar():
    result = resample(series(12, start=T0 + 3 * MINUTE), M1, M5)
    assert list(result.frame.ts) == [T0, T0 + 5 * MINUTE, T0 + 10 * MINUTE]
    assert result.incomplete == (T0,)  # the data starts inside the first bin


def test_incomplete_bins_are_kept_and_listed_or_dropped_when_asked():
    src = series(20, drop=(2, 11))
    kept = resample(src, M1, M5)
    dropped = resample(src, M1, M5, drop_incomplete=True)
    assert kept.incomplete == (T0, T0 + 10 * MINUTE) and len(kept.frame) == 4
    assert list(dropped.frame.ts) == [T0 + 5 * MINUTE, T0 + 15 * MINUTE] and dropped.dropped_incomplete


def test_a_bin_with_no_source_bar_at_all_has_no_bar():
    out = resample(series(15, drop=tuple(range(5, 10))), M1, M5).frame
    assert list(out.ts) == [T0, T0 + 10 * MINUTE]


def test_weekly_bars_start_on_mondays():
    monday = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp()) * 10**9
    days = OHLCV("X", monday + np.arange(14, dtype=np.int64) * 86_400 * 10**9, *[np.full(14, 1.0)] * 4, np.ones(14))
    out = resample(days, Timeframe(86_400), Timeframe(604_800)).frame
    assert list(out.ts) == [monday, monday + 7 * 86_400 * 10**9] and list(out.volume) == [7.0, 7.0]


@pytest.mark.parametrize(("source", "target"), [(M5, M1), (M5, M5), (Timeframe(120), Timeframe(300))])
def test_a_target_that_is_not_a_longer_whole_multiple_is_refused(source, target):
    with pytest.raises(InputError) as info:
        resample(series(10), source, target)
    assert "whole multiple" in info.value.message


def test_bars_off_their_utc_boundary_cannot_be_resampled():
    src = series(10, start=T0 + 30 * 10**9)
    with pytest.raises(InputError) as info:
        resample(src, M1, M5)
    assert "row 1 does not open on a 1m boundary" in info.value.message


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=300),
    cut=st.integers(min_value=1, max_value=300),
    start=st.integers(min_value=0, max_value=59),
    drops=st.lists(st.integers(min_value=0, max_value=299), max_size=30),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_a_resampled_bar_never_uses_a_row_from_after_its_close_and_a_prefix_resamples_to_a_prefix(
    n, cut, start, drops, seed
):
    src = series(n, start=T0 + start * MINUTE, seed=seed, drop=tuple(d for d in drops if d < n - 1))
    full = resample(src, M1, M5).frame
    ts = np.asarray(src.ts)
    for k, label in enumerate(full.ts):
        rows = (ts >= label) & (ts < label + 5 * MINUTE)  # exactly the bars inside [label, label + 5m)
        assert full.open[k] == src.open[rows][0] and full.close[k] == src.close[rows][-1]
        assert full.high[k] == src.high[rows].max() and full.low[k] == src.low[rows].min()
        # the bar exists only once the data has reached its close
        assert ts[-1] + MINUTE >= label + 5 * MINUTE
    # What was known at any earlier time resamples to the bars of the full series that had closed by then.
    prefix = src.slice(0, min(cut, len(src)))
    early = resample(prefix, M1, M5).frame
    known = int(prefix.ts[-1]) + MINUTE
    closed = np.asarray(full.ts) + 5 * MINUTE <= known
    np.testing.assert_array_equal(early.ts, np.asarray(full.ts)[closed])
    np.testing.assert_array_equal(early.close, np.asarray(full.close)[closed])
    np.testing.assert_array_equal(early.high, np.asarray(full.high)[closed])


# ------------------------------------------------------------------------------------------------ the store


@pytest.fixture
def store(tmp_path) -> DataStore:
    s = DataStore(tmp_path / "home")
    import_file(s, write_csv(series(200).slice(0, 130), tmp_path / "btc.csv"), source="files")
    return s


KEY = DatasetKey("files", "BTC", M1)


def test_a_stored_dataset_resamples_into_a_dataset_that_records_where_it_came_from(store):
    result, written = resample_dataset(store, KEY, H1)
    m = written.manifest
    assert (m.timeframe, m.rows, result.forming_bars) == ("1h", 2, 10)
    assert (
        m.derived_from["timeframe"] == "1m" and m.derived_from["content_sha256"] == store.manifest(KEY).content_sha256
    )
    assert store.read(DatasetKey("files", "BTC", H1)).close[-1] == store.read(KEY).close[119]


def test_resampling_again_rebuilds_the_derived_dataset_from_the_source_as_it_is_now(store, tmp_path):
    resample_dataset(store, KEY, H1)
    import_file(store, write_csv(series(200), tmp_path / "more.csv"), source="files", symbol="BTC")
    _, written = resample_dataset(store, KEY, H1)
    assert written.manifest.rows == 3 and written.replaced


def test_resampling_over_an_imported_dataset_is_refused_without_replace(store, tmp_path):
    hourly = resample(series(200).slice(0, 130), M1, H1).frame
    import_file(store, write_csv(hourly, tmp_path / "btc_hourly.csv"), source="files", symbol="BTC")
    with pytest.raises(InputError) as info:
        resample_dataset(store, KEY, H1)
    assert "were not resampled" in info.value.message and "--replace" in info.value.hint
    _, written = resample_dataset(store, KEY, H1, replace_existing=True)
    assert written.manifest.derived_from is not None


def test_too_few_bars_for_one_closed_bar_writes_nothing(store):
    with pytest.raises(InputError) as info:
        resample_dataset(store, KEY, Timeframe(86_400))
    assert "no closed 1d bar" in info.value.message
    assert not store.exists(DatasetKey("files", "BTC", Timeframe(86_400)))


def test_resampling_a_dataset_that_is_not_there_says_how_to_find_one(tmp_path):
    with pytest.raises(InputError) as info:
        resample_dataset(DataStore(tmp_path), KEY, H1)
    assert "no dataset files/BTC/1m" in info.value.message and "keel data list" in info.value.hint
