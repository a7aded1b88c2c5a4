"""A session obeys an approved limit override from its next decision until the override expires, and journals what
is in force (CONTROLS #11); an override still awaiting its second approver, or expired, changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from helpers.scenarios import bars, events, intent_rows, scripted, settings_for
from keel.backtest.run import execute_run
from keel.risk.overrides import approve, propose
from keel.risk.roles import RiskRole
from keel.runtime.control import open_guard
from keel.settings import Mode, Profile

ROLE = RiskRole.of(["alice", "bob"])


def _session(tmp_path, *, override: str | None):
    """Two entries at bar 1 (AAA, BBB) with room for one open position; `override`: none, "pending", "approved" or
    "expired" (an override of max_open_positions to 2)."""
    cfg = settings_for(
        tmp_path / "run",
        sizing={"method": "fixed_notional", "fixed_notional": 1_000},
        risk={"max_open_positions": 1, "require_stop": False, "operators": ["alice", "bob"]},
        broker={"fees_bps": 0, "slippage_bps": 0, "participation_cap": None},
    )
    if override is not None:
        store, _ = open_guard(cfg)
        try:
            now = datetime.now(UTC)
            proposed_at = now - timedelta(hours=1) if override == "expired" else now
            o = propose(
                store,
                limit="max_open_positions",
                value=2,
                seconds=600,
                reason="two symbols today",
                actor="alice",
                ts=proposed_at,
                role=ROLE,
                mode=Mode.PAPER,
            )
            if override in ("approved", "expired"):
                approve(store, o.override_id, actor="bob", ts=proposed_at + timedelta(seconds=1), role=ROLE)
        finally:
            store.close()
    frames = [bars(s, [100.0] * 6) for s in ("AAA", "BBB")]
    strategy = scripted(entries={"AAA": (1,), "BBB": (1,)})
    return execute_run(frames, cfg, strategy, out_dir=tmp_path / "run", mode=Mode.PAPER, profile=Profile.PAPER)


def _entries(result) -> dict[str, tuple]:
    return {row[0]: (row[2], row[4]) for row in intent_rows(result).values()}


def test_an_approved_override_loosens_the_limit_and_is_journalled(tmp_path):
    result = _session(tmp_path, override="approved")
    assert _entries(result) == {"AAA": ("executed", None), "BBB": ("executed", None)}
    (in_force,) = events(result, "risk.overrides_in_force")
    (o,) = in_force["payload"]["overrides"]
    assert (o["limit"], o["value"], o["proposed_by"], o["approved_by"]) == ("max_open_positions", 2.0, "alice", "bob")


@pytest.mark.parametrize("override", [None, "pending", "expired"])
def test_without_an_override_in_force_the_configured_limit_holds(tmp_path, override):
    result = _session(tmp_path, override=override)
    assert _entries(result) == {"AAA": ("executed", None), "BBB": ("blocked", "MAX_OPEN_POSITIONS")}
    assert events(result, "risk.overrides_in_force") == []
