"""One source of truth for configuration.

Precedence: explicit argument > `KEEL_*` environment > `keel.toml` > defaults. No other module reads the
environment. Every model forbids unknown keys, and `check_settings` collects every problem before failing,
so a user fixes a config in one pass.
"""

from __future__ import annotations

import contextvars
import dataclasses
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from keel.domain.decisions import ApprovalMode, CriticVerdict, NoTradeTrigger
from keel.domain.errors import ConfigError

ENV_PREFIX = "KEEL_"
ENV_NESTED = "__"
#: The one environment variable that is not a setting: where to find the config file.
CONFIG_ENV = "KEEL_CONFIG"
DEFAULT_CONFIG_FILE = Path("keel.toml")
#: The folder the user's state lives in when `home` is not set: `$XDG_STATE_HOME/keel`, else this.
DEFAULT_STATE_HOME = Path("~/.local/state")

_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar("keel_config_file", default=None)


class Mode(StrEnum):
    REPLAY = "replay"
    SHADOW = "shadow"
    PAPER = "paper"
    TESTNET = "testnet"
    LIVE = "live"


class Profile(StrEnum):
    """`research` derives limits from equity so a strategy is evaluated as written (every gate still runs);
    `paper` uses the configured limits."""

    RESEARCH = "research"
    PAPER = "paper"


def default_home() -> Path:
    """Where the control plane lives unless `home` says otherwise: `$XDG_STATE_HOME/keel` when that variable holds an
    absolute path (the XDG rule: a relative one is ignored), else `~/.local/state/keel`. Never the current directory."""
    xdg = os.environ.get("XDG_STATE_HOME", "").strip()
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "keel"
    try:
        return DEFAULT_STATE_HOME.expanduser() / "keel"
    except RuntimeError:  # no home directory to expand `~` to: the validator says so
        return DEFAULT_STATE_HOME / "keel"


def check_home(value: Path | str) -> Path:
    """`home` as an absolute path (`~` expanded); a relative one would move with the working directory."""
    text = str(value).strip()
    if not text:
        raise ValueError("must not be empty")
    try:
        path = Path(text).expanduser()
    except RuntimeError:
        raise ValueError(f"cannot expand '~' in {text!r}: no home directory is known; give an absolute path") from None
    if not path.is_absolute():
        raise ValueError(
            f"must be an absolute path (or start with ~), got {text!r}: the control store must not depend on the "
            "working directory"
        )
    return path


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RiskLimits(_Section):
    """Hard limits the supervisor enforces. Set before deployment; there is no run without them."""

    max_order_notional: float = Field(10_000.0, gt=0, description="per-order notional cap, account currency")
    max_exposure: float = Field(50_000.0, gt=0, description="total exposure cap, open orders included")
    max_open_positions: int = Field(5, ge=1, description="positions open at once")
    max_daily_loss: float = Field(2_000.0, gt=0, description="loss since the day's start that blocks new risk")
    max_orders_per_minute: int = Field(30, ge=1, description="orders per rolling 60 s window")
    symbol_allowlist: list[str] = Field(default_factory=list, description="empty: every symbol of the data")
    price_collar_pct: float = Field(5.0, gt=0, le=50, description="limit price band around the reference, %")
    max_reference_age_seconds: float = Field(300.0, gt=0, description="older reference prices fail closed")
    require_stop: bool = Field(True, description="entries must carry a protective stop (unless waived)")
    resume_cooldown_seconds: float = Field(300.0, ge=0, description="how long a halt lasts before resume is allowed")
    max_drawdown_pct: float = Field(
        15.0, gt=0, le=100, allow_inf_nan=False, description="equity this far below its peak trips the kill switch, %"
    )
    max_broker_failures: int = Field(3, ge=1, description="broker failures in a row that trip the kill switch")
    max_missed_heartbeats: int = Field(3, ge=1, description="sessions: broker heartbeats missed in a row that halt")
    max_repeated_orders: int = Field(
        10,
        ge=1,
        description="identical orders (symbol, side, size, price) allowed in the repeat window; one more halts",
    )
    repeat_window_seconds: float = Field(60.0, gt=0, allow_inf_nan=False, description="the repeat window")
    trip_on_daily_loss: bool = Field(
        True, description="reaching max_daily_loss also trips the kill switch to reducing (an operator resumes)"
    )
    flatten_on_halt: bool = Field(
        False,
        description="a halt also closes every position of the run, through the audited emergency path (a sell at "
        "the collar, each an intent of leg `flatten`); off: positions are held until an operator acts",
    )
    operators: list[str] = Field(
        default_factory=list,
        description="actor ids with the risk role (may lift a halt or a reduce); empty: the local OS user only",
    )

    @field_validator("operators")
    @classmethod
    def _operator_ids(cls, v: list[str]) -> list[str]:
        ids = [str(a).strip() for a in v]
        if any(not a for a in ids):
            raise ValueError("an actor id must not be empty")
        return ids


class JournalSettings(_Section):
    url: SecretStr | None = Field(None, description="SQLAlchemy URL; empty: <run folder>/keel.db (SQLite WAL)")
    batch_size: int = Field(20_000, ge=1, description="replay: journal operations per committed batch")


class BrokerSettings(_Section):
    cash: float = Field(100_000.0, gt=0, allow_inf_nan=False, description="paper account starting cash")
    fees_bps: float = Field(1.0, ge=0, le=1_000, allow_inf_nan=False, description="fees, basis points of notional")
    slippage_bps: float = Field(
        1.0, ge=0, le=1_000, allow_inf_nan=False, description="market order slippage, basis points"
    )
    participation_cap: float | None = Field(
        0.1,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="max fraction of a bar's volume one order may fill; empty: no cap",
    )
    unknown_grace_seconds: float = Field(
        30.0,
        ge=0,
        allow_inf_nan=False,
        description="a submit whose outcome was unknown fails only if the broker still has no such order this long after",
    )


class PromotionCriteria(_Section):
    """When the shadow-auto record supports moving one scope (a strategy on a symbol) from manual to auto approval
    (`keel approvals shadow-report`). Only operators' decisions count: an intent that expired undecided says nothing
    about what a person would have done."""

    min_decisions: int = Field(30, ge=1, description="operators' decisions a scope needs before it can be promoted")
    min_agreement: float = Field(
        0.95, ge=0, le=1, description="share of those decisions where the auto policy would have done the same"
    )
    max_unsafe: int = Field(
        0, ge=0, description="intents the auto policy would have sent that an operator rejected; above it: not met"
    )
    max_rubber_stamped: float = Field(
        0.1,
        ge=0,
        le=1,
        description="share of approvals given faster than approval.min_review_seconds; above it the record is no "
        "evidence of review",
    )


class ApprovalSettings(_Section):
    mode: ApprovalMode = ApprovalMode.AUTO
    ttl_seconds: float = Field(300.0, gt=0, description="pending approvals expire after this")
    auto_max_notional: float | None = Field(None, gt=0, description="auto-approve up to this notional")
    auto_approver: str = Field("auto-policy", min_length=1)
    approvers: list[str] = Field(
        default_factory=list,
        description="actor ids who may approve or reject a pending intent; empty: the local OS user only",
    )
    min_review_seconds: float = Field(
        10.0,
        ge=0,
        allow_inf_nan=False,
        description="approvals given faster than this after the request are flagged as rubber-stamping in the "
        "shadow-auto report",
    )
    promotion: PromotionCriteria = Field(default_factory=PromotionCriteria)

    @field_validator("approvers")
    @classmethod
    def _approver_ids(cls, v: list[str]) -> list[str]:
        ids = [str(a).strip() for a in v]
        if any(not a for a in ids):
            raise ValueError("an actor id must not be empty")
        return ids


class SizingMethod(StrEnum):
    ALL_IN = "all_in"
    FIXED_NOTIONAL = "fixed_notional"
    VOLATILITY = "volatility"


class SizingSettings(_Section):
    method: SizingMethod = SizingMethod.VOLATILITY
    fixed_notional: float = Field(5_000.0, gt=0)
    risk_per_trade_pct: float = Field(0.5, gt=0, le=100, description="volatility sizing: equity % at risk")
    vol_window: int = Field(50, ge=2)
    per_symbol_budget_pct: float = Field(25.0, gt=0, le=100, description="max equity % in one symbol")


class StrategySettings(_Section):
    name: str = "sma_cross"
    params: dict[str, int | float | str | bool] = Field(default_factory=dict)


class OutlookSettings(_Section):
    vol_window: int = Field(50, ge=5)
    trend_window: int = Field(200, ge=5)
    vol_spike_ratio: float = Field(4.0, gt=1, description="NO-TRADE when short vol exceeds long vol by this")
    high_vol_ratio: float = Field(2.0, gt=1)


class ReportSettings(_Section):
    """What a run writes into its folder besides its journal. Not part of the run's identity: asking a complete run
    for another file rebuilds it from the journal instead of running again."""

    equity_csv: bool = Field(False, description="also write equity.csv (cents, for spreadsheets) beside equity.parquet")


class DemoSettings(_Section):
    symbols: int = Field(3, ge=1, le=50)
    bars: int = Field(50_000, ge=100)
    seed: int = 7
    start: str = "2024-01-01T00:00:00+00:00"
    interval_seconds: int = Field(60, ge=1)


def _llm_problem(kind: str, message: str, shown: dict[str, Any]) -> ValidationError:
    """A validation error that quotes only `shown`. A ValueError raised in a model validator would quote the model's
    whole input, API keys in clear included."""
    error = PydanticCustomError(kind, message.replace("{", "{{").replace("}", "}}"))
    return ValidationError.from_exception_data("LLMSettings", [InitErrorDetails(type=error, loc=(), input=shown)])


class LLMBackoff(_Section):
    """Exponential backoff between attempts, with full jitter: attempt n waits a random time in
    [0, min(max_s, base_s * 2**(n-1))]."""

    base_s: float = Field(0.5, gt=0, allow_inf_nan=False, description="first retry waits up to this, seconds")
    max_s: float = Field(8.0, gt=0, allow_inf_nan=False, description="no retry waits longer than this, seconds")


class LLMBreaker(_Section):
    """The circuit breaker of one provider: this many failed calls in a row open it; after the cooldown one trial
    call is let through (half-open)."""

    failure_threshold: int = Field(5, ge=1, description="failed calls in a row that open the breaker")
    cooldown_s: float = Field(60.0, gt=0, allow_inf_nan=False, description="how long it stays open, seconds")


class LLMPrices(_Section):
    """What the provider charges, for the cost estimate in each call's telemetry (0: free, e.g. a local model)."""

    prompt_per_1k: float = Field(0.0, ge=0, allow_inf_nan=False, description="USD per 1,000 prompt tokens")
    completion_per_1k: float = Field(0.0, ge=0, allow_inf_nan=False, description="USD per 1,000 completion tokens")


class LLMRoleSettings(_Section):
    """One advisory role's model. Off by default: the deterministic role decides unless `enabled` is true."""

    enabled: bool = Field(False, description="ask this role's model; false: the deterministic role alone")
    base_url: str = Field(
        "http://127.0.0.1:8000/v1", min_length=1, description="an OpenAI-compatible API (chat completions)"
    )
    model: str = Field("", description="the model name the provider knows; required when enabled")
    api_key: SecretStr | None = Field(None, description="sent as a bearer token; never shown nor logged")
    timeout_s: float = Field(30.0, gt=0, le=600, allow_inf_nan=False, description="per attempt (connect, read)")
    max_attempts: int = Field(3, ge=1, le=10, description="attempts per call, the first included")
    retry_after_max_s: float = Field(
        30.0, ge=0, allow_inf_nan=False, description="a Retry-After longer than this ends the call instead of waiting"
    )
    backoff: LLMBackoff = Field(default_factory=LLMBackoff)
    breaker: LLMBreaker = Field(default_factory=LLMBreaker)
    prices: LLMPrices = Field(default_factory=LLMPrices)
    prompt_version: str = Field(
        "v1", pattern=r"^v[0-9]+$", description="the prompt file this role sends (llm/prompts/<role>/<version>.txt)"
    )
    max_completion_tokens: int = Field(
        512, ge=16, le=32_768, description="the answer's token cap, sent with each request and reserved in the budget"
    )
    knowledge_cutoff: date | None = Field(
        None, description="the model's training cutoff: a replay over earlier bars is flagged in its summary"
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.strip().lower().startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:8000/v1")
        return v.strip()

    @model_validator(mode="after")
    def _no_credentials_in_url(self) -> LLMRoleSettings:
        # the URL is shown and recorded (config show, telemetry, errors): credentials belong in api_key only, and
        # this error must not quote them either
        if "@" in self.base_url.split("//", 1)[1].split("/", 1)[0]:
            raise _llm_problem(
                "credentials_in_url",
                "base_url must not carry credentials (user:password@host): put the key in api_key",
                {"base_url": "(not shown: it carries credentials)"},
            )
        return self

    @model_validator(mode="after")
    def _model_when_enabled(self) -> LLMRoleSettings:
        if self.enabled and not self.model.strip():
            raise _llm_problem(
                "model_required",
                "enabled needs a model: set model to the name the provider knows",
                {"enabled": True, "model": self.model},
            )
        return self

    @property
    def provider_id(self) -> str:
        """Who answers: the base URL without a trailing slash, lower case (one breaker per provider)."""
        return self.base_url.strip().rstrip("/").lower()


class LLMBudget(_Section):
    """Hard spending limits for the models of one run (all roles together). Each call reserves its worst case
    (prompt estimate plus `max_completion_tokens`) before it is made and is then charged what it used, once across its
    retries; a call whose reservation does not fit is not made, and the models stay off for the rest of the run (the
    deterministic roles decide) with an alert in the journal. None: no limit. "Per day" is the decision clock's UTC day
    (a session's: today; a replay's: the bar's day), counted within the run."""

    max_tokens_per_run: int | None = Field(None, ge=1, description="tokens (prompt + completion) one run may use")
    max_cost_usd_per_run: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="estimated USD one run may spend (at llm.<role>.prices)"
    )
    max_tokens_per_day: int | None = Field(None, ge=1, description="tokens per UTC day of the decision clock")
    max_cost_usd_per_day: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="estimated USD per UTC day of the decision clock"
    )


class LLMCassetteMode(StrEnum):
    OFF = "off"
    RECORD = "record"
    REPLAY = "replay"


class LLMCassette(_Section):
    """Record the models' answers of a run, or replay them with no network (one file per role: `<dir>/<role>.jsonl`)."""

    mode: LLMCassetteMode = Field(LLMCassetteMode.OFF, description="off | record | replay")
    dir: Path | None = Field(None, description="the folder of the role files; required unless mode is off")

    @model_validator(mode="after")
    def _dir_when_on(self) -> LLMCassette:
        if self.mode is not LLMCassetteMode.OFF and self.dir is None:
            raise ValueError(f"cassette mode {self.mode.value} needs llm.cassette.dir (the folder of its files)")
        return self


class LLMCache(_Section):
    """Answers that validated, kept on disk and served again for the same request to the same endpoint within the TTL:
    no call, no tokens, no cost (docs/llm.md). Off with a cassette, which is its own record of answers."""

    enabled: bool = Field(False, description="serve repeated requests from the cache")
    path: Path | None = Field(None, description="the cache's SQLite file; empty: <home>/llm-cache.db")
    ttl_s: float = Field(
        86_400.0,
        gt=0,
        allow_inf_nan=False,
        description="an answer older than this (wall clock, seconds) is asked again",
    )


class LLMDegrade(_Section):
    """Degrade mode, entered when a provider's circuit breaker opens and left only by an operator's recorded resume:
    entries need a person's approval, their notional is scaled down, and a non-empty symbol allowlist is required.
    Exits always pass."""

    notional_factor: float = Field(
        0.25, gt=0, le=0.25, allow_inf_nan=False, description="entries' notional is multiplied by this (at most 0.25)"
    )


class LLMMemory(_Section):
    """Decision memory (docs/llm.md): the outcomes of the run's earlier model-advised trades, closed before the
    decision bar, shown to the strategist and critic models as a bounded `memory/1` block. Off by default, so prompts,
    cassettes and run ids stay what they were."""

    enabled: bool = Field(False, description="show the models what became of their earlier advice")
    max_items: int = Field(10, ge=1, le=50, description="the block holds at most this many closed trades, the latest")


#: where no model output may ever go (ARCHITECTURE §2: L5 the risk gate, the approval, L6 execution)
_NEVER_SCOPED = ("supervisor", "risk", "limits", "approval", "executor", "execution", "broker", "orders")
_MODEL_ROLES = ("outlook", "strategist", "critic")


class LLMScopes(_Section):
    """Capability scopes, as data: which layers may ask a model at all, and what each model's answer may do. An answer
    outside its scope is LLM_SCOPE_VIOLATION and is not used (the deterministic role decides). The strategist's scope
    is its bounds, computed at each decision (symbols, buy only, the allocator's size). There is no scope for the
    supervisor's limits, the approval or the executor: no model output reaches them, and naming one here is refused."""

    roles: tuple[str, ...] = Field(
        _MODEL_ROLES, description="the layers that may ask a model: outlook, strategist, critic"
    )
    outlook_no_trade: tuple[NoTradeTrigger, ...] = Field(
        tuple(NoTradeTrigger), description="the NO-TRADE triggers the outlook model may add (it never removes one)"
    )
    critic_verdicts: tuple[CriticVerdict, ...] = Field(
        tuple(CriticVerdict), description="the verdicts the critic model may give (REJECT blocks, others do not)"
    )

    @model_validator(mode="before")
    @classmethod
    def _never_beyond_advice(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            named = sorted(k for k in data if str(k).lower() in _NEVER_SCOPED)
            if named:
                raise ValueError(
                    f"llm.scopes.{named[0]}: no model output may reach the supervisor's limits, the approval or the "
                    "executor; scopes exist only for roles, outlook_no_trade and critic_verdicts"
                )
        return data

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [r for r in v if r not in _MODEL_ROLES]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a role that may ask a model: only {', '.join(_MODEL_ROLES)}")
        return tuple(dict.fromkeys(v))

    @property
    def is_default(self) -> bool:
        return self == LLMScopes()


class LLMSettings(_Section):
    """The LLM advisory layer (docs/llm.md). Models advise; they never reach the limits, the approval or the executor."""

    outlook: LLMRoleSettings = Field(default_factory=LLMRoleSettings)
    strategist: LLMRoleSettings = Field(default_factory=LLMRoleSettings)
    critic: LLMRoleSettings = Field(default_factory=LLMRoleSettings)
    budget: LLMBudget = Field(default_factory=LLMBudget)
    cassette: LLMCassette = Field(default_factory=LLMCassette)
    cache: LLMCache = Field(default_factory=LLMCache)
    degrade: LLMDegrade = Field(default_factory=LLMDegrade)
    memory: LLMMemory = Field(default_factory=LLMMemory)
    scopes: LLMScopes = Field(default_factory=LLMScopes)
    context_bars: int = Field(20, ge=1, le=500, description="closes up to the decision bar shown in each prompt")

    @property
    def enabled_roles(self) -> dict[str, LLMRoleSettings]:
        return {
            name: r
            for name, r in (("outlook", self.outlook), ("strategist", self.strategist), ("critic", self.critic))
            if r.enabled
        }

    @model_validator(mode="after")
    def _roles_in_scope(self) -> LLMSettings:
        outside = [name for name in self.enabled_roles if name not in self.scopes.roles]
        if outside:
            raise _llm_problem(
                "role_out_of_scope",
                f"llm.{outside[0]} is enabled but llm.scopes.roles ({', '.join(self.scopes.roles) or 'none'}) does "
                "not let that layer ask a model: disable it or add it to the scopes",
                {"enabled": sorted(self.enabled_roles), "scopes.roles": list(self.scopes.roles)},
            )
        return self

    @model_validator(mode="after")
    def _separation_of_duties(self) -> LLMSettings:
        s, c = self.strategist, self.critic
        if s.enabled and c.enabled and (s.provider_id, s.model.strip()) == (c.provider_id, c.model.strip()):
            raise _llm_problem(
                "separation_of_duties",
                f"llm.critic uses the strategist's model ({c.model.strip()} at {c.provider_id}): separation of duties "
                "needs another model or provider for the critic, or llm.critic.enabled = false",
                {r: {"base_url": x.base_url, "model": x.model} for r, x in (("strategist", s), ("critic", c))},
            )
        return self


class ApiSettings(_Section):
    """`keel serve`: the operator's HTTP API. Loopback by default: binding another address is a deliberate choice
    (and wants TLS in front of it, since bearer tokens cross the wire)."""

    host: str = Field("127.0.0.1", min_length=1, description="address `keel serve` binds; default loopback only")
    port: int = Field(8765, ge=1, le=65_535, description="port `keel serve` listens on")
    stale_heartbeat_seconds: float = Field(
        10.0, gt=0, allow_inf_nan=False, description="/ready: a live session whose heartbeat is older is not ready"
    )


class RoutingRule(_Section):
    """One routing rule: the intents of `strategy` (any, when empty) on `symbol` (any, when empty) go to `venue`."""

    venue: str = Field(min_length=1, description="a ccxt exchange id")
    strategy: str = Field("", description="a strategy name; empty: any")
    symbol: str = Field("", description="a canonical symbol (BTC/USDT); empty: any")

    @model_validator(mode="after")
    def _names_something(self) -> RoutingRule:
        if not self.strategy and not self.symbol:
            raise ValueError("a routing rule names a strategy, a symbol or both (the default venue covers the rest)")
        return self


class RoutingSettings(_Section):
    """Which venue each strategy's intents go to, and what happens when one is down (docs/runbooks/venue-failover.md).
    The most specific rule wins (strategy and symbol, then symbol, then strategy), else the default."""

    default: str = Field("", description="the venue intents go to when no rule matches; empty: venue.exchange")
    rules: list[RoutingRule] = Field(
        default_factory=list, description="[[venue.routing.rules]] venue, strategy, symbol"
    )
    on_down: Literal["halt", "fallback_exits"] = Field(
        "halt",
        description="a venue down: halt the strategies routed to it, or send only their exits to venue.routing.fallback",
    )
    fallback: str = Field("", description="the venue exits go to while theirs is down (on_down = fallback_exits)")
    down_after: int = Field(
        3, ge=1, le=100, description="consecutive failed heartbeats or submits after which a venue is down"
    )

    @model_validator(mode="after")
    def _fallback_named(self) -> RoutingSettings:
        if self.on_down == "fallback_exits" and not self.fallback:
            raise ValueError("on_down = fallback_exits needs venue.routing.fallback (the venue exits go to)")
        if self.fallback and self.fallback == self.default:
            raise ValueError(f"venue.routing.fallback is the default venue ({self.fallback}): name another one")
        return self


class VenueConnection(_Section):
    """One further venue a session may route to (`[venue.venues.<id>]`): its own exchange, keys and URLs. The id is
    the venue's name in routing rules, the journal and fill ids; `exchange` is its ccxt class (the id when empty)."""

    exchange: str = Field("", description="a ccxt exchange id; empty: the venue's id")
    api_key: SecretStr | None = Field(None, description="the venue API key; never shown nor logged")
    api_secret: SecretStr | None = Field(None, description="that key's secret; never shown nor logged")
    sandbox: bool = Field(True, description="the exchange's testnet (ccxt set_sandbox_mode); false: the real venue")
    api_url: str | None = Field(
        None, description="every API of the venue at this base URL instead (e.g. the local exchange)"
    )
    timeout_ms: int = Field(10_000, ge=100, le=120_000, description="per HTTP request to the venue")
    dead_man_seconds: float = Field(
        60.0, ge=0, le=3_600, allow_inf_nan=False, description="the venue's dead-man switch; 0: not armed"
    )
    cash: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="the part of broker.cash this venue buys with (the main: the rest)"
    )


class VenueSettings(_Section):
    """The exchange a venue-backed command talks to through ccxt (`keel venue check`; testnet sessions later). Keys
    come from here only (`keel.toml` or `KEEL_VENUE__API_KEY` / `KEEL_VENUE__API_SECRET`), never from a command
    line, and are masked wherever settings are shown."""

    exchange: str = Field("", description="a ccxt exchange id, e.g. binance; empty: no venue configured")
    api_key: SecretStr | None = Field(None, description="the venue API key; never shown nor logged")
    api_secret: SecretStr | None = Field(None, description="that key's secret; never shown nor logged")
    sandbox: bool = Field(True, description="the exchange's testnet (ccxt set_sandbox_mode); false: the real venue")
    api_url: str | None = Field(
        None, description="every API of the venue at this base URL instead (e.g. the local exchange)"
    )
    symbols: list[str] = Field(default_factory=list, description="markets to trade, ccxt's unified BASE/QUOTE")
    quote: str = Field("USDT", min_length=1, description="the account currency the symbols are quoted in")
    timeout_ms: int = Field(10_000, ge=100, le=120_000, description="per HTTP request to the venue")
    max_clock_skew_ms: int = Field(
        1_000, ge=0, description="the most this host's clock may differ from the venue's (signed requests are timed)"
    )
    heartbeat_seconds: float = Field(
        1.0,
        ge=0,
        le=60,
        allow_inf_nan=False,
        description="a session asks the venue whether it answers at most this often (wall seconds; an answer to any "
        "other call counts); 0: at every cycle",
    )
    watch_seconds: float = Field(
        60.0,
        ge=0,
        le=3_600,
        allow_inf_nan=False,
        description="during a session, the venue's open orders and recent trades are matched with the journal at "
        "most this often (wall seconds; 0: between every two cycles); one no intent explains halts (CONTROLS #14)",
    )
    dead_man_seconds: float = Field(
        60.0,
        ge=0,
        le=3_600,
        allow_inf_nan=False,
        description="where the venue offers a dead-man switch (ccxt cancelAllOrdersAfter), it cancels every order "
        "when not refreshed for this long; refreshed from the heartbeat; 0: not armed",
    )
    executor: Literal["session", "workers"] = Field(
        "session",
        description="testnet sessions: who sends the approved intents, the session itself or executor worker "
        "processes (`keel worker start --session NAME`); workers send to the main venue only",
    )
    claim_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=3_600,
        allow_inf_nan=False,
        description="executor = workers: an approved intent no worker claimed this long after the session handed it "
        "over expires, never sent (wall seconds)",
    )
    halt_confirm_seconds: float = Field(
        5.0,
        ge=0,
        le=300,
        allow_inf_nan=False,
        description="a halt a process makes itself (a session's drawdown, a worker's broker failures) waits this long, "
        "beside its work, for every live executor worker to confirm it; one that does not is a trip-verification "
        "record (0: do not check)",
    )
    venues: dict[str, VenueConnection] = Field(
        default_factory=dict,
        description="[venue.venues.<id>] further venues a session routes to, each with its own connection settings",
    )
    routing: RoutingSettings = Field(default_factory=RoutingSettings)

    def venue_ids(self) -> list[str]:
        """Every configured venue: the main one (`venue.exchange`, when set), then `venue.venues` in order."""
        return ([self.exchange] if self.exchange else []) + list(self.venues)


def unconfigured_venues(venue: VenueSettings) -> list[str]:
    """Each venue the routing names (a rule, the default, the fallback) that is neither `venue.exchange` nor in
    `venue.venues`: an order routed there would have nowhere to go."""
    r = venue.routing
    named = [(f"venue.routing.rules[{i}].venue", rule.venue) for i, rule in enumerate(r.rules)]
    named += [("venue.routing.default", r.default), ("venue.routing.fallback", r.fallback)]
    known = set(venue.venue_ids())
    return [
        f"{where} names venue {name!r}, which is not configured (set venue.exchange or [venue.venues.{name}])"
        for where, name in named
        if name and name not in known
    ]


class PromotionGates(_Section):
    """What `keel promote RUN` demands of a run's evidence before it says promote (docs/research/promotion.md). Every
    gate fails closed: evidence that is missing, undefined or not a number fails it, and one failed gate holds. Not
    part of a run's identity: how a run is judged afterwards does not change what it did. (Not `approval.promotion`,
    which moves a scope from manual to auto approval.)"""

    min_oos_sharpe: float = Field(
        0.5,
        allow_inf_nan=False,
        description="the walk-forward's out-of-sample Sharpe (annualised) must be at least this; without a "
        "walk-forward (require_walkforward = false) the run's own Sharpe is judged, which is in-sample",
    )
    max_drawdown_pct: float = Field(
        25.0,
        gt=0,
        le=100,
        allow_inf_nan=False,
        description="the deepest drawdown, %, of the run and of the walk-forward's out-of-sample curve: the worse counts",
    )
    min_trades: int = Field(
        30,
        ge=1,
        description="closed round trips of the run and of the walk-forward's out-of-sample stretch: the fewer counts",
    )
    max_degradation_pct: float = Field(
        50.0,
        allow_inf_nan=False,
        description="how much of the in-sample Sharpe the walk-forward lost out of sample, % (negative: it gained)",
    )
    min_deflated_sharpe: float | None = Field(
        None,
        ge=0,
        le=1,
        description="the walk-forward's deflated Sharpe (probability 0..1 that the true Sharpe exceeds zero after the "
        "trials it took) must be at least this; unset: not judged",
    )
    require_bias_checks: bool = Field(
        True, description="the look-ahead and recursive checks, rerun on the run's strategy and data, must pass"
    )
    require_walkforward: bool = Field(
        True,
        description="a walk-forward of the run's strategy, symbol and data whose recommended parameters are the run's "
        "must be given (--walkforward); false: the run is judged on its own scorecard",
    )


class MarketSettings(_Section):
    """When the market trades (docs/venues.md, "Symbols and calendars"): no new entry is decided at a bar the
    calendar says is closed (the `market_closed` NO-TRADE trigger, enforced in every profile); exits still pass."""

    calendar: str = Field(
        "24/7", description='"24/7" (crypto: always open) or an exchange_calendars name: an exchange\'s MIC, e.g. XNYS'
    )

    @field_validator("calendar")
    @classmethod
    def _known_calendar(cls, v: str) -> str:
        from keel.venues.calendars import check_calendar_name  # imports exchange_calendars only for an exchange

        return check_calendar_name(v)


#: Bounded live, phase 1 (seed runbook): the loosest limits `live` may run with. Configuration can tighten them and
#: never loosen them; there is no switch that turns them off.
BOUNDED_LIVE_FLOOR: dict[str, float] = {
    "max_order_notional": 50.0,
    "max_exposure": 500.0,
    "max_daily_loss": 100.0,
    "max_open_positions": 3,
}


class Settings(BaseSettings):
    """The effective configuration of one Keel process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTED, extra="forbid", validate_default=True
    )

    mode: Mode = Mode.REPLAY
    profile: Profile = Profile.PAPER
    var_dir: Path = Field(Path("var"), description="runs, databases and signal files live here")
    home: Path = Field(
        default_factory=default_home,
        description="the control plane (trading state, kill-switch history, incidents): <home>/control.db; absolute",
    )
    journal: JournalSettings = Field(default_factory=JournalSettings)
    risk: RiskLimits = Field(default_factory=RiskLimits)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    approval: ApprovalSettings = Field(default_factory=ApprovalSettings)
    sizing: SizingSettings = Field(default_factory=SizingSettings)
    strategy: StrategySettings = Field(default_factory=StrategySettings)
    outlook: OutlookSettings = Field(default_factory=OutlookSettings)
    report: ReportSettings = Field(default_factory=ReportSettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    venue: VenueSettings = Field(default_factory=VenueSettings)
    promotion_gates: PromotionGates = Field(default_factory=PromotionGates)
    market: MarketSettings = Field(default_factory=MarketSettings)

    @field_validator("var_dir")
    @classmethod
    def _not_empty(cls, v: Path) -> Path:
        if str(v).strip() == "":
            raise ValueError("must not be empty")
        return v

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, v: Path) -> Path:
        return check_home(v)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _config_file.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


# -- loading ----------------------------------------------------------------------------------------


def resolve_config_file(config_file: Path | str | None = None) -> Path | None:
    """The file to read: the explicit one, else `$KEEL_CONFIG`, else `./keel.toml` when it exists."""
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError([f"config file not found: {path}"])
        return path
    env = os.environ.get(CONFIG_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError([f"config file not found: {path} (from ${CONFIG_ENV})"])
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the effective settings, or raise `ConfigError` listing every problem at once."""
    problems, settings, _ = _load(config_file, overrides)
    if problems:
        path = resolve_config_file(config_file)
        raise ConfigError(problems, source=str(path) if path is not None else None)
    assert settings is not None
    return settings


def check_settings(config_file: Path | str | None = None, **overrides: Any) -> list[str]:
    """Every problem of a configuration (empty when it is valid): syntax, unknown keys, types, semantics."""
    try:
        problems, _, _ = _load(config_file, overrides)
    except ConfigError as exc:
        return exc.problems
    return problems


def _load(
    config_file: Path | str | None, overrides: Mapping[str, Any]
) -> tuple[list[str], Settings | None, Path | None]:
    path = resolve_config_file(config_file)
    problems: list[str] = []
    if path is not None:
        try:
            with path.open("rb") as fh:
                tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            return [f"{path}: not valid TOML: {exc}"], None, path
    problems += _unknown_env_keys()
    token = _config_file.set(path)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems += [_describe(err, path) for err in exc.errors()]
        return problems, None, path
    except SettingsError as exc:  # e.g. a KEEL_* variable holding malformed JSON for a table-valued key
        problems.append(f"environment: {exc} (a KEEL_* variable for a table must hold valid JSON)")
        return problems, None, path
    finally:
        _config_file.reset(token)
    problems += semantic_problems(settings)
    return problems, (settings if not problems else None), path


def _describe(err: Mapping[str, Any], path: Path | None) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "(root)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check the spelling; `keel config show` lists every key)"
    return f"{key}: {msg} (got {err.get('input')!r})" if err["type"] != "extra_forbidden" else f"{key}: {msg}"


def _unknown_env_keys() -> list[str]:
    known = set(flatten(_schema_keys(Settings)))
    problems = []
    for name in sorted(os.environ):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        key = name[len(ENV_PREFIX) :].lower().replace(ENV_NESTED, ".")
        if key not in known and not any(k.startswith(key + ".") for k in known):
            problems.append(f"{name}: unknown setting '{key}' in the environment")
    return problems


def semantic_problems(settings: Settings) -> list[str]:
    """Problems that no single field can see."""
    problems = []
    r = settings.risk
    if r.max_order_notional > r.max_exposure:
        problems.append("risk.max_order_notional: must not exceed risk.max_exposure")
    if settings.mode is Mode.LIVE:  # bounded live: configuration tightens the floor, never loosens it
        problems += [
            f"risk.{name}: {getattr(r, name):g} is looser than the bounded-live floor ({floor:g}); live allows at most that"
            for name, floor in BOUNDED_LIVE_FLOOR.items()
            if getattr(r, name) > floor
        ]
    if settings.mode is Mode.LIVE:
        problems.append("mode: 'live' is refused until the readiness gate exists (LIVE_NOT_READY); use testnet")
    if settings.mode is Mode.TESTNET:  # keys from the settings only (keel.toml or KEEL_VENUE__*), never options
        problems += [
            f"venue.{k}: mode testnet needs it"
            for k in ("exchange", "api_key", "api_secret")
            if not getattr(settings.venue, k)
        ]
    # here, not in a validator of [venue]: a validator's error would show the section as given, keys included
    if settings.venue.exchange and settings.venue.exchange in settings.venue.venues:
        problems.append(
            f"venue.venues.{settings.venue.exchange}: the main venue (venue.exchange) is configured in [venue]"
        )
    problems += unconfigured_venues(settings.venue)
    if settings.approval.auto_approver == settings.strategy.name:
        problems.append("approval.auto_approver: the approver must never be the proposer (the strategy)")
    if settings.approval.auto_max_notional is not None and settings.approval.mode is ApprovalMode.MANUAL:
        problems.append("approval.auto_max_notional: only meaningful with approval.mode auto or shadow-auto")
    return problems


# -- where the control plane is, even when the configuration cannot be loaded ------------------------------------


@dataclasses.dataclass(frozen=True)
class ControlConfig:
    """What locates the control plane: `home` (its SQLite store), `journal.url` (when it names PostgreSQL, the store is
    that database) and `var_dir` (where versions before `home` kept it, `<var_dir>/keel.db`: read only to carry a
    halt over). `sources` says where each came from when the configuration could not be loaded
    (`salvage_control_config`); `complete` is False when a control key may be set where it could not be read, so that
    the store named here may not be the one the sessions read."""

    home: Path
    journal_url: SecretStr | None
    var_dir: Path
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict)
    complete: bool = True

    @classmethod
    def of(cls, settings: Settings) -> ControlConfig:
        return cls(settings.home, settings.journal.url, settings.var_dir)


def _text(value: Any) -> str:
    if not isinstance(value, str | Path) or not str(value).strip():
        raise ValueError("must be a non-empty string")
    return str(value).strip()


#: The keys that locate the control plane: how a salvaged value is checked, and its default.
_CONTROL_KEYS: dict[str, tuple[Any, Any]] = {
    "home": (lambda v: check_home(_text(v)), default_home),
    "journal.url": (lambda v: SecretStr(_text(v)), lambda: None),
    "var_dir": (lambda v: Path(_text(v)), lambda: Path("var")),
}


def salvage_control_config(config_file: Path | str | None = None) -> ControlConfig:
    """Where the control plane is, from whatever can still be read when the configuration as a whole cannot be loaded
    (a syntax error, an invalid value, an unknown key): `keel kill` must halt anyway. Each control key comes, in the
    usual precedence, from its `KEEL_*` variable, else from the config file if the file is still valid TOML, else
    from its default; a value that is itself invalid is skipped. `complete` is False when the file could not be read
    as TOML or a control key held an invalid value: the sessions may then read another store."""
    data: Mapping[str, Any] = {}
    complete = True
    try:
        path = resolve_config_file(config_file)
    except ConfigError:
        path, complete = None, False
    if path is not None:
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            complete = False
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, (check, default) in _CONTROL_KEYS.items():
        env = ENV_PREFIX + key.upper().replace(".", ENV_NESTED)
        candidates: list[tuple[Any, str]] = []
        if os.environ.get(env, "").strip():
            candidates.append((os.environ[env], f"env {env}"))
        node: Any = data
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None:
            candidates.append((node, str(path)))
        for raw, source in candidates:
            try:
                values[key], sources[key] = check(raw), source
                break
            except ValueError:
                complete = False
        else:
            values[key], sources[key] = default(), "default"
    return ControlConfig(values["home"], values["journal.url"], values["var_dir"], sources, complete)


# -- introspection for `keel config show` -------------------------------------------------------------


def _schema_keys(model: type[BaseModel]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out[name] = _schema_keys(ann)
        else:
            out[name] = None
    return out


def flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from flatten(value, dotted + ".")
        else:
            yield dotted


def _flat_values(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and not dotted.endswith("params"):
            out.update(_flat_values(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def setting_sources(config_file: Path | str | None = None) -> dict[str, str]:
    """The keys that the environment or the config file set, each with where its value comes from:
    `env KEEL_…` or the file's path (the environment wins where both set a key). Keys left to their defaults
    are absent, so a command can apply a default of its own only where the user configured nothing.
    A key of a whole table (`strategy.params`) counts as one key."""
    path = resolve_config_file(config_file)
    sources: dict[str, str] = {}
    if path is not None:
        with path.open("rb") as fh:
            sources.update(dict.fromkeys(_flat_values(tomllib.load(fh)), str(path)))
    env = EnvSettingsSource(Settings, env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTED)()
    sources.update({key: "env " + ENV_PREFIX + key.upper().replace(".", ENV_NESTED) for key in _flat_values(env)})
    return sources


def describe_settings(config_file: Path | str | None = None, **overrides: Any) -> list[tuple[str, Any, str]]:
    """`(key, value, source)` for every key, secrets masked; source is explicit, env, the file, or default."""
    settings = load_settings(config_file, **overrides)
    sources = setting_sources(config_file)
    explicit = _flat_values(_expand(overrides))
    rows = []
    for key, value in _flat_values(settings.model_dump(mode="json")).items():
        source = "explicit" if key in explicit else sources.get(key, "default")
        rows.append((key, _mask(key, value, settings), source))
    return rows


def value_problem(key: str, value: Any) -> str | None:
    """What is wrong with `value` for the dotted setting `key` (`broker.cash`), or None when it is valid: the
    same rules as the configuration file, for a value typed on the command line."""
    section, _, name = key.partition(".")
    field = Settings.model_fields.get(section)
    model = field.annotation if field is not None else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)) or name not in model.model_fields:
        raise KeyError(key)
    try:
        model.__pydantic_validator__.validate_assignment(model.model_construct(), name, value)
    except ValidationError as exc:
        return "; ".join(err["msg"] for err in exc.errors())
    return None


_URL_PASSWORD = re.compile(r"^([^:/]+://[^:/@]*:)[^/]*@")  # up to the last @ of the host part


def describe_url(url: str) -> str:
    """A database URL for display: the file of a SQLite URL (absolute), otherwise the URL, password masked."""
    if url.startswith("sqlite"):
        _, _, rest = url.partition("://")
        file = rest[1:] if rest.startswith("/") else rest
        file = file.split("?", 1)[0]
        if file in ("", ":memory:"):
            return "in memory (sqlite)"
        return str(Path(file).absolute())
    return _URL_PASSWORD.sub(r"\1***@", url)


def _expand(overrides: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        out[key] = value.model_dump() if isinstance(value, BaseModel) else value
    return out


def _mask(key: str, value: Any, settings: Settings) -> Any:
    node: Any = settings
    for part in key.split("."):
        node = getattr(node, part, None) if not isinstance(node, dict) else node.get(part)
    if isinstance(node, SecretStr):
        return "**********"
    return value
