"""The A/B disagreement arithmetic: which decision points count, and when two pieces of advice differ."""

from __future__ import annotations

import pytest

from keel.llm.ab import SIZE_TOLERANCE, advice_points, differs, disagreement

TS = "2024-01-01T00:0{}:00.000000+00:00"


def strategist_call(minute: int, bounds: dict[str, float], taken: dict[str, float], *, used: bool = True) -> dict:
    return {
        "ts": TS.format(minute),
        "payload": {
            "stage": "strategist_llm",
            "used": used,
            "bounds": {s: {"sides": ["buy"], "max_quantity": q} for s, q in bounds.items()},
            "proposals": [{"symbol": s, "quantity": q} for s, q in taken.items()] if used else [],
        },
    }


def critic_call(minute: int, symbol: str, verdict: str | None) -> dict:
    return {
        "ts": TS.format(minute),
        "payload": {
            "stage": "critic_llm",
            "used": verdict is not None,
            "verdict": verdict,
            "about": {"symbols": [symbol], "intent_ids": [f"it-{symbol}-{minute}"]},
        },
    }


def test_each_symbol_a_strategist_was_offered_is_a_decision_point():
    points = advice_points("strategist", [strategist_call(1, {"A": 2.0, "B": 4.0}, {"A": 1.0, "B": 0.0})])
    assert points == {
        (TS.format(1), "A"): {"answer": True, "take": True, "fraction": 0.5},
        (TS.format(1), "B"): {"answer": True, "take": False, "fraction": 0.0},
    }
    failed = advice_points("strategist", [strategist_call(2, {"A": 2.0}, {}, used=False)])
    assert failed == {(TS.format(2), "A"): {"answer": False}}
    # another stage's calls are not this role's points
    assert advice_points("strategist", [critic_call(1, "A", "APPROVE")]) == {}


@pytest.mark.parametrize(
    ("a", "b", "kind"),
    [
        ({"answer": True, "take": True, "fraction": 0.5}, {"answer": True, "take": False, "fraction": 0.0}, "action"),
        ({"answer": True, "take": True, "fraction": 0.5}, {"answer": True, "take": True, "fraction": 0.75}, "size"),
        (
            {"answer": True, "take": True, "fraction": 0.5},
            {"answer": True, "take": True, "fraction": 0.5 + SIZE_TOLERANCE / 2},
            None,
        ),
        ({"answer": True, "take": False, "fraction": 0.0}, {"answer": False}, "fallback"),
        ({"answer": False}, {"answer": False}, None),  # both fell back: the same deterministic decision
        ({"answer": True, "take": False, "fraction": 0.0}, {"answer": True, "take": False, "fraction": 0.0}, None),
    ],
)
def test_when_two_strategist_answers_differ(a, b, kind):
    assert differs("strategist", a, b) == kind
    assert differs("strategist", b, a) == kind


def test_critic_verdicts_differ_by_verdict():
    assert differs("critic", {"answer": True, "verdict": "REJECT"}, {"answer": True, "verdict": "APPROVE"}) == "verdict"
    assert differs("critic", {"answer": True, "verdict": "APPROVE"}, {"answer": True, "verdict": "APPROVE"}) is None
    assert differs("outlook", {"answer": True, "triggers": ["x"]}, {"answer": True, "triggers": []}) == "triggers"


def test_the_rate_counts_points_asked_in_both_arms_only():
    a = advice_points(
        "critic",
        [
            critic_call(1, "A", "APPROVE"),
            critic_call(2, "A", "REJECT"),
            critic_call(3, "A", None),
            critic_call(4, "B", "APPROVE"),
        ],
    )
    b = advice_points(
        "critic",
        [
            critic_call(1, "A", "APPROVE"),
            critic_call(2, "A", "APPROVE"),
            critic_call(3, "A", "APPROVE"),
            critic_call(5, "C", "REJECT"),
        ],
    )
    d = disagreement("critic", ("v1", "v2"), a, b)
    assert d["points_in_both"] == 3
    assert d["points_only_in"] == {"v1": 1, "v2": 1}
    assert d["disagree"] == 2 and d["rate"] == pytest.approx(2 / 3, abs=1e-6)
    assert d["by_kind"] == {"fallback": 1, "verdict": 1}
    assert [(p["ts"][14:16], p["kind"], p["v1"], p["v2"]) for p in d["points"]] == [
        ("02", "verdict", {"answer": True, "verdict": "REJECT"}, {"answer": True, "verdict": "APPROVE"}),
        ("03", "fallback", {"answer": False}, {"answer": True, "verdict": "APPROVE"}),
    ]


def test_no_point_in_both_arms_has_no_rate():
    a = advice_points("critic", [critic_call(1, "A", "APPROVE")])
    b = advice_points("critic", [critic_call(2, "A", "APPROVE")])
    d = disagreement("critic", ("v1", "v2"), a, b)
    assert d["rate"] is None and d["points_in_both"] == 0 and d["disagree"] == 0
