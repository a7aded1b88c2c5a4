"""Promotion gates: does a run's evidence support running its strategy forward (promote), or not (hold)?

Pure: the run's facts and scorecard, the walk-forward result (optional), the bias checks' outcomes (optional) and the
configured gates (`promotion_gates`) in, one versioned decision (`keel.promotion/1`) out, which `keel promote` writes
into the run folder. Nothing here reads a file or a clock: the caller gives the time of the decision.

Every gate of `GATES` is always judged and always listed, with its threshold, what was observed, whether it passed
and why. It fails closed: evidence that is missing, undefined or not a finite number fails the gate, and a single
failed gate holds. The one way a gate is passed without evidence is an explicit waiver in the configuration
(`require_walkforward = false`, `require_bias_checks = false`, `min_deflated_sharpe` unset), and a waived gate says
so (`waived: true`). Nothing promotes by default: with the default configuration a run needs a matching walk-forward
and its bias checks rerun before it can.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, Field

from keel.domain.base import Contract
from keel.domain.run import Scorecard
from keel.research.walkforward_result import Overfitting, Score, WalkForwardResult
from keel.settings import PromotionGates

__all__ = [
    "GATES",
    "SCHEMA",
    "BiasCheck",
    "DataFile",
    "Earlier",
    "Evidence",
    "Gate",
    "PromotionDecision",
    "RunFacts",
    "WalkForwardEvidence",
    "bias_error",
    "bias_outcome",
    "evaluate",
    "walkforward_evidence",
    "walkforward_mismatches",
]

SCHEMA = "keel.promotion/1"
#: Every gate, in the order it is judged and shown. A decision lists each one exactly once.
GATES = (
    "walkforward",
    "min_oos_sharpe",
    "max_drawdown_pct",
    "min_trades",
    "max_degradation_pct",
    "min_deflated_sharpe",
    "bias_lookahead",
    "bias_recursive",
)
BIAS_CHECKS = ("lookahead", "recursive")

ParamValue = int | float | str | bool


class Gate(Contract):
    """One gate as judged: what it demands, what the evidence showed, and why it passed or failed."""

    name: str
    setting: str  # the `promotion_gates` key that sets it
    threshold: float | int | bool | None
    observed: float | int | bool | str | None
    passed: bool
    #: passed only because the configuration waives it (no evidence was judged, or it was judged and did not count)
    waived: bool = False
    reason: str


class BiasCheck(Contract):
    """One bias check of the run's strategy on one of its symbols' data, as rerun for the decision."""

    check: Literal["lookahead", "recursive"]
    symbol: str
    passed: bool | None  # None: it could not be run (`error` says why)
    detail: str  # one line: what it found
    error: str | None = None
    #: the check's own report, as `keel check … --json` prints it
    result: dict[str, Any] | None = None


class DataFile(Contract):
    """A data file the decision read (to rerun the bias checks), already checked to be what the run read."""

    symbol: str
    file: str  # as the user named it
    sha256: str  # of its bytes


class WalkForwardEvidence(Contract):
    """The walk-forward a decision rests on: the file (by hash) and its figures; the windows stay in the file."""

    file: str  # as the user named it
    sha256: str  # of the file's bytes
    strategy: str
    symbol: str
    data_sha256: str
    mode: str
    objective: str
    windows: int
    in_sample: Score
    out_of_sample: Score
    degradation_pct: float
    recommended: dict[str, ParamValue]
    overfitting: Overfitting
    #: the recommended parameters as the strategy reads them (its defaults filled in): what is compared with the run's
    recommended_as_read: dict[str, ParamValue]


class Scorecards(Contract):
    run: Scorecard  # the run's own, over all its bars
    in_sample: Score | None = None  # the walk-forward's, when one was given
    out_of_sample: Score | None = None


class Evidence(Contract):
    """Everything a decision rests on, pinned: the run by id and journal head, the data by hash, the files by hash."""

    run_id: str
    mode: str  # replay for a backtest
    journal_head: str  # the run's hash-chained log as it ended
    summary_sha256: str  # the summary.json the scorecard was read from
    strategy: str
    strategy_description: dict[str, Any]  # as the run's `run.started` record holds it
    params: dict[str, ParamValue]
    symbols: tuple[str, ...]
    bars: int
    start: str | None
    end: str | None
    data: dict[str, str]  # symbol → fingerprint (sha256) of the bars the run read
    data_files: tuple[DataFile, ...] = ()
    scorecards: Scorecards
    walkforward: WalkForwardEvidence | None = None
    bias_checks: tuple[BiasCheck, ...] | None = None  # None: not run (no data given)


class Earlier(Contract):
    """A decision an earlier `keel promote` of the same run recorded, chained by the hash of the file it wrote."""

    decided_at: AwareDatetime
    decision: Literal["promote", "hold"]
    failed: tuple[str, ...]
    sha256: str  # of the promotion.json that held it (which holds the ones before it)


class PromotionDecision(Contract):
    schema_: Literal["keel.promotion/1"] = Field(default=SCHEMA, alias="schema")
    decision: Literal["promote", "hold"]
    decided_at: AwareDatetime
    keel_version: str
    #: the `promotion_gates` section the gates were judged against
    gates_config: dict[str, Any]
    gates: tuple[Gate, ...]
    evidence: Evidence
    #: earlier decisions of this run, oldest first
    history: tuple[Earlier, ...] = ()

    model_config = Contract.model_config | {"populate_by_name": True}

    @property
    def promoted(self) -> bool:
        return self.decision == "promote"

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.gates if not g.passed)


@dataclass(frozen=True)
class RunFacts:
    """What a decision needs of the run: read from its folder by the caller (`keel.research.report_data.load_run`
    and its `run.started` record)."""

    run_id: str
    mode: str
    journal_head: str
    summary_sha256: str
    strategy: str
    description: Mapping[str, Any]
    params: Mapping[str, ParamValue]
    symbols: tuple[str, ...]
    bars: int
    start: str | None
    end: str | None
    data: Mapping[str, str]
    scorecard: Scorecard


# -- inputs --------------------------------------------------------------------------------------------------------


def walkforward_evidence(
    result: WalkForwardResult, *, file: str, sha256: str, recommended_as_read: Mapping[str, ParamValue] | None = None
) -> WalkForwardEvidence:
    """The walk-forward's figures for the evidence. `recommended_as_read`: its recommended parameters validated by the
    strategy (defaults filled in, numbers as the strategy types them); None: as the file wrote them."""
    return WalkForwardEvidence(
        file=file,
        sha256=sha256,
        strategy=result.strategy,
        symbol=result.symbol,
        data_sha256=result.data_sha256,
        mode=result.mode,
        objective=result.objective,
        windows=len(result.windows),
        in_sample=result.in_sample,
        out_of_sample=result.out_of_sample,
        degradation_pct=result.degradation_pct,
        recommended=dict(result.recommended),
        overfitting=result.overfitting,
        recommended_as_read=dict(result.recommended if recommended_as_read is None else recommended_as_read),
    )


def walkforward_mismatches(
    wf: WalkForwardEvidence,
    *,
    strategy: str,
    symbols: Sequence[str],
    data: Mapping[str, str],
    params: Mapping[str, ParamValue],
    reference: str | None = None,
    data_files: Sequence[DataFile] = (),
) -> list[str]:
    """Every way the walk-forward is not about the run of `strategy` on `symbols` (empty: it is).

    Its strategy must be the run's (by name, or by the reference the run's strategy was built from); the run must be
    of its one symbol; its data hash must be the run's data (the bars' fingerprint the run recorded in `data`, or the
    sha256 of a data file checked to hold those bars); and the parameters it recommends must be the run's `params`.
    """
    problems = []
    if wf.strategy not in {strategy, reference}:
        problems.append(f"strategy: the walk-forward is of '{wf.strategy}', the run of '{strategy}'")
    if tuple(symbols) != (wf.symbol,):
        problems.append(f"symbol: the walk-forward is of {wf.symbol}, the run of {', '.join(symbols)}")
    known = {data.get(wf.symbol)} | {f.sha256 for f in data_files if f.symbol == wf.symbol}
    if wf.data_sha256 not in known - {None}:
        problems.append(
            f"data: the walk-forward read data of sha256 {wf.data_sha256[:16]}…, which is not the data the run read"
        )
    if dict(wf.recommended_as_read) != dict(params):
        diff = sorted(
            k for k in set(wf.recommended_as_read) | set(params) if wf.recommended_as_read.get(k) != params.get(k)
        )
        shown = ", ".join(
            f"{k}={params.get(k, '(none)')} in the run, {wf.recommended_as_read.get(k, '(none)')} recommended"
            for k in diff
        )
        problems.append(f"params: the run's parameters are not the walk-forward's recommended ones ({shown})")
    return problems


def bias_outcome(result: Any) -> BiasCheck:
    """A `LookaheadResult` or `RecursiveResult` as evidence, with a line saying what it found."""
    report = result.to_dict()
    check = report["check"]
    if result.passed:
        detail = (
            f"no signal changed at {len(result.cuts):,} cuts of the history"
            if check == "lookahead"
            else f"every column settles within the declared warm-up ({result.warmup:,} bars)"
        )
    elif check == "lookahead":
        d = result.differences[0]
        detail = f"{d.column} at bar {d.bar:,} changes once the data after bar {d.at - 1:,} is cut off"
    else:
        bad = [c for c in result.columns if not c.passed]
        needed = "never" if result.needed is None else f"{result.needed:,} bars"
        detail = (
            f"{', '.join(c.column for c in bad)} depend on where the data starts (needed: {needed}; "
            f"declared warm-up {result.warmup:,})"
        )
    return BiasCheck(check=check, symbol=result.symbol, passed=result.passed, detail=detail, result=report)


def bias_error(check: str, symbol: str, message: str) -> BiasCheck:
    """A bias check that could not be run on `symbol`: evidence missing, so its gate fails."""
    return BiasCheck(check=check, symbol=symbol, passed=None, detail=f"could not be run: {message}", error=message)


# -- the decision --------------------------------------------------------------------------------------------------


def evaluate(
    run: RunFacts,
    gates: PromotionGates,
    *,
    decided_at: datetime,
    keel_version: str,
    walkforward: WalkForwardEvidence | None = None,
    reference: str | None = None,
    bias: Sequence[BiasCheck] | None = None,
    data_files: Sequence[DataFile] = (),
    history: Sequence[Earlier] = (),
) -> PromotionDecision:
    """Judge every gate of `GATES` on the evidence; promote only when every one passed.

    `walkforward` None: none was given. `bias` None: the checks were not run (no data given); otherwise one outcome
    per check and symbol (a missing one fails its gate). `reference`: what the run's strategy was built from, when not
    its name (a file, a module). A walk-forward that is not about this run (`walkforward_mismatches`) fails its gate and
    counts as no walk-forward for the others.
    """
    mismatches = (
        walkforward_mismatches(
            walkforward,
            strategy=run.strategy,
            symbols=run.symbols,
            data=run.data,
            params=run.params,
            reference=reference,
            data_files=data_files,
        )
        if walkforward is not None
        else []
    )
    oos = walkforward if walkforward is not None and not mismatches else None
    if walkforward is None:
        missing = "no walk-forward was given (--walkforward)"
    else:
        missing = "the walk-forward given is not of this run"
    waive_wf = walkforward is None and not gates.require_walkforward
    judged = [
        _walkforward_gate(gates, walkforward, mismatches),
        _oos_sharpe(gates, run, oos, missing, waive_wf),
        _drawdown(gates, run, oos),
        _trades(gates, run, oos),
        _degradation(gates, oos, missing, waive_wf),
        _deflated(gates, oos, missing, waive_wf),
        *(_bias_gate(gates, check, run.symbols, bias) for check in BIAS_CHECKS),
    ]
    names = tuple(g.name for g in judged)
    assert names == GATES, names  # a gate left out would promote on less evidence than documented
    decision = "promote" if all(g.passed for g in judged) else "hold"
    evidence = Evidence(
        run_id=run.run_id,
        mode=run.mode,
        journal_head=run.journal_head,
        summary_sha256=run.summary_sha256,
        strategy=run.strategy,
        strategy_description=dict(run.description),
        params=dict(run.params),
        symbols=tuple(run.symbols),
        bars=run.bars,
        start=run.start,
        end=run.end,
        data=dict(run.data),
        data_files=tuple(data_files),
        scorecards=Scorecards(
            run=run.scorecard,
            in_sample=walkforward.in_sample if walkforward is not None else None,
            out_of_sample=walkforward.out_of_sample if walkforward is not None else None,
        ),
        walkforward=walkforward,
        bias_checks=tuple(bias) if bias is not None else None,
    )
    return PromotionDecision(
        decision=decision,
        decided_at=decided_at,
        keel_version=keel_version,
        gates_config=gates.model_dump(mode="json"),
        gates=tuple(judged),
        evidence=evidence,
        history=tuple(history),
    )


def _key(name: str) -> str:
    return f"promotion_gates.{name}"


def _finite(value: float | None) -> bool:
    return value is not None and not isinstance(value, bool) and math.isfinite(value)


def _num(value: float) -> str:
    return f"{value:.4g}"


def _walkforward_gate(gates: PromotionGates, wf: WalkForwardEvidence | None, mismatches: list[str]) -> Gate:
    common = {"name": "walkforward", "setting": _key("require_walkforward"), "threshold": gates.require_walkforward}
    if wf is None:
        if gates.require_walkforward:
            return Gate(**common, observed=None, passed=False, reason="no walk-forward was given (--walkforward)")
        return Gate(
            **common,
            observed=None,
            passed=True,
            waived=True,
            reason="waived (require_walkforward = false): the run is judged on its own scorecard, which is in-sample "
            "if its parameters were chosen on the same data",
        )
    if mismatches:
        return Gate(**common, observed=wf.sha256, passed=False, reason="not of this run: " + "; ".join(mismatches))
    return Gate(
        **common,
        observed=wf.sha256,
        passed=True,
        reason=f"of this run's strategy, symbol, data and parameters: {wf.windows} {wf.mode} window(s), "
        f"objective {wf.objective}",
    )


def _at_least(name: str, threshold: float, observed: float | None, what: str, *, undefined: str = "") -> Gate:
    if not _finite(observed):
        why = undefined or "not a finite number"
        return Gate(
            name=name, setting=_key(name), threshold=threshold, observed=None, passed=False, reason=f"{what}: {why}"
        )
    assert observed is not None
    ok = observed >= threshold
    return Gate(
        name=name,
        setting=_key(name),
        threshold=threshold,
        observed=observed,
        passed=ok,
        reason=f"{what}: {_num(observed)} {'≥' if ok else '<'} {_num(threshold)}",
    )


def _at_most(name: str, threshold: float, observed: float | None, what: str) -> Gate:
    if not _finite(observed):
        return Gate(
            name=name,
            setting=_key(name),
            threshold=threshold,
            observed=None,
            passed=False,
            reason=f"{what}: not a finite number",
        )
    assert observed is not None
    ok = observed <= threshold
    return Gate(
        name=name,
        setting=_key(name),
        threshold=threshold,
        observed=observed,
        passed=ok,
        reason=f"{what}: {_num(observed)} {'≤' if ok else '>'} {_num(threshold)}",
    )


def _missing(name: str, threshold: float | None, reason: str) -> Gate:
    return Gate(name=name, setting=_key(name), threshold=threshold, observed=None, passed=False, reason=reason)


def _waived(name: str, threshold: float | None, reason: str) -> Gate:
    return Gate(
        name=name, setting=_key(name), threshold=threshold, observed=None, passed=True, waived=True, reason=reason
    )


def _oos_sharpe(
    gates: PromotionGates, run: RunFacts, oos: WalkForwardEvidence | None, missing: str, waive_wf: bool
) -> Gate:
    name, threshold = "min_oos_sharpe", gates.min_oos_sharpe
    if oos is not None:
        return _at_least(name, threshold, oos.out_of_sample.sharpe, "out-of-sample Sharpe")
    if not waive_wf:
        return _missing(name, threshold, f"no out-of-sample Sharpe: {missing}")
    card = run.scorecard
    return _at_least(
        name,
        threshold,
        card.sharpe,
        "the run's own Sharpe (no walk-forward: in-sample if its parameters were chosen on this data)",
        undefined="undefined (" + card.undefined.get("sharpe", "no value") + ")",
    )


def _drawdown(gates: PromotionGates, run: RunFacts, oos: WalkForwardEvidence | None) -> Gate:
    seen = [("the run", run.scorecard.max_drawdown_pct)]
    if oos is not None:
        seen.append(("out of sample", oos.out_of_sample.max_drawdown_pct))
    worst = max((v for _, v in seen), key=lambda v: v if _finite(v) else math.inf)
    what = _of("max drawdown %", "worse", [(w, _num(v)) for w, v in seen])
    return _at_most("max_drawdown_pct", gates.max_drawdown_pct, worst, what)


def _of(what: str, which: str, seen: list[tuple[str, str]]) -> str:
    if len(seen) == 1:
        return f"{what} of {seen[0][0]}"
    return f"{what}, the {which} of " + " and ".join(f"{w} ({v})" for w, v in seen)


def _trades(gates: PromotionGates, run: RunFacts, oos: WalkForwardEvidence | None) -> Gate:
    seen = [("the run", run.scorecard.trades)]
    if oos is not None:
        seen.append(("out of sample", oos.out_of_sample.trades))
    fewest = min(v for _, v in seen)
    what = _of("closed trades", "fewer", [(w, f"{v:,}") for w, v in seen])
    ok = fewest >= gates.min_trades
    return Gate(
        name="min_trades",
        setting=_key("min_trades"),
        threshold=gates.min_trades,
        observed=fewest,
        passed=ok,
        reason=f"{what}: {fewest:,} {'≥' if ok else '<'} {gates.min_trades:,}",
    )


def _degradation(gates: PromotionGates, oos: WalkForwardEvidence | None, missing: str, waive_wf: bool) -> Gate:
    name, threshold = "max_degradation_pct", gates.max_degradation_pct
    if oos is not None:
        return _at_most(name, threshold, oos.degradation_pct, "in-sample → out-of-sample Sharpe degradation %")
    if waive_wf:
        return _waived(name, threshold, "waived (require_walkforward = false): only a walk-forward measures it")
    return _missing(name, threshold, f"no degradation measured: {missing}")


def _deflated(gates: PromotionGates, oos: WalkForwardEvidence | None, missing: str, waive_wf: bool) -> Gate:
    name, threshold = "min_deflated_sharpe", gates.min_deflated_sharpe
    if threshold is None:
        return _waived(name, None, "not set (promotion_gates.min_deflated_sharpe): not judged")
    if oos is not None:
        trials = oos.overfitting.trials
        return _at_least(name, threshold, oos.overfitting.deflated_sharpe, f"deflated Sharpe over {trials:,} trial(s)")
    if waive_wf:
        return _waived(name, threshold, "waived (require_walkforward = false): only a walk-forward measures it")
    return _missing(name, threshold, f"no deflated Sharpe: {missing}")


def _bias_gate(gates: PromotionGates, check: str, symbols: Sequence[str], bias: Sequence[BiasCheck] | None) -> Gate:
    name = f"bias_{check}"
    common = {"name": name, "setting": _key("require_bias_checks"), "threshold": gates.require_bias_checks}
    if bias is None:
        if gates.require_bias_checks:
            return Gate(**common, observed=None, passed=False, reason="not run: the run's data was not given (--data)")
        return Gate(**common, observed=None, passed=True, waived=True, reason="waived (require_bias_checks = false)")
    by_symbol = {b.symbol: b for b in bias if b.check == check}
    problems, passed = [], 0
    for symbol in symbols:
        outcome = by_symbol.get(symbol)
        if outcome is None:
            problems.append(f"{symbol}: not run")
        elif outcome.passed is True:
            passed += 1
        else:
            problems.append(f"{symbol}: {outcome.detail}")
    observed = f"{passed}/{len(symbols)} passed"
    if not gates.require_bias_checks:
        found = "; ".join(problems) if problems else "every symbol passed"
        return Gate(
            **common,
            observed=observed,
            passed=True,
            waived=True,
            reason=f"waived (require_bias_checks = false); it found: {found}",
        )
    if problems or not symbols:
        return Gate(**common, observed=observed, passed=False, reason="; ".join(problems) or "the run has no symbol")
    return Gate(**common, observed=observed, passed=True, reason=f"passed on {', '.join(symbols)}")
