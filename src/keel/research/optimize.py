"""Parameter search beyond grids: Optuna's TPE over a search space, each trial scored by the sweep engine.

One `Optimization` is one Optuna study of one strategy on one symbol's bars, stored in SQLite (by default
`<folder>/optuna.db`), so a search that stopped — Ctrl-C, a crash, a `--trials` that turned out too small — resumes
where it stopped: the trials already finished are read back, never run again, and only the missing ones are asked.

**Reproducible, interrupted or not.** The sampler is made afresh for every trial, seeded from the search's seed and
the number of trials finished before it (`trial_seed`), and trials run one at a time. What trial k proposes
therefore depends only on the seed and on trials 0..k-1: the same seed and data give the same trials and the same
best parameters, and a search stopped after 6 trials and resumed to 12 holds exactly the 12 trials of one that ran
12 at once. A trial that was running when the search stopped is marked failed and left out (TPE ignores failed
trials); a new one takes its place.

**Each trial** is one combination of parameters traded by `SweepEngine` over all the bars (the governed replay's
trades: `keel sweep`'s parity guarantee holds) and measured by the objective (`objectives`), oriented so that larger
is better. A trial is *pruned*, with the reason recorded, when its parameters break a rule between parameters
(`fast` must be below `slow`), when its warm-up covers the data, when it closed fewer than `min_trades` trades (a
Sharpe ratio over no trade is no evidence, and a drawdown of zero is not a skill), or when its objective has no
value. Pruned trials count towards the number asked for and teach TPE where not to look.

Library code: nothing here prints; progress goes to a callback. The folder is `study_folder`'s; the result is a plain
dict written by the caller.
"""

from __future__ import annotations

import hashlib
import math
import re
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from keel.data.frame import OHLCV, ns_to_datetime
from keel.domain.errors import InputError
from keel.research.objectives import Objective, oriented
from keel.research.optimize_space import Space
from keel.research.sweep import ComboResult, SweepEngine
from keel.research.sweep_fills import SimulationConfig

__all__ = [
    "N_STARTUP_TRIALS",
    "RESULT_FILE",
    "STORAGE_FILE",
    "STUDY_NAME",
    "Optimization",
    "Storage",
    "check_space",
    "identity",
    "trial_seed",
]

RESULT_FILE = "optimize.json"
STORAGE_FILE = "optuna.db"
STUDY_NAME = "keel"
#: trials sampled at random before TPE models the results (Optuna's default)
N_STARTUP_TRIALS = 10
_IDENTITY_ATTR = "keel.identity"
_METRICS = ("trades", "win_rate_pct", "total_return_pct", "sharpe", "sortino", "max_drawdown_pct", "calmar")


def trial_seed(seed: int, finished: int) -> int:
    """The seed of the sampler that proposes the trial after `finished` finished ones."""
    digest = hashlib.sha256(f"keel-optimize:{seed}:{finished}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def identity(
    bars: OHLCV,
    space: Space,
    objective: Objective,
    config: SimulationConfig,
    *,
    seed: int,
    min_trades: int,
    storage: str,
) -> dict[str, Any]:
    """Everything that decides a search's trials: a resumed search must match it in every key."""
    source = getattr(space.strategy, "source", None)
    return {
        "strategy": space.strategy.name,
        "strategy_source": dict(source) if source else None,
        "symbol": bars.symbol,
        "data": bars.fingerprint(),
        "space": space.describe(),
        "fixed": dict(space.fixed),
        "objective": objective.name,
        "min_trades": min_trades,
        "seed": seed,
        "sampler": {"name": "TPE", "n_startup_trials": N_STARTUP_TRIALS},
        "config": asdict(config),
        "storage": storage,
    }


def check_space(space: Space, bars: OHLCV) -> None:
    """Refuse a space none of whose corners can run (InputError): every corner breaking a rule between parameters,
    or needing more bars than the data has, means a search that could only prune."""
    corners = list(space.corners())
    if not corners:
        return  # too many to look at: the trials will tell
    valid = [c for c in corners if space.problem(c) is None]
    if not valid:
        why = space.problem(corners[0])
        raise InputError(
            f"no corner of the search space passes {space.strategy.name}'s rules ({why}, and so on)",
            hint="widen the ranges so that some combinations are valid (`keel strategies` lists each parameter's rules)",
        )
    from keel.research.sweep_signals import signal_source

    source = signal_source(space.strategy, bars)
    n = len(bars)
    if all(source.warmup(source.params(c)) >= n for c in valid):
        raise InputError(
            f"every corner of the search space needs a warm-up as long as the data or longer ({n:,} bars)",
            hint="give more data, or shorter windows",
        )


@dataclass(frozen=True)
class Storage:
    """Where the study lives: an SQLite file, by path and as the URL Optuna opens."""

    path: Path
    shown: str  # as the identity and the result name it

    @classmethod
    def parse(cls, value: str | None, folder: Path) -> Storage:
        """`--storage`: a path or an `sqlite:///path` URL (default `<folder>/optuna.db`); other databases refused."""
        if value is None:
            return cls(Path(folder) / STORAGE_FILE, STORAGE_FILE)
        text = value.strip()
        if text.startswith("sqlite:///"):
            raw = text[len("sqlite:///") :]
        elif "://" in text:
            raise InputError(
                f"--storage {value}: only SQLite storages are supported (a path, or sqlite:///path)",
                hint="leave --storage out to keep the study in the --out folder",
            )
        else:
            raw = text
        if not raw or raw == ":memory:":
            raise InputError(f"--storage {value}: give a file (an in-memory database cannot be resumed)")
        path = Path(raw).expanduser()
        if path.exists() and path.is_dir():
            raise InputError(f"--storage {value}: names a folder, not a file")
        if not path.parent.is_dir():
            raise InputError(f"--storage {value}: the folder {path.parent} does not exist")
        return cls(path, str(path.resolve()))

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path.resolve()}"

    def open(self) -> Any:
        """Optuna's storage on this file, in WAL mode with `synchronous=NORMAL`: a committed trial survives the
        process being killed (not a power cut of the machine), and a trial costs a millisecond of database instead
        of a dozen fsyncs."""
        from optuna.storages import RDBStorage

        path = str(self.path.resolve())

        def connect() -> sqlite3.Connection:
            con = sqlite3.connect(path, check_same_thread=False, timeout=30.0)
            con.execute("pragma journal_mode = wal")
            con.execute("pragma synchronous = normal")
            return con

        return RDBStorage(self.url, engine_kwargs={"creator": connect})

    def inspect(self, study_identity: dict[str, Any], *, ours: bool) -> None:
        """Read-only: refuse a file that is not an Optuna storage, or holds no study of this search, unless the
        folder is this search's own (`ours`: Keel made the file). A study of this name with another identity is
        refused by `Optimization.open`, naming the difference."""
        if not self.path.exists() or ours:
            return
        where = f"--storage {self.path}"
        with open(self.path, "rb") as fh:
            header = fh.read(16)
        if header and header != b"SQLite format 3\x00":
            raise InputError(f"{where}: not an SQLite database; nothing was written", hint="give a new file")
        try:
            con = sqlite3.connect(f"file:{self.path.resolve()}?mode=ro", uri=True)
            try:
                tables = {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}
                names = [r[0] for r in con.execute("select study_name from studies")] if "studies" in tables else None
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise InputError(f"{where}: cannot be read as SQLite ({exc}); nothing was written") from None
        if names is None:
            raise InputError(
                f"{where}: a file that is not an Optuna storage; Keel does not write into a file it did not make; "
                "nothing was written",
                hint="give a new file, or the storage a keel optimize made",
            )
        if STUDY_NAME not in names:
            raise InputError(
                f"{where}: an Optuna storage without a study of keel optimize ({', '.join(names) or 'no study'}); "
                "Keel does not add to a storage it did not make; nothing was written",
                hint="give a new file, or the storage a keel optimize made",
            )


@dataclass
class Optimization:
    """One search: a strategy's space over one symbol's bars, stored in `storage`."""

    bars: OHLCV
    space: Space
    objective: Objective
    config: SimulationConfig
    seed: int
    min_trades: int
    storage: Storage
    identity: dict[str, Any]
    _study: Any = field(default=None, repr=False)
    _storage: Any = field(default=None, repr=False)
    _engine: SweepEngine | None = field(default=None, repr=False)
    _cache: dict[tuple, tuple[float | None, dict[str, Any], str | None]] = field(default_factory=dict, repr=False)

    # -- the study ------------------------------------------------------------------------------------------------

    def open(self) -> None:
        """Create the study, or load it and check it is this search's (InputError naming every difference)."""
        import optuna

        from keel.research.study_folder import differences

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        mine = self._study_identity()
        self._storage = self.storage.open()
        study = optuna.create_study(
            storage=self._storage, study_name=STUDY_NAME, direction="maximize", load_if_exists=True
        )
        theirs = study.user_attrs.get(_IDENTITY_ATTR)
        if theirs is None and study.trials:
            raise InputError(
                f"--storage {self.storage.path}: its study '{STUDY_NAME}' was not made by keel optimize; nothing "
                "was added",
                hint="give a new file",
            )
        if theirs is None:
            study.set_user_attr(_IDENTITY_ATTR, mine)
        elif theirs != mine:
            diff = "; ".join(differences(theirs, mine))
            raise InputError(
                f"--storage {self.storage.path}: its study is another search, which differs in {diff}; nothing was "
                "added",
                hint="give another --storage (or --out) for this search, or the options the study was made with",
            )
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            # a trial running when a search was killed: nobody will finish it (the folder is locked)
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        self._study = study

    def close(self) -> None:
        """Close the storage's connections now. SQLite folds the WAL into the database file when the last
        connection closes; left to the garbage collector, that write would land later, after the folder's lock is
        released, in a folder another command may be reading."""
        if self._storage is not None:
            self._storage.remove_session()
            self._storage.engine.dispose()
            self._storage = None
        self._study = None

    def _study_identity(self) -> dict[str, Any]:
        return {k: v for k, v in self.identity.items() if k != "storage"}

    def finished(self) -> list[Any]:
        """The trials that count (complete or pruned), in order."""
        from optuna.trial import TrialState

        return self._study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))

    # -- running --------------------------------------------------------------------------------------------------

    def run(self, trials: int, on_trial: Callable[[int, int, float | None], None] | None = None) -> int:
        """Ask trials until `trials` have finished; returns how many ran now. On Ctrl-C the trial running is marked
        failed (so it is asked again on resume) and the KeyboardInterrupt propagates."""
        from optuna.samplers import TPESampler
        from optuna.trial import TrialState

        study = self._study
        distributions = self.space.distributions()
        done = len(self.finished())
        ran = 0
        best = self.best_value()
        if on_trial is not None:
            on_trial(done, trials, best)
        while done < trials:
            study.sampler = TPESampler(
                seed=trial_seed(self.seed, done), n_startup_trials=N_STARTUP_TRIALS, constant_liar=False
            )
            trial = study.ask(fixed_distributions=distributions)
            try:
                value, metrics, why = self.score({**self.space.fixed, **trial.params})
            except BaseException:
                study.tell(trial, state=TrialState.FAIL)
                raise
            trial.set_user_attr("metrics", metrics)
            if why is not None:
                trial.set_user_attr("pruned_because", why)
                study.tell(trial, state=TrialState.PRUNED)
            else:
                study.tell(trial, value)
                best = value if best is None or value > best else best
            done += 1
            ran += 1
            if on_trial is not None:
                on_trial(done, trials, best)
        return ran

    def score(self, params: Mapping[str, Any]) -> tuple[float | None, dict[str, Any], str | None]:
        """(objective value, metrics, why pruned) of one combination; the same combination is simulated once."""
        key = tuple(sorted(params.items()))
        got = self._cache.get(key)
        if got is not None:
            return got
        problem = self.space.problem(params)
        if problem is not None:
            got = (None, {}, problem)
        else:
            engine = self._engine
            if engine is None:
                engine = self._engine = SweepEngine(self.bars, self.space.strategy, self.config)
            if engine.warmup(params) >= engine.n:
                got = (None, {}, f"warm-up as long as the data or longer ({engine.n:,} bars)")
            else:
                result = engine.evaluate(0, params)
                got = self._judge(result)
        self._cache[key] = got
        return got

    def _judge(self, result: ComboResult) -> tuple[float | None, dict[str, Any], str | None]:
        metrics = {k: getattr(result, k) for k in _METRICS} | {"final_equity": result.final_equity}
        value = oriented(result, self.objective)
        if result.trades < self.min_trades:
            return None, metrics, f"fewer than {self.min_trades} closed trade(s)"
        if math.isnan(value):
            return None, metrics, f"{self.objective.name} has no value"
        return value, metrics, None

    # -- the result -----------------------------------------------------------------------------------------------

    def best_value(self) -> float | None:
        best = self.best_trial()
        return None if best is None else float(best.value)

    def best_trial(self) -> Any:
        """The complete trial of the largest value (the earliest of equals), or None."""
        from optuna.trial import TrialState

        best = None
        for t in self.finished():
            if t.state == TrialState.COMPLETE and (best is None or t.value > best.value):
                best = t
        return best

    def result(self, trials: int, *, data: str, interrupted: bool = False) -> dict[str, Any]:
        """The search as `optimize.json` holds it: best parameters and score, every trial, whether it is complete."""
        finished = self.finished()
        complete = len(finished) >= trials and not interrupted
        best = self.best_trial()
        pruned: dict[str, int] = {}
        rows = []
        for t in finished:
            why = t.user_attrs.get("pruned_because")
            if why is not None:
                rule = re.sub(r"\s*\([^)]*\)", "", why)  # 'fast (50) must be below slow (20)': one count per rule
                pruned[rule] = pruned.get(rule, 0) + 1
            rows.append(
                {
                    "number": t.number,
                    "state": t.state.name.lower(),
                    "params": {**self.space.fixed, **t.params},
                    "value": t.value,
                    "metrics": t.user_attrs.get("metrics", {}),
                    "pruned_because": why,
                }
            )
        n = len(self.bars)
        return {
            "schema": "keel.optimize/1",
            "complete": complete,
            "status": "complete"
            if complete
            else f"interrupted: {len(finished)} of {trials} trials finished (run the same command again to resume)",
            "strategy": self.space.strategy.name,
            "symbol": self.bars.symbol,
            "data": {
                "file": data,
                "fingerprint": self.bars.fingerprint(),
                "bars": n,
                "start": ns_to_datetime(int(self.bars.ts[0])).isoformat(),
                "end": ns_to_datetime(int(self.bars.ts[-1])).isoformat(),
            },
            "space": self.space.describe(),
            "fixed": dict(self.space.fixed),
            "objective": self.objective.name,
            "objective_about": self.objective.about
            + ("; maximized as its negative" if not self.objective.higher_is_better else ""),
            "min_trades": self.min_trades,
            "sampler": {"name": "TPE", "seed": self.seed, "n_startup_trials": N_STARTUP_TRIALS},
            "storage": self.storage.shown,
            "study": STUDY_NAME,
            "config": asdict(self.config),
            "trials_asked": trials,
            "trials_finished": len(finished),
            "complete_trials": sum(1 for r in rows if r["state"] == "complete"),
            "pruned": pruned,
            "best": None
            if best is None
            else {
                "number": best.number,
                "params": {**self.space.fixed, **best.params},
                "value": best.value,
                "metrics": best.user_attrs.get("metrics", {}),
            },
            "trials": rows,
        }
