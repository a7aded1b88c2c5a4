"""Hand-written market scenarios for pipeline tests: bars from literal prices, and a strategy that enters and
exits at the bars a test names. Each test then runs the real pipeline (`execute_run`) over them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from keel.agents.hydrate import account_skills
from keel.backtest.run import RunResult, control_url, execute_run, prepare
from keel.brokers.paper import PaperBroker
from keel.control.store import ControlStore
from keel.data.frame import OHLCV, ns_to_datetime
from keel.domain.decisions import TradingState
from keel.domain.market import Quote
from keel.domain.orders import OrderRequest
from keel.domain.portfolio import Account
from keel.journal.journal import Journal
from keel.risk.trading_state import SimulatedTradingState
from keel.runtime.book import Book
from keel.runtime.clock import ReplayClock
from keel.runtime.context import RunContext
from keel.runtime.schedule import Schedule
from keel.runtime.state import new_cycle
from keel.settings import Mode, Profile, Settings, load_settings
from keel.strategies.base import Signals, Strategy, StrategyParams, StrategyRules

T0 = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z
MINUTE = 60 * 10**9


def bars(
    symbol: str,
    closes: Sequence[float],
    *,
    opens: Sequence[float] | None = None,
    highs: Sequence[float] | None = None,
    lows: Sequence[float] | None = None,
    volumes: Sequence[float] | None = None,
    start_ns: int = T0,
    step_ns: int = MINUTE,
) -> OHLCV:
    """Bars with the given closes; opens default to the previous close, highs/lows to 0.1 % beyond the bar's own
    extremes (a bar with high == low is flagged as suspicious data by the outlook)."""
    close = np.asarray(closes, dtype=np.float64)
    open_ = np.asarray(opens, dtype=np.float64) if opens is not None else np.concatenate(([close[0]], close[:-1]))
    high = np.asarray(highs, dtype=np.float64) if highs is not None else np.maximum(open_, close) * 1.001
    low = np.asarray(lows, dtype=np.float64) if lows is not None else np.minimum(open_, close) * 0.999
    volume = np.asarray(volumes, dtype=np.float64) if volumes is not None else np.full(close.shape, 1e9)
    ts = start_ns + np.arange(close.shape[0], dtype=np.int64) * step_ns
    return OHLCV(symbol, ts, open_, high, low, close, volume, source=f"{symbol}.scenario")


class ScriptedParams(StrategyParams):
    """Plain values only (a run summary carries them): bars as "AAA:1,5 BBB:3"; 0 means no stop/target/time exit."""

    entries: str = ""
    exits: str = ""
    #: protective stop / target as a fraction below / above the entry bar's close
    stop_pct: float = 0.0
    target_pct: float = 0.0
    time_exit_bars: int = 0


def _bars_of(spec: str, symbol: str) -> list[int]:
    for part in spec.split():
        name, _, idx = part.partition(":")
        if name == symbol:
            return [int(i) for i in idx.split(",") if i]
    return []


def _spec(value: dict[str, tuple[int, ...]] | str) -> str:
    if isinstance(value, str):
        return value
    return " ".join(f"{s}:{','.join(str(i) for i in idx)}" for s, idx in value.items())


class Scripted(Strategy):
    """Entries and exits exactly where the test says; stops and targets at fixed distances."""

    name: ClassVar[str] = "scripted"
    Params: ClassVar[type[StrategyParams]] = ScriptedParams
    params: ScriptedParams

    @classmethod
    def make_rules(cls, params: Any) -> StrategyRules:
        stop = params.stop_pct > 0
        return StrategyRules(
            requires_stop=stop,
            stop_waived=not stop,
            stop_waiver_reason=None if stop else "scripted test scenario",
            time_exit_bars=params.time_exit_bars or None,
            entry_rule="enter at the scripted bars",
            exit_rule="exit at the scripted bars",
            sizing_rule="allocator",
            halt_rule="none",
        )

    def signals(self, frame: OHLCV) -> Signals:
        n = len(frame)
        entry = np.zeros(n, dtype=bool)
        exit_ = np.zeros(n, dtype=bool)
        entry[_bars_of(self.params.entries, frame.symbol)] = True
        exit_[_bars_of(self.params.exits, frame.symbol)] = True
        close = np.asarray(frame.close, dtype=np.float64)
        p = self.params
        stop = close * (1.0 - p.stop_pct) if p.stop_pct > 0 else np.full(n, np.nan)
        target = close * (1.0 + p.target_pct) if p.target_pct > 0 else np.full(n, np.nan)
        return Signals(
            entry, exit_, np.where(entry, stop, np.nan), np.where(entry, target, np.nan), entry * 0.5, warmup=0
        )


def scripted(**params: Any) -> Scripted:
    """`scripted(entries={"AAA": (1, 5)}, exits={"AAA": (3,)}, stop_pct=0.02)`."""
    for key in ("entries", "exits"):
        if key in params:
            params[key] = _spec(params[key])
    return Scripted(ScriptedParams(**params))


def run(
    frames: list[OHLCV],
    out: Path,
    strategy: Strategy,
    *,
    profile: Profile = Profile.PAPER,
    driver: str = "replay",
    **settings: Any,
) -> RunResult:
    """One replay of the frames with the given settings (risk, broker, sizing, …) into `out`."""
    cfg = load_settings(var_dir=out.parent / "var", **settings)
    return execute_run(frames, cfg, strategy, out_dir=out, profile=profile, driver=driver)


def events(result: RunResult, name: str | None = None) -> list[dict]:
    """The run's event records (optionally only those named `name`), in log order."""
    import orjson

    lines = (result.run_dir / "events.jsonl").read_bytes().splitlines()
    records = [orjson.loads(line) for line in lines if line.strip()]
    return [r for r in records if name is None or r["event"] == name]


def transitions(records: list[dict] | RunResult) -> list[dict]:
    """The intent transitions among a run's records (or in a run's log), in log order: each `intent.transition`
    record, and each `intent.proposed` that carries its decision (journal format 5) with the decision as its payload
    (the intent id added), so both read as a transition."""
    from keel.journal.journal import transition_of

    found = records if isinstance(records, list) else events(records)
    out = []
    for r in found:
        moved = transition_of(r)
        if moved is not None:
            out.append(r if moved is r["payload"] else {**r, "payload": moved})
    return out


def fills(result: RunResult) -> list[tuple]:
    """(symbol, side, quantity, price, fee, ts) of every journalled fill, in time order."""
    import sqlite3

    with sqlite3.connect(result.run_dir / "keel.db") as con:
        return con.execute("select symbol, side, quantity, price, fee, ts from fills order by ts, fill_id").fetchall()


# -- guard scenarios: explicit stops, a broker with scripted faults, a reopened run -------------------------------


class PricedParams(ScriptedParams):
    """`Scripted`'s bars, plus explicit stop prices at entry bars ("AAA:1=98.5,4=nan"; nan: no stop), and whether the
    strategy declares that its entries carry a stop (then nothing waives a missing one)."""

    stops: str = ""
    declares_stop: bool = False


class Priced(Scripted):
    """A scripted strategy whose entry stops are given as prices (a stop on the reference, a missing stop)."""

    name: ClassVar[str] = "priced"
    Params: ClassVar[type[StrategyParams]] = PricedParams
    params: PricedParams

    @classmethod
    def make_rules(cls, params: Any) -> StrategyRules:
        rules = Scripted.make_rules(params)
        if not params.declares_stop:
            return rules
        declared = {"requires_stop": True, "stop_waived": False, "stop_waiver_reason": None}
        return StrategyRules.model_validate({**rules.model_dump(), **declared})

    def signals(self, frame: OHLCV) -> Signals:
        sig = super().signals(frame)
        stop = sig.stop.copy()
        for part in self.params.stops.split():
            name, _, spec = part.partition(":")
            if name != frame.symbol:
                continue
            for item in spec.split(","):
                i, _, price = item.partition("=")
                stop[int(i)] = float(price)
        return Signals(sig.entry, sig.exit, stop, sig.target, sig.strength, warmup=sig.warmup)


def priced(*, stops: dict[str, dict[int, float]] | None = None, **params: Any) -> Priced:
    """`priced(entries={"AAA": (1,)}, stops={"AAA": {1: 100.0}}, declares_stop=True)`."""
    for key in ("entries", "exits"):
        if key in params:
            params[key] = _spec(params[key])
    spec = " ".join(f"{s}:{','.join(f'{i}={p!r}' for i, p in by_bar.items())}" for s, by_bar in (stops or {}).items())
    return Priced(PricedParams(stops=spec, **params))


def settings_for(out: Path, **settings: Any) -> Settings:
    """The settings `run` would use for a run into `out` (its var folder beside it)."""
    return load_settings(var_dir=out.parent / "var", **settings)


class ScenarioBroker(PaperBroker):
    """The real paper broker, plus what a guard scenario needs around it: every request it is sent is recorded, its
    reference feed can lag behind the bars (or run ahead of them), and hooks run on each bar it is fed and each quote
    it gives, alone or in the account view a cycle reads (another process tripping the kill switch at a chosen
    moment). It does all the work itself."""

    def __init__(
        self,
        *,
        quote_lag: timedelta = timedelta(0),
        on_bar_hook: Callable[[str, datetime], None] | None = None,
        on_quote_hook: Callable[[str, datetime], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.quote_lag = quote_lag
        self.on_bar_hook = on_bar_hook
        self.on_quote_hook = on_quote_hook
        self.requests: list[OrderRequest] = []

    @classmethod
    def like(cls, settings: Settings, *, profile: Profile = Profile.PAPER, **kwargs: Any) -> ScenarioBroker:
        """Configured as the run would configure its own paper broker (research runs have no participation cap)."""
        b = settings.broker
        cap = None if profile is Profile.RESEARCH else b.participation_cap
        return cls(cash=b.cash, fees_bps=b.fees_bps, slippage_bps=b.slippage_bps, participation_cap=cap, **kwargs)

    def sent(self, client_order_id: str) -> list[OrderRequest]:
        """Every request the broker received under this client order id (an idempotent resubmit included)."""
        return [r for r in self.requests if r.client_order_id == client_order_id]

    def submit(self, request: OrderRequest):
        self.requests.append(request)
        return super().submit(request)

    def on_bar(self, symbol, ts, open, high, low, close, volume):
        if self.on_bar_hook is not None:
            self.on_bar_hook(symbol, ts)
        return super().on_bar(symbol, ts, open, high, low, close, volume)

    def account(self) -> Account:
        account = super().account()
        if self.on_quote_hook is not None:
            for symbol, (_, ts) in account.quotes.items():
                self.on_quote_hook(symbol, ts)
        if not self.quote_lag:
            return account
        lagged = {s: (price, ts - self.quote_lag) for s, (price, ts) in account.quotes.items()}
        return account._replace(quotes=lagged)

    def quote(self, symbol: str) -> Quote | None:
        quote = super().quote(symbol)
        if quote is None:
            return None
        if self.on_quote_hook is not None:
            self.on_quote_hook(symbol, quote.ts)
        if not self.quote_lag:
            return quote
        return Quote(
            symbol=symbol,
            ts=quote.ts - self.quote_lag,
            bid=quote.bid,
            ask=quote.ask,
            last=quote.last,
            source="bar_close",
        )


def operator(settings: Settings, state: TradingState, why: str, ts: datetime) -> None:
    """Another process (an operator's `keel kill` / `keel reduce`) changes the trading state in the control store."""
    store = ControlStore.open(control_url(settings))
    try:
        store.change_state(state, trigger="operator", actor="ops", reason=why, ts=ts, expected_change=None)
    finally:
        store.close()


def intent_rows(result: RunResult) -> dict[str, tuple]:
    """intent id -> (symbol, leg, state, quantity, last_reason) of every intent of the run."""
    import sqlite3

    with sqlite3.connect(result.run_dir / "keel.db") as con:
        rows = con.execute("select intent_id, symbol, leg, state, quantity, last_reason from intents").fetchall()
    return {r[0]: r[1:] for r in rows}


def table(result: RunResult, sql: str) -> list[tuple]:
    import sqlite3

    with sqlite3.connect(result.run_dir / "keel.db") as con:
        return con.execute(sql).fetchall()


@contextmanager
def reopened(
    result: RunResult,
    frames: list[OHLCV],
    settings: Settings,
    strategy: Strategy,
    broker: PaperBroker,
    *,
    mode: Mode = Mode.REPLAY,
    profile: Profile = Profile.PAPER,
) -> Iterator[RunContext]:
    """The context of a finished run, on its own journal and the broker that ran it (its book as last checkpointed),
    so a test can drive a node again over decisions the run already took: what a retried or replayed cycle does."""
    run_id = result.summary.run_id
    journal = Journal.open(
        url=f"sqlite:///{result.run_dir / 'keel.db'}",
        log_path=result.run_dir / "events.jsonl",
        log_id=run_id,
        write_through=mode is not Mode.REPLAY,
    )
    try:
        prepared = prepare(frames, strategy, settings, mode)
        journal.recover(ts=ns_to_datetime(int(prepared.market.timeline[0])))
        saved = journal.store.load_checkpoint(run_id)
        assert saved is not None, "the run left no checkpoint"
        simulated = SimulatedTradingState()
        yield RunContext(
            run_id=run_id,
            mode=mode,
            profile=profile,
            settings=settings,
            clock=ReplayClock(int(prepared.market.timeline[0])),
            market=prepared.market,
            strategy=strategy,
            signals=prepared.signals,
            outlooks=prepared.outlooks,
            journal=journal,
            broker=broker,
            guard=simulated,
            schedule=Schedule(np.array([], dtype=np.int64)),
            book=Book.restore(saved[1]["book"]),
            costs=broker.costs,
            simulated=simulated,
        )
        journal.commit()
    finally:
        journal.close()


def cycle_at(ctx: RunContext, t: int, **values: Any) -> dict:
    """A fresh cycle state at bar t (the clock moved there), trading active, the account as the broker has it."""
    ts_ns = ctx.market.ts_ns(t)
    ctx.clock.set_ns(ts_ns)
    state = new_cycle(t, ts_ns)
    state.update(trading_state=TradingState.ACTIVE.value, trading_reason="test", skills=account_skills(ctx.broker))
    state.update(values)
    return state
