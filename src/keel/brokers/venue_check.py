"""Is a venue fit to trade on, before anything is sent? `check_venue` asks it, without placing an order: whether it
answers, how far this host's clock is from its clock (signed requests are refused outside a time window), whether
the keys are accepted, whether they may trade and whether they may withdraw (a trading key never needs to: one that
can is a risk Keel refuses), whether the venue's own dead-man switch guards the orders (reported, never a failure),
and each market's rules (tick, lot, minimum order value).

Every finding is one `Finding` (ok, warn or fail, with what was seen and what to do); the venue is fit when none
failed. What a venue does not say (an exchange whose account answer has no permission flags) is a warning, never a
pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from keel.brokers.ccxt_broker import CcxtBroker

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    status: Status
    detail: str
    hint: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "status": self.status, "detail": self.detail, "hint": self.hint}


@dataclass(frozen=True)
class VenueReport:
    venue: str
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return all(f.status != "fail" for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {"venue": self.venue, "ok": self.ok, "findings": [f.as_dict() for f in self.findings]}


def check_venue(broker: CcxtBroker, symbols: list[str], *, max_skew_ms: int, now_ms: Callable[[], int]) -> VenueReport:
    """Every check, in order; a venue that does not answer at all fails the first and is asked nothing more."""
    import ccxt  # imported already by whoever built the broker

    exchange = broker.exchange
    found: list[Finding] = []
    try:
        before = now_ms()
        server = int(exchange.fetch_time())
        after = now_ms()
    except ccxt.NetworkError as exc:
        found.append(Finding("reachable", "fail", f"{broker.name} did not answer: {exc}", "check the URL and network"))
        return VenueReport(broker.name, tuple(found))
    except ccxt.BaseError as exc:
        found.append(Finding("reachable", "fail", f"{broker.name} answered with an error: {exc}"))
        return VenueReport(broker.name, tuple(found))
    found.append(Finding("reachable", "ok", f"{broker.name} answers ({after - before} ms round trip)"))
    skew = server - (before + after) // 2
    found.append(_skew(skew, max_skew_ms))
    found.extend(_account(broker))
    found.append(dead_man(broker))
    found.extend(_markets(broker, symbols))
    return VenueReport(broker.name, tuple(found))


def _skew(skew_ms: int, max_skew_ms: int) -> Finding:
    text = f"the venue's clock is {abs(skew_ms)} ms {'ahead of' if skew_ms >= 0 else 'behind'} this host's"
    if abs(skew_ms) > max_skew_ms:
        return Finding(
            "clock", "fail", f"{text}, more than venue.max_clock_skew_ms ({max_skew_ms})", "synchronise this host (NTP)"
        )
    return Finding("clock", "ok", text)


def _account(broker: CcxtBroker) -> list[Finding]:
    import ccxt

    try:
        balance = broker.exchange.fetch_balance()
    except (ccxt.AuthenticationError, ccxt.PermissionDenied) as exc:
        return [Finding("keys", "fail", f"the venue refused the keys: {exc}", "check venue.api_key and api_secret")]
    except ccxt.BaseError as exc:
        return [Finding("keys", "fail", f"the account could not be read: {type(exc).__name__}: {exc}")]
    found = [Finding("keys", "ok", "the keys are accepted (the account was read)")]
    info = balance.get("info") if isinstance(balance, dict) else None
    info = info if isinstance(info, dict) else {}
    trade, withdraw = info.get("canTrade"), info.get("canWithdraw")
    if trade is None:
        found.append(Finding("trading", "warn", "the venue does not say whether these keys may trade"))
    elif trade:
        found.append(Finding("trading", "ok", "trading is enabled for these keys"))
    else:
        found.append(
            Finding("trading", "fail", "trading is disabled for these keys", "enable spot trading for the key")
        )
    if withdraw is None:
        found.append(Finding("withdrawals", "warn", "the venue does not say whether these keys may withdraw"))
    elif withdraw:
        found.append(
            Finding(
                "withdrawals",
                "fail",
                "these keys may withdraw funds: Keel never needs that, and a leaked key could empty the account",
                "create a key without withdrawal rights",
            )
        )
    else:
        found.append(Finding("withdrawals", "ok", "withdrawals are disabled for these keys"))
    return found


def dead_man(broker: CcxtBroker) -> Finding:
    """Whether the venue's own dead-man switch (cancel-all-after) guards the orders when this host is gone. Its
    absence is reported, never a failure: Keel's own halt (cancel-all when heartbeats are missed) still runs, but it
    needs this host alive; only the venue can cancel for a host that died."""
    seconds = broker.dead_man_seconds
    if not broker.dead_man_offered:
        return Finding(
            "dead-man",
            "warn",
            f"{broker.name} offers no dead-man switch (cancel-all-after) through ccxt: an order stays working at the "
            "venue if this host dies; Keel's own cancel-on-disconnect (a halt when heartbeats are missed) is relied on",
            "watch the host (keel session status) and keep orders small; a venue with the switch arms it by itself",
        )
    if seconds <= 0:
        return Finding(
            "dead-man",
            "warn",
            f"{broker.name} offers a dead-man switch, and it is not armed (venue.dead_man_seconds = 0)",
            "set venue.dead_man_seconds (e.g. 60): the venue then cancels every order when Keel stops refreshing it",
        )
    return Finding(
        "dead-man",
        "ok",
        f"{broker.name} offers a dead-man switch: armed for {seconds:g} s and refreshed by every session's heartbeat",
    )


def _markets(broker: CcxtBroker, symbols: list[str]) -> list[Finding]:
    if not symbols:
        return [Finding("markets", "warn", "no symbols to check", "set venue.symbols or pass --symbol")]
    found = []
    for symbol in symbols:
        try:
            rules = broker.market_rules(symbol)
        except Exception as exc:  # a BrokerError or ccxt's: either way the rules are unknown
            found.append(Finding(f"market {symbol}", "fail", f"the markets could not be read: {exc}"))
            continue
        if rules is None:
            listed = sorted(getattr(broker.exchange, "markets", None) or {})
            some = ", ".join(listed[:5]) + (", …" if len(listed) > 5 else "")
            hint = f"it lists {len(listed)} market(s): {some}" if listed else "it lists no markets"
            found.append(Finding(f"market {symbol}", "fail", f"{broker.name} lists no market {symbol}", hint))
            continue
        parts = [
            f"{label} {value:g}"
            for label, value in (
                ("tick", rules.tick_size),
                ("lot", rules.lot_size),
                ("min quantity", rules.min_quantity),
                ("min notional", rules.min_notional),
            )
            if value is not None
        ]
        found.append(Finding(f"market {symbol}", "ok", ", ".join(parts) or "no rules published"))
    return found
