"""A proposal travels from the strategist to the supervisor as a plain record and is validated where it is journalled:
a malformed one (a strategy's, a sizing's or an advisory model's NaN or negative size or price) is refused there with
a reason that names it, and nothing about it reaches the journal — no `intent.proposed`, no approval, no order."""

from __future__ import annotations

import math
import sqlite3
from datetime import datetime

import pytest

from helpers.scenarios import bars, events, scripted
from keel.agents import allocator
from keel.backtest.run import execute_run
from keel.domain.proposal import InvalidProposal
from keel.settings import Profile, load_settings

FIXED = {"method": "fixed_notional", "fixed_notional": 1_000}


def _run(tmp_path, driver: str):
    frames = [bars("AAA", [100.0] * 8)]
    # a batch of one: what came before the malformed proposal is committed, so the log shows where the run stopped
    cfg = load_settings(var_dir=tmp_path / "var", sizing=FIXED, journal={"batch_size": 1})
    strategy = scripted(entries={"AAA": (1, 5)}, exits={"AAA": (3,)})
    return execute_run(frames, cfg, strategy, out_dir=tmp_path / "run", profile=Profile.PAPER, driver=driver)


@pytest.mark.parametrize("driver", ["replay", "graph"])
@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"quantity": math.nan}, "quantity"),
        ({"quantity": -3.0}, "quantity"),
        ({"reference_price": math.nan}, "reference_price"),
        ({"reference_price": -100.0}, "reference_price"),
        ({"notional_cap": -50.0}, "notional_cap"),
        ({"decision_ts": datetime(2024, 1, 1)}, "decision_ts"),
    ],
)
def test_a_malformed_proposal_stops_the_run_before_anything_of_it_is_journalled(
    tmp_path, monkeypatch, driver, bad, field
):
    # The second entry (bar 5) is sized into a malformed proposal, as a sizing bug or a model's answer would make it;
    # the first round trip (entry at bar 1, exit at bar 3) went through as usual.
    real = allocator.size_entry

    def size_entry(p, ctx, **kw):
        sized = real(p, ctx, **kw)
        return sized.but(**bad) if p.decision_ts.minute == 5 else sized

    monkeypatch.setattr(allocator, "size_entry", size_entry)
    with pytest.raises(InvalidProposal, match=rf"proposal it-[0-9a-f]{{24}} of scripted \(entry buy AAA\).* {field}="):
        _run(tmp_path, driver)
    run = tmp_path / "run"
    proposed = [e["payload"]["intent"] for e in events(_Result(run), "intent.proposed")]
    assert [p["decision_ts"][11:16] for p in proposed] == ["00:01", "00:03"]  # never the malformed one
    with sqlite3.connect(run / "keel.db") as con:
        rows = con.execute("select payload from intents").fetchall()
        orders = con.execute("select count(*) from orders").fetchone()[0]
    assert len(rows) <= 2 and all('"00:05' not in payload for (payload,) in rows) and orders <= 2


def test_the_same_run_with_valid_proposals_journals_all_three(tmp_path):
    result = _run(tmp_path, "replay")
    assert len(events(result, "intent.proposed")) == 3
    assert sorted(result.summary.intents_by_state.items()) == [("executed", 3)]


class _Result:
    """What `events` reads of a run result: its folder (a run that stopped has no result)."""

    def __init__(self, run_dir):
        self.run_dir = run_dir
