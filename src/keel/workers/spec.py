"""What a worker process needs to run, as one value: given by `keel worker start` from the settings, or written by a
drill to a file its worker processes read. The venue's keys are never part of it: they come from the environment
(`KEEL_VENUE__API_KEY`, `KEEL_VENUE__API_SECRET`), as every venue-backed command takes them."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KEY_ENV, SECRET_ENV = "KEEL_VENUE__API_KEY", "KEEL_VENUE__API_SECRET"


@dataclass(frozen=True)
class VenueSpec:
    exchange: str
    symbols: tuple[str, ...]
    quote: str = "USDT"
    api_url: str | None = None
    sandbox: bool = True
    timeout_ms: int = 10_000
    #: ccxt's own spacing of calls, ms (None: the exchange's default; the local exchange needs none)
    rate_limit_ms: int | None = None


@dataclass(frozen=True)
class WorkerSpec:
    worker_id: str
    #: the journal the intents are claimed from (SQLAlchemy URL)
    journal_url: str
    #: the control store the trading state is read from (SQLAlchemy URL)
    control_url: str
    #: the folder of the worker's own event log (`<log_dir>/<worker_id>.jsonl`)
    log_dir: str
    venue: VenueSpec
    collar_pct: float = 5.0
    #: the longest a worker sleeps with nothing to do before it looks for approved intents again
    idle_wait_s: float = 0.02
    heartbeat_s: float = 0.5
    #: an unknown submit the venue still does not hold after this long is failed (never sent again)
    unknown_grace_s: float = 5.0
    #: how often the SQLite watch polls `PRAGMA data_version`
    watch_interval_s: float = 0.002
    #: intents looked at per pass, and the seed that orders them (workers spread over a batch instead of racing for
    #: its first intent)
    batch: int = 16
    seed: int = 0
    #: consecutive unknown submits that trip the kill switch (`risk.max_broker_failures`); 0: never (a drill
    #: that injects them on purpose)
    max_broker_failures: int = 3
    #: a halt this worker makes itself waits this long, on a thread of its own, for the other live workers to confirm
    #: it (`venue.halt_confirm_seconds`; 0: do not check)
    halt_confirm_s: float = 5.0
    #: chaos drills only: the folder of the faults to inject, by intent id (None: no fault injection)
    chaos_dir: str | None = None
    connect_args: dict[str, Any] = field(default_factory=dict)
    #: a drill's worker stops when the drill that started it is gone, wherever it is (None: runs until stopped)
    parent_pid: int | None = None
    #: claim only this run's intents (a session's workers, `keel worker start --session`); None: every run's
    run_id: str | None = None
    #: the kill switch's signal file (`<home>/HALT`, `keel.risk.signal_file`): while it exists the worker is halted
    halt_file: str | None = None

    @property
    def log_path(self) -> Path:
        return Path(self.log_dir) / f"{self.worker_id}.jsonl"

    @property
    def actor(self) -> str:
        return f"worker-{self.worker_id}"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        data = json.loads(text)
        v = data.pop("venue")
        v["symbols"] = tuple(v["symbols"])
        return cls(venue=VenueSpec(**v), **data)


def venue_keys() -> tuple[str, str]:
    """The venue's keys from the environment; a missing one is a `ConfigError` naming it."""
    from keel.domain.errors import ConfigError

    key, secret = os.environ.get(KEY_ENV), os.environ.get(SECRET_ENV)
    if not key or not secret:
        raise ConfigError([f"a worker needs the venue's keys in {KEY_ENV} and {SECRET_ENV}"])
    return key, secret
