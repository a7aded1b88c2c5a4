from datetime import UTC, datetime

from keel.data.frame import datetime_to_ns, ns_to_datetime


def test_datetime_to_ns_is_exact_where_float_timestamps_round():
    dt = datetime(2024, 3, 9, 16, 0, 0, 999_999, tzinfo=UTC)
    assert datetime_to_ns(dt) == 1_710_000_000_999_999_000
    assert ns_to_datetime(datetime_to_ns(dt)) == dt
