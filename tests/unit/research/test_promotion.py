"""The promotion gates (`keel.research.promotion`): each gate passes at its threshold and fails just beyond it, alone
holds the decision, fails closed on missing evidence, and is waived only by an explicit setting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from keel.backtest.run import run_id_for
from keel.data.synthetic import generate_regime_ohlcv
from keel.research import scorecard as sc
from keel.research.bias_lookahead import check_lookahead
from keel.research.bias_recursive import check_recursive
from keel.research.promotion import (
    GATES,
    BiasCheck,
    DataFile,
    PromotionDecision,
    RunFacts,
    bias_error,
    bias_outcome,
    evaluate,
    walkforward_evidence,
    walkforward_mismatches,
)
from keel.research.walkforward_result import Overfitting, Score, Span, WalkForwardResult, Window
from keel.settings import Mode, Profile, PromotionGates, load_settings
from keel.strategies import build_strategy

#: the gates a decision must judge, written out: removing one from the code fails `test_every_gate_is_judged…`
EXPECTED_GATES = (
    "walkforward",
    "min_oos_sharpe",
    "max_drawdown_pct",
    "min_trades",
    "max_degradation_pct",
    "min_deflated_sharpe",
    "bias_lookahead",
    "bias_recursive",
)
FP = "f" * 64  # the run's data fingerprint
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _card(sharpe: float | None = 1.2, drawdown: float = 10.0, trades: int = 40):
    equity = np.array([100.0, 101.0, 100.5, 102.0, 103.0])
    ts = np.array([int((T0 + timedelta(days=i)).timestamp()) * 10**9 for i in range(5)], dtype=np.int64)
    card = sc.compute_scorecard(ts=ts, equity=equity, cash=equity, initial_cash=100.0, trades=(), fees_paid=0.0)
    update = {"sharpe": sharpe, "max_drawdown_pct": drawdown, "trades": trades}
    if sharpe is None:
        update["undefined"] = {**card.undefined, "sharpe": "a flat curve has no volatility"}
    return card.model_copy(update=update)


def _facts(**card) -> RunFacts:
    return RunFacts(
        run_id="run-0123456789abcdef",
        mode="replay",
        journal_head="a" * 64,
        summary_sha256="b" * 64,
        strategy="sma_cross",
        description={"name": "sma_cross", "params": {"fast": 10, "slow": 30}},
        params={"fast": 10, "slow": 30},
        symbols=("BTC",),
        bars=5,
        start=T0.isoformat(),
        end=(T0 + timedelta(days=4)).isoformat(),
        data={"BTC": FP},
        scorecard=_card(**card),
    )


def _score(sharpe: float, drawdown: float = 8.0, trades: int = 35) -> Score:
    return Score(
        objective=sharpe,
        sharpe=sharpe,
        sortino=sharpe,
        calmar=1.0,
        return_pct=5.0,
        max_drawdown_pct=drawdown,
        trades=trades,
    )


def _span(first: int, last: int) -> Span:
    return Span(first=first, last=last, start=T0 + timedelta(hours=first), end=T0 + timedelta(hours=last))


def _wf(
    *,
    oos_sharpe: float = 0.9,
    oos_drawdown: float = 8.0,
    oos_trades: int = 35,
    degradation: float = 25.0,
    deflated: float = 0.97,
    recommended: dict | None = None,
    symbol: str = "BTC",
    strategy: str = "sma_cross",
    data_sha256: str = FP,
):
    result = WalkForwardResult(
        strategy=strategy,
        symbol=symbol,
        data="btc.csv",
        data_sha256=data_sha256,
        mode="rolling",
        objective="sharpe",
        train_bars=100,
        test_bars=50,
        step_bars=50,
        windows=(
            Window(
                index=0,
                train=_span(0, 99),
                test=_span(100, 149),
                params={"fast": 10, "slow": 30},
                in_sample=_score(1.2),
                out_of_sample=_score(oos_sharpe),
            ),
        ),
        in_sample=_score(1.2),
        out_of_sample=_score(oos_sharpe, oos_drawdown, oos_trades),
        degradation_pct=degradation,
        recommended=recommended if recommended is not None else {"fast": 10, "slow": 30},
        overfitting=Overfitting(trials=90, deflated_sharpe=deflated),
    )
    return walkforward_evidence(result, file="walkforward.json", sha256="c" * 64)


def _bias(lookahead: bool | None = True, recursive: bool | None = True, symbol: str = "BTC") -> list[BiasCheck]:
    def one(check: str, passed: bool | None) -> BiasCheck:
        if passed is None:
            return bias_error(check, symbol, "too few bars")
        return BiasCheck(check=check, symbol=symbol, passed=passed, detail="found nothing" if passed else "found bias")

    return [one("lookahead", lookahead), one("recursive", recursive)]


def _decide(facts=None, gates=None, *, wf="default", bias="default", **kw) -> PromotionDecision:
    return evaluate(
        facts or _facts(),
        gates or PromotionGates(min_deflated_sharpe=0.9),
        decided_at=NOW,
        keel_version="test",
        walkforward=_wf() if wf == "default" else wf,
        bias=_bias() if bias == "default" else bias,
        **kw,
    )


def _gate(decision: PromotionDecision, name: str):
    (gate,) = [g for g in decision.gates if g.name == name]
    return gate


# -- the whole decision ------------------------------------------------------------------------------------------


def test_every_gate_is_judged_once_in_order_and_full_evidence_promotes():
    decision = _decide()
    assert GATES == EXPECTED_GATES
    assert tuple(g.name for g in decision.gates) == EXPECTED_GATES
    assert decision.decision == "promote" and decision.promoted and decision.failed == ()
    assert not any(g.waived for g in decision.gates)
    assert all(g.setting.startswith("promotion_gates.") for g in decision.gates)


#: for each gate, evidence that breaks it and nothing else
BREAKS = {
    "walkforward": {"wf": {"recommended": {"fast": 12, "slow": 30}}},
    "min_oos_sharpe": {"wf": {"oos_sharpe": 0.49}},
    "max_drawdown_pct": {"facts": {"drawdown": 25.5}},
    "min_trades": {"facts": {"trades": 29}},
    "max_degradation_pct": {"wf": {"degradation": 50.5}},
    "min_deflated_sharpe": {"wf": {"deflated": 0.89}},
    "bias_lookahead": {"bias": {"lookahead": False}},
    "bias_recursive": {"bias": {"recursive": False}},
}


@pytest.mark.parametrize("name", EXPECTED_GATES)
def test_each_gate_alone_holds_the_decision(name):
    assert set(BREAKS) == set(EXPECTED_GATES)
    broken = BREAKS[name]
    decision = _decide(
        _facts(**broken.get("facts", {})),
        wf=_wf(**broken.get("wf", {})),
        bias=_bias(**broken.get("bias", {})),
    )
    if name == "walkforward":  # a walk-forward of other parameters is no evidence for the out-of-sample gates
        assert decision.failed == ("walkforward", "min_oos_sharpe", "max_degradation_pct", "min_deflated_sharpe")
    else:
        assert decision.failed == (name,)
    assert decision.decision == "hold"


# -- each threshold at its boundary ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "gates", "at", "beyond"),
    [
        ("min_oos_sharpe", {"min_oos_sharpe": 0.5}, {"wf": {"oos_sharpe": 0.5}}, {"wf": {"oos_sharpe": 0.4999}}),
        (
            "max_drawdown_pct",
            {"max_drawdown_pct": 25.0},
            {"facts": {"drawdown": 25.0}},
            {"facts": {"drawdown": 25.001}},
        ),
        (
            "max_drawdown_pct",
            {"max_drawdown_pct": 25.0},
            {"wf": {"oos_drawdown": 25.0}},
            {"wf": {"oos_drawdown": 25.001}},
        ),
        ("min_trades", {"min_trades": 30}, {"facts": {"trades": 30}}, {"facts": {"trades": 29}}),
        ("min_trades", {"min_trades": 30}, {"wf": {"oos_trades": 30}}, {"wf": {"oos_trades": 29}}),
        (
            "max_degradation_pct",
            {"max_degradation_pct": 50.0},
            {"wf": {"degradation": 50.0}},
            {"wf": {"degradation": 50.001}},
        ),
        ("min_deflated_sharpe", {"min_deflated_sharpe": 0.9}, {"wf": {"deflated": 0.9}}, {"wf": {"deflated": 0.8999}}),
    ],
)
def test_a_gate_passes_at_its_threshold_and_fails_just_beyond(name, gates, at, beyond):
    config = PromotionGates(**{"min_deflated_sharpe": 0.9, **gates})
    for evidence, passes in ((at, True), (beyond, False)):
        decision = _decide(_facts(**evidence.get("facts", {})), config, wf=_wf(**evidence.get("wf", {})))
        gate = _gate(decision, name)
        assert gate.passed is passes, gate
        assert gate.threshold == next(iter(gates.values()))
        assert decision.promoted is passes
        assert ("≥" in gate.reason or "≤" in gate.reason) is passes


def test_the_worse_drawdown_and_the_fewer_trades_count_and_the_reason_names_both():
    decision = _decide(_facts(drawdown=12.0, trades=80), wf=_wf(oos_drawdown=20.0, oos_trades=31))
    dd, trades = _gate(decision, "max_drawdown_pct"), _gate(decision, "min_trades")
    assert dd.observed == 20.0 and "the run (12)" in dd.reason and "out of sample (20)" in dd.reason
    assert trades.observed == 31 and "the run (80)" in trades.reason


def test_a_negative_degradation_out_of_sample_did_better_and_passes():
    assert _gate(_decide(wf=_wf(degradation=-30.0)), "max_degradation_pct").passed


# -- missing evidence fails closed -------------------------------------------------------------------------------


def test_without_a_walk_forward_every_out_of_sample_gate_fails_and_the_run_is_held():
    decision = _decide(wf=None)
    assert decision.decision == "hold"
    assert decision.failed == ("walkforward", "min_oos_sharpe", "max_degradation_pct", "min_deflated_sharpe")
    assert all(_gate(decision, n).observed is None for n in decision.failed)
    assert "--walkforward" in _gate(decision, "walkforward").reason
    assert decision.evidence.walkforward is None and decision.evidence.scorecards.out_of_sample is None


def test_bias_checks_not_run_fail_both_bias_gates():
    decision = _decide(bias=None)
    assert decision.failed == ("bias_lookahead", "bias_recursive")
    assert "--data" in _gate(decision, "bias_lookahead").reason
    assert decision.evidence.bias_checks is None


def test_a_bias_check_that_could_not_run_or_skipped_a_symbol_fails_its_gate():
    decision = _decide(bias=_bias(recursive=None))
    assert decision.failed == ("bias_recursive",)
    assert "could not be run: too few bars" in _gate(decision, "bias_recursive").reason
    two = _facts()
    two = RunFacts(**{**two.__dict__, "symbols": ("BTC", "ETH"), "data": {"BTC": FP, "ETH": FP}})
    decision = _decide(two, wf=None, gates=PromotionGates(require_walkforward=False), bias=_bias())
    assert decision.failed == ("bias_lookahead", "bias_recursive")
    assert _gate(decision, "bias_lookahead").reason == "ETH: not run"
    assert _gate(decision, "bias_lookahead").observed == "1/2 passed"


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_an_out_of_sample_sharpe_that_is_not_a_number_fails(value):
    wf = _wf().model_copy(update={"out_of_sample": _score(0.9).model_copy(update={"sharpe": value})})
    gate = _gate(_decide(wf=wf), "min_oos_sharpe")
    assert not gate.passed and gate.observed is None and "not a finite number" in gate.reason


def test_an_undefined_run_sharpe_fails_when_the_run_is_judged_alone():
    gates = PromotionGates(require_walkforward=False)
    gate = _gate(_decide(_facts(sharpe=None), gates, wf=None), "min_oos_sharpe")
    assert not gate.passed and "a flat curve has no volatility" in gate.reason


def test_default_gates_never_promote_a_run_on_its_own():
    decision = evaluate(_facts(), PromotionGates(), decided_at=NOW, keel_version="test")
    assert decision.decision == "hold"
    assert set(decision.failed) >= {"walkforward", "min_oos_sharpe", "bias_lookahead", "bias_recursive"}


# -- waivers are explicit ----------------------------------------------------------------------------------------


def test_require_walkforward_false_judges_the_run_alone_and_says_so():
    gates = PromotionGates(require_walkforward=False, min_deflated_sharpe=0.9)
    decision = _decide(_facts(sharpe=0.6), gates, wf=None)
    assert decision.decision == "promote"
    waived = {g.name for g in decision.gates if g.waived}
    assert waived == {"walkforward", "max_degradation_pct", "min_deflated_sharpe"}
    sharpe = _gate(decision, "min_oos_sharpe")
    assert sharpe.observed == 0.6 and not sharpe.waived and "in-sample" in sharpe.reason
    assert not _gate(_decide(_facts(sharpe=0.49), gates, wf=None), "min_oos_sharpe").passed


def test_a_walk_forward_given_is_judged_even_when_not_required():
    gates = PromotionGates(require_walkforward=False)
    decision = _decide(gates=gates, wf=_wf(oos_sharpe=0.1))
    assert decision.failed == ("min_oos_sharpe",)
    assert not _gate(decision, "walkforward").waived


def test_require_bias_checks_false_waives_them_but_reports_what_they_found():
    decision = _decide(gates=PromotionGates(require_bias_checks=False), bias=_bias(lookahead=False))
    gate = _gate(decision, "bias_lookahead")
    assert decision.promoted and gate.waived and gate.passed and "BTC: found bias" in gate.reason
    assert _gate(_decide(gates=PromotionGates(require_bias_checks=False), bias=None), "bias_recursive").waived


def test_an_unset_deflated_sharpe_is_waived_not_judged():
    gate = _gate(_decide(gates=PromotionGates(), wf=_wf(deflated=0.01)), "min_deflated_sharpe")
    assert gate.passed and gate.waived and gate.threshold is None


# -- the walk-forward must be of this run ------------------------------------------------------------------------


def test_walkforward_mismatches_name_strategy_symbol_data_and_params():
    wf = _wf(strategy="mean_reversion", symbol="ETH", data_sha256="0" * 64, recommended={"fast": 5, "slow": 30})
    problems = walkforward_mismatches(
        wf, strategy="sma_cross", symbols=("BTC",), data={"BTC": FP}, params={"fast": 10, "slow": 30}
    )
    assert [p.split(":")[0] for p in problems] == ["strategy", "symbol", "data", "params"]
    assert "fast=10 in the run, 5 recommended" in problems[3]


def test_a_walk_forward_may_name_the_data_file_hash_or_the_strategy_reference():
    file = DataFile(symbol="BTC", file="btc.csv", sha256="9" * 64)
    wf = _wf(strategy="strategies/mine.py:Mine", data_sha256="9" * 64)
    ok = walkforward_mismatches(
        wf,
        strategy="sma_cross",
        symbols=("BTC",),
        data={"BTC": FP},
        params={"fast": 10, "slow": 30},
        reference="strategies/mine.py:Mine",
        data_files=[file],
    )
    assert ok == []
    decision = _decide(wf=wf, reference="strategies/mine.py:Mine", data_files=[file])
    assert decision.promoted and decision.evidence.data_files == (file,)


def test_recommended_parameters_are_compared_as_the_strategy_reads_them():
    run = {"strategy": "sma_cross", "symbols": ("BTC",), "data": {"BTC": FP}, "params": {"fast": 10, "slow": 30}}
    as_written = _wf(recommended={"fast": 10})  # slow left to the strategy's default
    assert [p.split(":")[0] for p in walkforward_mismatches(as_written, **run)] == ["params"]
    as_read = as_written.model_copy(update={"recommended_as_read": {"fast": 10, "slow": 30}})
    assert walkforward_mismatches(as_read, **run) == []
    assert as_read.recommended == {"fast": 10}


# -- the contract ------------------------------------------------------------------------------------------------


def test_the_decision_round_trips_through_json_with_its_evidence():
    decision = _decide()
    text = decision.model_dump_json(by_alias=True)
    back = PromotionDecision.model_validate_json(text)
    assert back == decision
    body = decision.model_dump(mode="json", by_alias=True)
    assert body["schema"] == "keel.promotion/1"
    e = body["evidence"]
    assert (
        e["run_id"] == "run-0123456789abcdef" and e["data"] == {"BTC": FP} and e["params"] == {"fast": 10, "slow": 30}
    )
    assert e["walkforward"]["sha256"] == "c" * 64 and e["scorecards"]["out_of_sample"]["sharpe"] == 0.9
    assert e["scorecards"]["run"]["trades"] == 40 and len(e["bias_checks"]) == 2
    assert body["gates_config"]["min_deflated_sharpe"] == 0.9
    for g in body["gates"]:
        assert set(g) >= {"name", "threshold", "observed", "passed", "reason"}


def test_a_decision_of_another_schema_is_refused():
    body = _decide().model_dump(mode="json", by_alias=True)
    with pytest.raises(ValueError, match=r"keel\.promotion/1"):
        PromotionDecision.model_validate({**body, "schema": "keel.promotion/2"})


# -- real bias checks as evidence --------------------------------------------------------------------------------


def test_bias_outcomes_of_real_checks_say_what_they_found(fixture_strategy):
    (bars,) = generate_regime_ohlcv(1, 400, seed=3)
    honest = build_strategy("sma_cross", {"fast": 5, "slow": 20})
    ok = bias_outcome(check_lookahead(honest, bars, cuts=10))
    assert ok.passed and ok.check == "lookahead" and ok.symbol == "SYN0" and "10 cuts" in ok.detail
    assert ok.result is not None and ok.result["passed"] is True
    rec = bias_outcome(check_recursive(honest, bars, starts=2))
    assert rec.passed and "declared warm-up" in rec.detail
    peeking = fixture_strategy("peeking.py", "Peeking")
    bad = bias_outcome(check_lookahead(peeking, bars, cuts=10))
    assert bad.passed is False and "changes once the data after bar" in bad.detail
    decision = _decide(bias=[bad, rec.model_copy(update={"symbol": "BTC"})])
    assert decision.failed == ("bias_lookahead",)


# -- not part of a run's identity --------------------------------------------------------------------------------


def test_the_run_id_does_not_depend_on_the_promotion_gates():
    frames = generate_regime_ohlcv(1, 300, seed=1)
    strategy = build_strategy("sma_cross", {})
    ids = {
        run_id_for(load_settings(**kw), strategy, frames, Mode.REPLAY, Profile.RESEARCH)
        for kw in ({}, {"promotion_gates": {"min_trades": 5, "require_walkforward": False}})
    }
    assert len(ids) == 1
