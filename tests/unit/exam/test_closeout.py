"""Closeout files: written atomically, rewritten only over Keel's own, and a foreign file of the name refused."""

from __future__ import annotations

import json

import pytest

from keel.domain.errors import InputError
from keel.exam.closeout import KIND, MD_MARKER, refuse_foreign, render_markdown, write_closeout


def closeout(violations: int = 0, drill: dict | None = None) -> dict:
    metrics = {
        "intents_proposed": 4,
        "orders": 3,
        "fills": 3,
        "trades": 1,
        "pnl": -12.5,
        "total_return_pct": -0.0125,
        "max_drawdown_pct": 0.02,
        "open_at_end": 0,
    }
    session = {
        **metrics,
        "name": "exam-2024-03-02-sma_cross",
        "ended": "its bars ran out",
        "run_id": "run-1",
        "blocked_top": {"MAX_EXPOSURE": 2},
        "approvals": {"requests": 3, "approved": 2, "rejected": 1, "expired": 0, "refused": 0, "executed": 2},
        "shadow_auto": {
            "decided": 3,
            "agreed": 2,
            "agreement_rate": 2 / 3,
            "disagreements": [{"intent_id": "it-1", "auto": "approve", "operator": "rejected", "kind": "unsafe"}],
            "promotion": {"met": False, "reasons": ["3 operator decisions"]},
        },
    }
    strategy = {
        "strategy": "sma_cross",
        "rules": {
            "entry": "buy on a cross",
            "exit": "sell on a cross",
            "stop": "waived",
            "sizing": "fixed",
            "halt": "limits",
        },
        "session": session,
        "replay": {**metrics, "pnl": 3.0},
        "gates": ["journal_verifies"],
        "violations": [
            {
                "gate": "positions_within_limit",
                "run": "session",
                "intent_id": None,
                "order": None,
                "what": "3 positions open",
            }
        ]
        * violations,
        "scorecard": {"met": violations == 0, "reasons": []},
    }
    return {
        "exam": "exam",
        "day": "2024-03-02",
        "symbols": ["AAA"],
        "bars": 96,
        "start": "s",
        "end": "e",
        "drill": drill,
        "top_n": 5,
        "violations": violations,
        "strategies": [strategy],
    }


def test_both_files_are_written_marked_as_keels_and_rewritten_over_themselves(tmp_path):
    folder = tmp_path / "2024-03-02"
    json_path, md_path = write_closeout(folder, closeout())
    body = json.loads(json_path.read_text())
    assert body["kind"] == KIND and body["day"] == "2024-03-02" and body["strategies"][0]["session"]["orders"] == 3
    assert md_path.read_text().splitlines()[0] == MD_MARKER
    write_closeout(folder, closeout(violations=1))  # its own files: rewritten
    assert json.loads(json_path.read_text())["violations"] == 1
    assert sorted(p.name for p in folder.iterdir()) == ["closeout.json", "closeout.md"]  # no temporary left


@pytest.mark.parametrize("name", ["closeout.json", "closeout.md"])
def test_a_file_keel_did_not_write_is_never_overwritten(tmp_path, name):
    folder = tmp_path / "2024-03-02"
    folder.mkdir()
    (folder / name).write_text("my own notes\n")
    with pytest.raises(InputError, match=f"{name} exists and was not written by keel exam"):
        write_closeout(folder, closeout())
    assert (folder / name).read_text() == "my own notes\n"
    with pytest.raises(InputError):
        refuse_foreign(folder)


def test_the_markdown_says_pass_or_fail_drill_or_people_and_lists_every_violation():
    passed = render_markdown(closeout())
    assert "**PASSED: zero safety-gate violations**" in passed and "answered by people" in passed
    assert "`MAX_EXPOSURE` 2" in passed and "2 of 3 decisions (66.7%)" in passed and "(unsafe)" in passed
    failed = render_markdown(closeout(violations=2, drill={"answer": "approve", "actor": "drill"}))
    assert "**FAILED: 2 violation(s)**" in failed and "DRILL" in failed
    assert failed.count("`positions_within_limit` (session, -): 3 positions open") == 2
