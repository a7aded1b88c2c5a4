"""The routing and failover policy: the most specific rule routes, a down venue halts its strategies or sends only
their exits to the fallback, health counts consecutive failures, and the settings refuse a policy that cannot work."""

from __future__ import annotations

import pytest

from keel.brokers.routing import POLICY_VERSION, Action, OnDown, RoutingPolicy, Rule, VenueHealth, mismatched
from keel.domain.errors import ConfigError
from keel.runtime.venue_watch import VenueWatch
from keel.settings import describe_settings, load_settings

RULES = (
    Rule("okx", strategy="trend"),
    Rule("kraken", symbol="ETH/USDT"),
    Rule("bybit", strategy="trend", symbol="ETH/USDT"),
    Rule("bitmex", symbol="ETH/USDT"),  # as specific as kraken's, written later: kraken's wins
)


@pytest.mark.parametrize(
    ("strategy", "symbol", "venue", "why"),
    [
        ("trend", "ETH/USDT", "bybit", "the rule for strategy trend and symbol ETH/USDT"),
        ("carry", "ETH/USDT", "kraken", "the rule for symbol ETH/USDT"),
        ("trend", "BTC/USDT", "okx", "the rule for strategy trend"),
        ("carry", "BTC/USDT", "binance", "the default venue"),
    ],
)
def test_the_most_specific_rule_routes_else_the_default(strategy, symbol, venue, why):
    policy = RoutingPolicy("binance", RULES)
    assert policy.routed(strategy, symbol) == (venue, why)
    decision = policy.decide(strategy, symbol, exit=False)
    assert decision.action is Action.ROUTE and decision.venue == venue
    assert decision.as_dict()["policy_version"] == POLICY_VERSION


def test_a_down_venue_halts_its_strategies_by_default_entries_and_exits_alike():
    policy = RoutingPolicy("binance", RULES)
    for exit in (False, True):
        d = policy.decide("carry", "BTC/USDT", exit=exit, down={"binance"})
        assert d.action is Action.HALT and d.venue is None and "on_down = halt" in d.why
    assert policy.decide("trend", "BTC/USDT", exit=True, down={"binance"}).venue == "okx"  # not its venue: untouched


def test_fallback_exits_sends_only_exits_to_the_fallback_and_only_while_it_is_up():
    policy = RoutingPolicy("binance", on_down=OnDown.FALLBACK_EXITS, fallback="kraken")
    out = policy.decide("carry", "BTC/USDT", exit=True, down={"binance"})
    assert out.action is Action.FAILOVER and out.venue == "kraken" and out.routed == "binance"
    entry = policy.decide("carry", "BTC/USDT", exit=False, down={"binance"})
    assert entry.action is Action.HALT and "never failed over" in entry.why
    both = policy.decide("carry", "BTC/USDT", exit=True, down={"binance", "kraken"})
    assert both.action is Action.HALT and "fallback kraken are down" in both.why


def test_health_is_down_after_n_consecutive_failures_and_up_at_the_next_success():
    health = VenueHealth(3)
    assert [health.failed("binance") for _ in range(4)] == [False, False, True, False]  # the moment it goes down
    assert health.down == {"binance"}
    assert health.succeeded("binance") is True and not health.down
    health.failed("binance")
    health.succeeded("binance")
    health.failed("binance")
    health.failed("binance")
    assert not health.is_down("binance")  # a success in between: not consecutive


def test_a_policy_that_cannot_work_is_refused():
    with pytest.raises(ValueError, match="no default venue"):
        RoutingPolicy("")
    with pytest.raises(ValueError, match=r"needs venue\.routing\.fallback"):
        RoutingPolicy("binance", on_down=OnDown.FALLBACK_EXITS)


def test_the_settings_build_the_policy_and_refuse_what_cannot_work():
    s = load_settings(
        venue={
            "exchange": "binance",
            "venues": {"okx": {}},
            "routing": {"rules": [{"venue": "okx", "symbol": "ETH/USDT"}]},
        }
    )
    policy = RoutingPolicy.from_settings(s.venue.routing, s.venue.exchange)
    assert policy.default == "binance" and policy.venues == {"binance", "okx"}
    assert mismatched(policy, "trend", ["BTC/USDT", "ETH/USDT"], "binance") == [
        "ETH/USDT of strategy trend is routed to okx (the rule for symbol ETH/USDT), not binance"
    ]
    bad = [
        ({"rules": [{"venue": "okx"}]}, "names a strategy, a symbol or both"),
        ({"on_down": "fallback_exits"}, "needs venue.routing.fallback"),
        ({"default": "okx", "fallback": "okx"}, "is the default venue"),
        ({"on_down": "reroute_everything"}, "venue.routing.on_down"),
        ({"down_after": 0}, "venue.routing.down_after"),
    ]
    for routing, says in bad:
        with pytest.raises(ConfigError, match=says):
            load_settings(venue={"exchange": "binance", "venues": {"okx": {}}, "routing": routing})


def test_every_venue_the_routing_names_must_be_configured_and_its_keys_never_shown():
    unconfigured = [
        (
            {"rules": [{"venue": "kraken", "symbol": "ETH/USDT"}]},
            r"venue\.routing\.rules\[0\]\.venue names venue 'kraken'",
        ),
        ({"default": "kraken"}, r"venue\.routing\.default names venue 'kraken'"),
        ({"on_down": "fallback_exits", "fallback": "kraken"}, r"venue\.routing\.fallback names venue 'kraken'"),
    ]
    for routing, says in unconfigured:
        venue = {"exchange": "binance", "api_key": "k-main-123", "venues": {"okx": {"api_key": "k-okx-456"}}}
        with pytest.raises(ConfigError, match=says) as bad:
            load_settings(venue={**venue, "routing": routing})
        assert "k-main-123" not in str(bad.value) and "k-okx-456" not in str(bad.value)
    with pytest.raises(ConfigError, match=r"venue\.venues\.binance: the main venue"):
        load_settings(venue={"exchange": "binance", "venues": {"binance": {}}})
    fine = load_settings(
        venue={
            "exchange": "binance",
            "venues": {"okx": {"api_key": "k-okx-456", "api_secret": "s-okx-789"}},
            "routing": {"on_down": "fallback_exits", "fallback": "okx"},
        }
    )
    assert fine.venue.venue_ids() == ["binance", "okx"]


def test_config_show_masks_the_keys_of_every_venue():
    rows = {
        k: v
        for k, v, _ in describe_settings(
            **{
                "venue": {
                    "exchange": "binance",
                    "api_key": "k-main-123",
                    "venues": {"okx": {"api_key": "k-okx-456", "api_secret": "s-okx-789"}},
                }
            }
        )
    }
    assert rows["venue.venues.okx.api_key"] == "**********" and rows["venue.venues.okx.api_secret"] == "**********"
    assert rows["venue.api_key"] == "**********"
    assert not any(secret in str(rows) for secret in ("k-main-123", "k-okx-456", "s-okx-789"))


def test_the_venue_watch_looks_at_once_then_at_most_every_interval_on_its_injected_clock():
    now = [100.0]
    watch = VenueWatch(60.0, monotonic=lambda: now[0])
    assert watch.due()
    watch.looked_at = now[0]
    now[0] += 59.9
    assert not watch.due()
    now[0] += 0.1
    assert watch.due()
