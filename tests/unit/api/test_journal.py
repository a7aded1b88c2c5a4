"""`keel.api.journal`'s pieces: cursors round-trip and refuse what this API never returned, the event log is read in
bounded batches up to the committed head and never past a line that is not complete, and positions are rebuilt from
fills at average cost."""

from __future__ import annotations

import pytest

from keel.api import journal as j
from keel.api.problems import Problem
from keel.journal.eventlog import EventLog


def test_a_cursor_round_trips_and_a_foreign_one_is_refused():
    key = ["2024-01-01T00:00:00.000000+00:00", "it-1"]
    assert j.decode_cursor(j.encode_cursor(key), 2) == key
    assert j.decode_cursor(None, 2) is None
    for bad in ("", "!!", j.encode_cursor(["only one"]), j.encode_cursor([1, 2])):
        with pytest.raises(Problem) as got:
            j.decode_cursor(bad, 2)
        assert got.value.status == 400


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventLog.open(path) as events:
        for i in range(10):
            events.append(ts="2024-01-01T00:00:00+00:00", run_id="r", stage="s", event=f"e{i % 3}", payload={"i": i})
        events.flush()
    return path


def test_events_are_read_in_batches_up_to_the_head_and_go_on_from_the_offset(log):
    first, offset = j.read_events(log, after=0, upto=7, limit=4)
    assert [r["seq"] for r in first] == [1, 2, 3, 4]
    rest, end = j.read_events(log, after=4, upto=7, limit=100, offset_hint=offset)
    assert [r["seq"] for r in rest] == [5, 6, 7]  # 8..10 are past the committed head
    assert j.read_events(log, after=7, upto=7, limit=100, offset_hint=end) == ([], end)


def test_a_line_not_complete_yet_ends_the_read(log):
    with open(log, "ab") as fh:
        fh.write(b'{"seq": 11, "event": "torn')
    got, _ = j.read_events(log, after=8, upto=11, limit=100)
    assert [r["seq"] for r in got] == [9, 10]
    assert j.read_events(log.with_name("missing.jsonl"), after=0, upto=5, limit=5) == ([], 0)


def test_positions_are_rebuilt_from_fills_at_average_cost():
    fills = [
        {"symbol": "A", "side": "buy", "quantity": 2.0, "price": 10.0, "fee": 0.1},
        {"symbol": "A", "side": "buy", "quantity": 2.0, "price": 20.0, "fee": 0.1},
        {"symbol": "A", "side": "sell", "quantity": 1.0, "price": 30.0, "fee": 0.1},
        {"symbol": "B", "side": "buy", "quantity": 1.0, "price": 5.0, "fee": 0.0},
        {"symbol": "B", "side": "sell", "quantity": 1.0, "price": 4.0, "fee": 0.0},
    ]
    held = j.positions_from_fills(fills)
    assert held["A"] == {"quantity": 3.0, "average_price": 15.0, "realized_pnl": 15.0, "price": 30.0}
    assert held["B"]["quantity"] == 0.0 and held["B"]["realized_pnl"] == -1.0
    acct = j.account(None, fills)
    assert acct["basis"] == "fills" and acct["equity"] is None and acct["cash"] is None
    assert [(p["symbol"], p["quantity"], p["mark_price"]) for p in acct["positions"]] == [("A", 3.0, 30.0)]
    assert acct["open_exposure"] == 90.0 and acct["realized_pnl"] == 14.0
