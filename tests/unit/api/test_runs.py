"""The journal reads over HTTP: runs, and a run's (or a session's) intents, orders, fills, positions, equity and
events — paged without gaps or repeats, filtered, bounded, and read-only (nothing created in the run folder)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from keel.api.roles import ApiRole

V = ApiRole.VIEWER


def _all(api, path: str, *, limit: int) -> list[dict]:
    items, cursor, pages = [], None, 0
    while True:
        sep = "&" if "?" in path else "?"
        got = api.get(f"{path}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else ""), as_=V)
        assert got.status_code == 200, got.text
        body = got.json()
        assert len(body["items"]) <= limit
        items.extend(body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def _rows(folder, sql: str) -> list[tuple]:
    con = sqlite3.connect(f"{(folder / 'keel.db').as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("base", ["/runs/{run}", "/sessions/s1"])
@pytest.mark.parametrize(
    ("what", "key", "sql"),
    [
        ("intents", "intent_id", "select intent_id from intents order by created_ts, intent_id"),
        ("orders", "client_order_id", "select client_order_id from orders order by submitted_ts, client_order_id"),
        ("fills", "fill_id", "select fill_id from fills order by ts, fill_id"),
    ],
)
def test_a_list_paged_through_holds_every_row_once_in_order(api, journal_run, base, what, key, sql):
    path = base.format(run=journal_run.run_id) + f"/{what}"
    got = [item[key] for item in _all(api, path, limit=7)]
    assert got == [row[0] for row in _rows(journal_run.folder, sql)]
    assert len(got) == {"intents": journal_run.intents, "orders": journal_run.orders, "fills": journal_run.fills}[what]
    assert len(got) > 7  # more than one page


def test_filters_narrow_the_list_to_what_they_name(api, journal_run):
    sold = _all(api, "/sessions/s1/fills?symbol=SYN1", limit=50)
    assert sold and {f["symbol"] for f in sold} == {"SYN1"}
    executed = _all(api, "/sessions/s1/intents?state=executed", limit=50)
    assert executed and {i["state"] for i in executed} == {"executed"}
    assert executed[0]["intent"]["intent_id"] == executed[0]["intent_id"]
    filled = _all(api, "/sessions/s1/orders?status=filled", limit=50)
    assert filled and {o["status"] for o in filled} == {"filled"}
    assert api.get("/sessions/s1/orders?status=bogus", as_=V).status_code == 422


def test_an_unknown_run_or_session_is_a_404_naming_it(api, journal_run):
    for path, name in (
        ("/runs/run-nope/orders", "no run 'run-nope'"),
        ("/sessions/ghost/fills", "no session named 'ghost'"),
    ):
        got = api.get(path, as_=V)
        assert got.status_code == 404 and got.headers["content-type"] == "application/problem+json"
        assert got.json()["detail"] == name


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x", "cursor=" + "a" * 600])
def test_bounds_are_validated_as_a_422(api, journal_run, query):
    got = api.get(f"/sessions/s1/orders?{query}", as_=V)
    assert got.status_code == 422 and got.json()["type"] == "urn:keel:problem:invalid-body"


@pytest.mark.parametrize("cursor", ["zzz", "WyJhIl0", "bm90IGpzb24"])
def test_a_cursor_this_api_never_returned_is_a_400(api, journal_run, cursor):
    got = api.get(f"/sessions/s1/intents?cursor={cursor}", as_=V)
    assert got.status_code == 400 and "is not a cursor of this list" in got.json()["detail"]


def test_runs_lists_the_sessions_and_the_run_folders_and_one_run_says_its_figures(api, journal_run, settings):
    listed = api.get("/runs", as_=V).json()
    assert listed == [{"run_id": journal_run.run_id, "session": "s1", "run_dir": str(journal_run.folder)}]
    one = api.get(f"/runs/{journal_run.run_id}", as_=V).json()
    assert one["run"]["status"] == "complete" and one["summary"]["run_id"] == journal_run.run_id
    assert sum(one["intents_by_state"].values()) == journal_run.intents
    assert one["journal_head_seq"] == one["summary"]["events"]


def test_positions_and_equity_agree_with_the_runs_own_report(api, journal_run):
    summary = json.loads((journal_run.folder / "summary.json").read_text())
    pos = api.get("/sessions/s1/positions", as_=V).json()
    assert pos["basis"] == "checkpoint" and pos["initial_cash"] == summary["initial_cash"]
    # as of the last checkpoint (a replay checkpoints in batches: not necessarily its last bar)
    assert pos["as_of"]["bar"] >= 0
    held = sum(p["market_value"] for p in pos["positions"])
    assert pos["equity"] == pytest.approx(pos["cash"] + held)
    assert pos["open_exposure"] == pytest.approx(sum(abs(p["market_value"]) for p in pos["positions"]))
    assert pos["pnl"] == pytest.approx(pos["equity"] - pos["initial_cash"])
    eq = api.get("/sessions/s1/equity?points=50", as_=V).json()
    assert eq["basis"] == "report" and 2 <= len(eq["points"]) <= 50
    assert round(eq["points"][-1]["equity"], 2) == summary["final_equity"]
    assert eq["max_drawdown_pct"] <= summary["max_drawdown_pct"] + 1e-9  # thinned: never deeper than every bar's
    assert eq["now"]["pnl"] == pos["pnl"]


def test_without_its_report_a_runs_equity_is_rebuilt_from_its_fills(api, journal_run):
    (journal_run.folder / "equity.parquet").unlink()
    summary = json.loads((journal_run.folder / "summary.json").read_text())
    eq = api.get("/sessions/s1/equity", as_=V).json()
    assert eq["basis"] == "fills" and len(eq["points"]) == journal_run.fills + 1
    # the point after the last fill: cash exactly as the report has it once the positions are flat
    last_fill = eq["points"][-2]
    assert summary["open_at_end"] > 0 or round(last_fill["cash"], 2) == summary["final_equity"]
    assert eq["points"][-1]["equity"] == eq["now"]["equity"]


def test_events_are_paged_by_seq_and_filtered_by_event(api, journal_run):
    first = api.get("/sessions/s1/events?after=0&limit=5", as_=V).json()
    assert [r["seq"] for r in first["items"]] == [1, 2, 3, 4, 5] and first["next_after"] == 5
    fills = api.get("/sessions/s1/events?event=order.fill&limit=1000", as_=V).json()
    assert len(fills["items"]) == journal_run.fills and fills["next_after"] is None
    assert {r["event"] for r in fills["items"]} == {"order.fill"}
    end = api.get(f"/sessions/s1/events?after={first['head_seq']}", as_=V).json()
    assert end == {"items": [], "head_seq": first["head_seq"], "next_after": None}


def test_reading_creates_nothing_in_the_run_folder(api, journal_run):
    before = sorted(p.name for p in journal_run.folder.iterdir())
    for what in ("intents", "orders", "fills", "positions", "equity", "events"):
        assert api.get(f"/sessions/s1/{what}", as_=V).status_code == 200
    assert api.get("/metrics", as_=V).status_code == 200
    assert sorted(p.name for p in journal_run.folder.iterdir()) == before


def test_a_journal_that_cannot_be_read_is_a_503_naming_the_run_not_the_control_store(api, journal_run):
    (journal_run.folder / "keel.db").write_bytes(b"not a database at all, just bytes" * 100)
    got = api.get("/sessions/s1/orders", as_=V)
    assert got.status_code == 503
    problem = got.json()
    assert problem["detail"].startswith(f"the journal of run '{journal_run.run_id}' cannot be read")
    assert "keel journal verify" in problem["hint"]
