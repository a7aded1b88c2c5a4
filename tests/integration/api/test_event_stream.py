"""The live event stream against a real uvicorn server on a loopback port and a real paper session writing its
journal: every committed record once, in seq order, with its seq as the event id; a resume from `Last-Event-ID`;
trading-state changes as they happen; the end of the session ends the stream; a disconnect frees its slot; and the
number of streams is bounded."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from helpers.sessions import ScriptedFeed, control, events, settings_for
from keel.api import tokens
from keel.api.roles import ApiRole
from keel.data.synthetic import generate_regime_ohlcv
from keel.runtime.clock import WallClock
from keel.runtime.session import SessionSpec, run_session
from keel.settings import Mode
from keel.strategies import build_strategy

GATE_BAR = 150
WAIT = 60.0  # seconds any step may take before the test gives up (a bound, never a figure under test)


def sse(lines: Iterator[str]) -> Iterator[dict]:
    """Server-sent events as dicts (`id`, `event`, `data`); comments are yielded as {"comment": …}."""
    current: dict = {}
    for line in lines:
        if line == "":
            if current:
                yield current
            current = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            field, _, value = line.partition(":")
            current[field] = value.removeprefix(" ")


def wait_for(check, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def live(tmp_path, serve):
    """A paper session `live` that stops before bar 150 until the test opens the gate, and the API over its home."""
    settings = settings_for(tmp_path)
    store = control(settings)
    secrets = {
        role: tokens.create(store, name=f"t-{role.value}", role=role, actor="root", ts=WallClock().now()).secret
        for role in (ApiRole.VIEWER, ApiRole.RISK_OFFICER)
    }
    at_gate, gate = threading.Event(), threading.Event()

    def before(t: int) -> None:
        if t == GATE_BAR:
            at_gate.set()
            gate.wait(WAIT)

    frames = generate_regime_ohlcv(2, 300, seed=5, interval_seconds=300)
    strategy = build_strategy("sma_cross", {"fast": 5, "slow": 20})
    result: list = []

    def run() -> None:
        result.append(
            run_session(
                SessionSpec("live", Mode.PAPER), frames, settings, strategy, feed=lambda m: ScriptedFeed(m, before)
            )
        )

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    served = serve(settings)
    yield settings, served, secrets, at_gate, gate, result
    gate.set()
    runner.join(timeout=WAIT)
    store.close()


def test_the_stream_sends_every_committed_record_once_then_the_halt_then_the_end(live):
    _settings, served, secrets, at_gate, gate, result = live
    viewer = {"Authorization": f"Bearer {secrets[ApiRole.VIEWER]}"}
    halts: list[httpx.Response] = []

    def halt_at_the_gate() -> None:
        # the session waits at the gate, so nothing new is journalled until the halt is in: the halt comes while the
        # stream is open, between the session's records
        at_gate.wait(WAIT)
        with httpx.Client(base_url=served.base, timeout=WAIT) as risk:
            halts.append(
                risk.post(
                    "/api/v1/trading-state/halt",
                    json={"reason": "drill"},
                    headers={"Authorization": f"Bearer {secrets[ApiRole.RISK_OFFICER]}"},
                )
            )
        gate.set()

    with httpx.Client(base_url=served.base, timeout=WAIT) as http:
        wait_for(lambda: http.get("/api/v1/sessions/live", headers=viewer).status_code == 200, "the session")
        got: list[dict] = []
        with http.stream("GET", "/api/v1/events/stream?session=live&after=0", headers=viewer) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            halter = threading.Thread(target=halt_at_the_gate, daemon=True)
            halter.start()
            for message in sse(stream.iter_lines()):
                got.append(message)
                if message.get("event") == "end":
                    break
            halter.join(WAIT)
    assert [h.status_code for h in halts] == [200], [h.text for h in halts]
    wait_for(lambda: bool(result), "the session to end")
    journal = [m for m in got if m.get("event") == "journal"]
    logged = events(result[0].run.run_dir)
    assert [int(m["id"]) for m in journal] == [r["seq"] for r in logged]
    assert [json.loads(m["data"]) for m in journal] == logged
    states = [json.loads(m["data"])["state"] for m in got if m.get("event") == "trading_state"]
    assert states == ["active", "halted"]
    end = json.loads(got[-1]["data"])
    assert got[-1]["event"] == "end" and end["last_seq"] == logged[-1]["seq"]


def test_a_reconnect_with_last_event_id_resumes_after_it_and_a_disconnect_frees_the_slot(live):
    _settings, served, secrets, at_gate, _gate, _result = live
    viewer = {"Authorization": f"Bearer {secrets[ApiRole.VIEWER]}"}
    streams = served.app.state.keel.streams
    with httpx.Client(base_url=served.base, timeout=WAIT) as http:
        wait_for(at_gate.is_set, "the session to reach the gate")
        first: list[int] = []
        with http.stream("GET", "/api/v1/events/stream?session=live&after=0", headers=viewer) as stream:
            for message in sse(stream.iter_lines()):
                if message.get("event") == "journal":
                    first.append(int(message["id"]))
                    if len(first) == 5:
                        break
        assert first == [1, 2, 3, 4, 5]
        wait_for(lambda: streams.open == 0, "the closed stream's slot to be given back")
        resumed: list[int] = []
        with http.stream(
            "GET", "/api/v1/events/stream?session=live", headers=viewer | {"Last-Event-ID": "5"}
        ) as stream:
            for message in sse(stream.iter_lines()):
                if message.get("event") == "journal":
                    resumed.append(int(message["id"]))
                    if len(resumed) == 3:
                        break
        assert resumed == [6, 7, 8]
        wait_for(lambda: streams.open == 0, "the closed stream's slot to be given back")
        # without after or Last-Event-ID the stream starts at the committed head: what comes next
        streams.limit = 1
        with http.stream("GET", "/api/v1/events/stream?session=live", headers=viewer) as stream:
            assert stream.status_code == 200
            wait_for(lambda: streams.open == 1, "the stream to open")
            refused = http.get("/api/v1/events/stream?session=live", headers=viewer)
            assert refused.status_code == 503 and refused.headers["content-type"] == "application/problem+json"
            assert "1 event streams are open already" in refused.json()["detail"]
        bad = http.get("/api/v1/events/stream?session=live", headers=viewer | {"Last-Event-ID": "x"})
        assert bad.status_code == 400
        assert http.get("/api/v1/events/stream?session=ghost", headers=viewer).status_code == 404
        assert http.get("/api/v1/events/stream?session=live").status_code == 401
