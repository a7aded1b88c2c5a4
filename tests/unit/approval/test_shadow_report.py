"""The shadow-auto report judges each request by what auto would have done and what the operator did, counts only
operators' decisions as evidence, flags rubber-stamped approvals, and states each promotion criterion that failed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from helpers.approval_contract import iid, request
from helpers.control_contract import T0
from keel.approval.shadow_report import shadow_report
from keel.control.records import ApprovalStatus
from keel.settings import load_settings

AP, RJ, EX, PE = ApprovalStatus.APPROVED, ApprovalStatus.REJECTED, ApprovalStatus.EXPIRED, ApprovalStatus.PENDING


def shadow(n, *, auto: bool | None, status=AP, review: float = 60.0, by="alice", why="fine", symbol="BTCUSDT", **kw):
    """A request as a shadow-auto session published it (`auto` None: a manual session's), then decided."""
    preview = {"published_ts": T0.isoformat()}
    if auto is not None:
        preview["auto"] = {"would_approve": auto, "max_notional": 25_000.0}
    forced = kw.pop("decided", False)
    decided = forced or status not in (PE, EX)
    return request(
        iid(n),
        symbol=symbol,
        preview=preview,
        status=status,
        decided_by=by if decided else None,
        decided_ts=T0 + timedelta(seconds=review) if decided else None,
        decision_reason=why if decided else None,
        **kw,
    )


def approval(**promotion):
    return load_settings(approval={"promotion": promotion} if promotion else {}).approval


def test_the_four_pairings_and_undecided_requests():
    report = shadow_report(
        [
            shadow(1, auto=True, status=AP),  # agree
            shadow(2, auto=True, status=RJ, why="spread too wide"),  # unsafe
            shadow(3, auto=False, status=RJ),  # agree: auto would have asked, the person said no
            shadow(4, auto=False, status=AP, why="size is fine"),  # conservative
            shadow(5, auto=True, status=EX),  # nobody decided: no evidence
            shadow(6, auto=True, status=PE),
            shadow(7, auto=None, status=AP),  # a manual session: nothing to compare
        ],
        approval(),
    )
    d = report.as_dict()
    assert (d["requests"], d["decided"], d["agreed"], d["unsafe"], d["undecided"]) == (6, 4, 2, 1, 2)
    assert d["agreement_rate"] == 0.5 and d["not_shadow"] == 1
    kinds = {x["intent_id"]: x["kind"] for x in d["disagreements"]}
    assert kinds == {iid(2): "unsafe", iid(4): "conservative"}
    assert d["disagreement_reasons"] == [
        {"reason": "size is fine", "count": 1},
        {"reason": "spread too wide", "count": 1},
    ]


@pytest.mark.parametrize("status", [ApprovalStatus.EXECUTED, ApprovalStatus.REFUSED, ApprovalStatus.FAILED, EX])
def test_an_approval_is_the_operators_whatever_the_session_made_of_it(status):
    # executed, refused by the late re-check, failed at the venue, or expired before the session applied it
    one = shadow(1, auto=True, status=status, decided=True)
    report = shadow_report([one], approval())
    assert report.judged[0].operator == "approved" and report.total.agreed == 1


def test_a_rebound_request_is_undecided_until_decided_again():
    rebound = shadow(1, auto=True, status=PE, version=2)  # a rebind cleared decided_by
    assert shadow_report([rebound], approval()).total.undecided == 1


def test_approvals_faster_than_the_minimum_review_time_are_rubber_stamped_and_fail_promotion():
    fast = [shadow(n, auto=True, review=2.0) for n in range(40)]
    report = shadow_report(fast, approval())
    assert report.total.rubber_stamped == 40
    assert not report.total.met
    assert any("rubber-stamped" in r for r in report.total.reasons)
    # a quick rejection is not rubber-stamping; a slow approval is not either
    mixed = [shadow(1, auto=True, status=RJ, review=1.0), shadow(2, auto=True, review=10.0)]
    assert shadow_report(mixed, approval()).total.rubber_stamped == 0
    relaxed = load_settings(approval={"min_review_seconds": 1}).approval
    assert shadow_report(fast, relaxed).total.rubber_stamped == 0


def test_promotion_is_met_only_when_every_criterion_is_and_each_failure_is_named():
    good = [shadow(n, auto=True) for n in range(30)]
    assert shadow_report(good, approval()).total.met
    assert shadow_report(good, approval()).as_dict()["promotion"] == {
        "met": True,
        "reasons": [],
        "promotable": ["sma_cross on BTCUSDT"],
    }
    few = shadow_report(good[:29], approval()).total
    assert not few.met and few.reasons == ("29 operator decisions, fewer than the 30 required",)
    one_unsafe = shadow_report([*good, shadow(99, auto=True, status=RJ)], approval()).total
    assert not one_unsafe.met and one_unsafe.reasons == (
        "1 intent auto would have sent rejected by an operator (at most 0)",
    )
    disagreeing = [*good[:20], *(shadow(100 + n, auto=False, status=AP) for n in range(10))]
    low = shadow_report(disagreeing, approval()).total
    assert not low.met and low.reasons == ("agreement 66.7% is below 95.0%",)
    assert shadow_report(disagreeing, approval(min_agreement=0.6)).total.met


def test_scopes_are_judged_apart_so_one_strategy_on_one_symbol_can_qualify_alone():
    btc = [shadow(n, auto=True, symbol="BTCUSDT") for n in range(30)]
    eth = [shadow(100 + n, auto=True, symbol="ETHUSDT", status=RJ) for n in range(3)]
    report = shadow_report([*btc, *eth], approval())
    assert [t.scope for t in report.scopes] == ["sma_cross on BTCUSDT", "sma_cross on ETHUSDT"]
    assert report.promotable == ["sma_cross on BTCUSDT"]
    assert not report.total.met  # the whole record carries ETH's three unsafe rejections


def test_nothing_decided_has_no_agreement_rate_and_is_not_met():
    report = shadow_report([shadow(1, auto=True, status=EX)], approval())
    assert report.total.agreement_rate is None and not report.total.met
    assert shadow_report([], approval()).as_dict()["agreement_rate"] is None


@pytest.mark.parametrize(
    ("promotion", "key"),
    [
        ({"min_decisions": 0}, "approval.promotion.min_decisions"),
        ({"min_agreement": 1.5}, "approval.promotion.min_agreement"),
        ({"max_unsafe": -1}, "approval.promotion.max_unsafe"),
        ({"max_rubber_stamped": -0.1}, "approval.promotion.max_rubber_stamped"),
        ({"min_agreemnt": 0.9}, "approval.promotion.min_agreemnt"),
    ],
)
def test_bad_promotion_criteria_are_a_configuration_error_naming_the_key(promotion, key):
    from keel.domain.errors import ConfigError

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(approval={"promotion": promotion})
