"""Halting, reducing and resuming over HTTP, through the kill switch: the token's name is the actor of the incident
record, the cooldown and the compare-and-set stand, and a refusal as things stand is 409."""

from __future__ import annotations

from keel.api.roles import ApiRole
from keel.domain.decisions import TradingState

RISK = ApiRole.RISK_OFFICER


def test_a_halt_is_recorded_with_the_tokens_name_as_its_actor_and_shown_as_the_trading_state(api, store, clock):
    got = api.post("/trading-state/halt", {"reason": "  drill  "}, as_=RISK)
    assert got.status_code == 200 and got.json()["state"] == "halted"
    now = store.trading_state()
    assert (now.state, now.actor, now.reason, now.ts) == (TradingState.HALTED, "rita", "drill", clock())
    (rec,) = store.records()
    assert (rec.trigger, rec.actor, rec.detail) == ("operator", "rita", {"via": "api", "token_id": 3})
    assert got.json()["record"] == rec.as_dict()
    shown = api.get("/trading-state", as_=ApiRole.VIEWER).json()
    assert (shown["state"], shown["actor"], shown["reason"], shown["change_id"]) == ("halted", "rita", "drill", 1)
    assert shown["incident"]["records"] == [rec.as_dict()]
    assert api.get("/incidents", as_=ApiRole.VIEWER).json() == [i.as_dict() for i in store.incidents()]


def test_resuming_waits_for_the_cooldown_then_is_a_release_by_the_token(api, store, clock):
    api.post("/trading-state/halt", {"reason": "drill"}, as_=ApiRole.ADMIN)
    early = api.post("/trading-state/resume", {"reason": "all clear"}, as_=RISK)
    assert early.status_code == 409 and "the cooldown is 300 s" in early.json()["detail"]
    assert early.json()["hint"].startswith("wait 300 s more")
    assert store.trading_state().state is TradingState.HALTED and len(store.records()) == 1
    clock.advance(301)
    got = api.post("/trading-state/resume", {"reason": "all clear"}, as_=RISK)
    assert got.status_code == 200 and got.json()["state"] == "active"
    opened, released = store.records()
    assert (opened.actor, released.actor, released.kind.value, released.incident_id) == (
        "ada",
        "rita",
        "release",
        opened.record_id,
    )
    again = api.post("/trading-state/resume", {"reason": "again"}, as_=RISK)
    assert again.status_code == 409 and again.json()["detail"] == "trading is already active; nothing to resume"


def test_reducing_from_active_needs_no_cooldown_and_a_blank_reason_is_422(api, store):
    assert api.post("/trading-state/reduce", {"reason": "wind down"}, as_=RISK).json()["state"] == "reducing"
    assert store.trading_state().actor == "rita"
    for body in ({"reason": " "}, {}, {"reason": "x", "actor": "someone-else"}):
        assert api.post("/trading-state/halt", body, as_=RISK).status_code == 422
    assert store.trading_state().state is TradingState.REDUCING and len(store.records()) == 1


def test_a_release_is_refused_while_the_signal_file_is_there(api, store, clock, settings):
    from keel.runtime.control import halt_file

    api.post("/trading-state/halt", {"reason": "drill"}, as_=ApiRole.ADMIN)
    clock.advance(301)
    signal = halt_file(settings)
    signal.parent.mkdir(parents=True, exist_ok=True)
    signal.write_text("ops\n")
    refused = api.post("/trading-state/resume", {"reason": "all clear"}, as_=RISK)
    assert refused.status_code == 409 and "the signal file" in refused.json()["detail"]
    shown = api.get("/trading-state", as_=ApiRole.VIEWER).json()
    assert (shown["state"], shown["signal_file"]) == ("halted", str(signal))
    assert store.trading_state().state is TradingState.HALTED
    signal.unlink()
    assert api.post("/trading-state/resume", {"reason": "all clear"}, as_=RISK).json()["state"] == "active"
