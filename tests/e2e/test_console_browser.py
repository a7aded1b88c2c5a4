"""The web console in a real browser: Playwright drives Debian's headless Chromium against the API on a real uvicorn
server on a loopback port, over a real control store, while a real paper session (manual approval) runs and waits
for a person.

The session's feed holds each bar while an intent waits for a decision (and none is approved but not yet settled),
as a market with nobody deciding would: what the operator sees pending stays pending until they act, and once they
act, the session goes on at once. Each scenario keeps a screenshot under the test session's temporary folder
(`console-screenshots/`, printed), and every page is checked to have asked nothing of any host but the server.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from helpers.sessions import ScriptedFeed, control, settings_for
from keel import charts
from keel.api import tokens
from keel.api.roles import ApiRole
from keel.approval.service import pending
from keel.control.records import ApprovalStatus
from keel.data.synthetic import generate_regime_ohlcv
from keel.runtime.clock import WallClock
from keel.runtime.session import SessionSpec, run_session
from keel.settings import Mode
from keel.strategies import build_strategy

CHROMIUM = Path("/usr/bin/chromium")
WAIT = 30.0  # seconds any step may take before the test gives up (a bound, never a figure under test)
SESSION = "desk"
NAMES = {ApiRole.VIEWER: "vera", ApiRole.OPERATOR: "otto", ApiRole.RISK_OFFICER: "rita", ApiRole.ADMIN: "ada"}
MANUAL = {"mode": "manual", "ttl_seconds": 3_600}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CONSOLE_FILES = Path(__file__).parents[2] / "src" / "keel" / "api" / "console" / "static"


def wait_for(check, what: str):
    deadline = time.monotonic() + WAIT
    while not (got := check()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)
    return got


# -- the desk: a running paper session waiting for a person, and the API over its control store ----------------------


@dataclass
class Desk:
    base: str
    secrets: dict[ApiRole, str]

    def call(self, method: str, path: str, *, as_: ApiRole = ApiRole.ADMIN, json=None) -> httpx.Response:
        auth = {"Authorization": f"Bearer {self.secrets[as_]}"}
        return httpx.request(method, f"{self.base}/api/v1{path}", headers=auth, json=json, timeout=WAIT)

    def get(self, path: str, **kw) -> dict | list:
        got = self.call("GET", path, **kw)
        assert got.status_code == 200, got.text
        return got.json()

    def first_pending(self) -> dict:
        return wait_for(lambda: next(iter(self.get(f"/intents/pending?session={SESSION}")), None), "a pending intent")


@pytest.fixture(scope="module")
def frames():
    return generate_regime_ohlcv(2, 150, seed=5, interval_seconds=300)


@pytest.fixture
def desk(tmp_path, frames) -> Iterator[Desk]:
    import uvicorn

    from keel.api.app import create_app
    from keel.api.server import bind

    settings = settings_for(tmp_path, approval=MANUAL)
    store = control(settings)
    secrets = {
        role: tokens.create(store, name=name, role=role, actor="root", ts=WallClock().now()).secret
        for role, name in NAMES.items()
    }
    store.close()
    release = threading.Event()
    ended: list = []

    def run() -> None:
        watch = control(settings)  # the session's thread's own connection

        def before(_t: int) -> None:
            deadline = time.monotonic() + WAIT
            while not release.is_set() and time.monotonic() < deadline:
                approved = watch.approval_requests(session=SESSION, statuses=[ApprovalStatus.APPROVED])
                if approved or not pending(watch, session=SESSION):
                    return  # nothing waits, or an approval is on its way out: let the bars come
                time.sleep(0.02)

        try:
            strategy = build_strategy("sma_cross", {"fast": 5, "slow": 20})
            feed = lambda m: ScriptedFeed(m, before)  # noqa: E731
            ended.append(run_session(SessionSpec(SESSION, Mode.PAPER), frames, settings, strategy, feed=feed))
        finally:
            watch.close()

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", lifespan="on"))
    serving = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    serving.start()
    desk = Desk(f"http://127.0.0.1:{sock.getsockname()[1]}", secrets)
    wait_for(lambda: _answers(desk.base), "the API to answer")
    try:
        yield desk
    finally:
        release.set()
        runner.join(timeout=WAIT)
        server.should_exit = True
        serving.join(timeout=WAIT)
    assert ended and ended[0].run.run_dir.is_dir(), "the session did not end"


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# -- the browser ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM}: install it with `apt-get install chromium`")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT * 1000)  # a bound for every wait on the page, as for every other step
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("console-screenshots")


@dataclass
class Console:
    """One browser tab on the console, with every request it made and every error it logged."""

    page: object
    desk: Desk
    shots: Path
    requests: list[str] = field(default_factory=list)
    refusals: list[tuple[int, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def sign_in(self, role: ApiRole) -> None:
        self.page.goto(self.desk.base + "/")
        self.page.get_by_label("API token").fill(self.desk.secrets[role])
        self.page.get_by_role("button", name="Sign in").click()
        self.expect(self.page.locator("#identity")).to_have_text(f"{NAMES[role]} · {role.value.replace('_', ' ')}")

    def row(self, intent_id: str):
        return self.page.locator(f'#queue-table tr[data-intent="{intent_id}"]')

    def banner(self):
        return self.page.locator("#banner")

    def buttons(self, pattern: str):
        return self.page.get_by_role("button", name=re.compile(pattern))

    def expect(self, locator):
        from playwright.sync_api import expect

        return expect(locator)

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        assert path.read_bytes().startswith(PNG_MAGIC) and path.stat().st_size > 20_000
        print(f"screenshot: {path}")
        return path

    def assert_offline_and_clean(self, *refused: int) -> None:
        """Every request went to the server, none carried a token in its URL, the server refused only what the
        test meant it to (`refused`: the statuses), and the page raised or logged no error of its own."""
        assert self.requests, "the page made no request"
        strays = [u for u in self.requests if not u.startswith(self.desk.base + "/")]
        assert not strays, f"requests to other hosts: {strays}"
        for secret in self.desk.secrets.values():
            assert not [u for u in self.requests if secret in u], "a token in a URL"
        assert {status for status, _ in self.refusals} == set(refused), self.refusals
        assert not self.errors, self.errors


@pytest.fixture
def console(browser, desk, shots) -> Iterator[Console]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(WAIT * 1000)
    page = context.new_page()
    tab = Console(page, desk, shots)
    context.on("request", lambda r: tab.requests.append(r.url))
    page.on("pageerror", lambda exc: tab.errors.append(f"page error: {exc}"))
    page.on("response", lambda r: r.status >= 400 and tab.refusals.append((r.status, r.url)))
    # Chromium logs each refused call as an error too: those are checked as refusals, above
    page.on(
        "console",
        lambda m: m.type == "error" and "Failed to load resource" not in m.text and tab.errors.append(m.text),
    )
    try:
        yield tab
    finally:
        context.close()


# -- the scenarios -------------------------------------------------------------------------------------------------


def test_an_operator_previews_a_pending_intent_approves_it_and_sees_it_executed(console, desk):
    req = desk.first_pending()
    iid = req["intent_id"]
    console.sign_in(ApiRole.OPERATOR)
    page = console.page
    console.expect(console.banner()).to_have_attribute("data-state", "active")
    console.expect(console.row(iid)).to_be_visible()
    console.expect(page.locator("#queue-count")).to_have_text("1")
    console.expect(page.locator("#stream-status")).to_have_text("live")
    assert console.buttons("^Halt").count() == 0  # an operator decides intents, never the trading state

    console.row(iid).click()
    preview = page.locator("#preview")
    console.expect(page.locator("#pv-status")).to_have_text("pending")
    console.expect(preview).to_contain_text(iid)
    console.expect(preview).to_contain_text(f"{req['bound_hash']} · version {req['version']}")
    console.expect(preview).to_contain_text(f"BUY {req['quantity']:g} {req['symbol']} · entry · market")
    console.expect(page.locator("#pv-checks li.pass").first).to_be_visible()
    console.expect(page.locator("#pv-checks li.fail")).to_have_count(0)
    console.shot("operator-preview")

    console.buttons("^Approve").click()
    dialog = page.get_by_role("dialog", name="Approve intent")
    console.expect(dialog).to_be_visible()
    console.expect(dialog).to_contain_text(f"version {req['version']}")
    dialog.get_by_label("Reason").fill("sized right; band checked")
    page.keyboard.press("Enter")
    console.expect(dialog).to_be_hidden()
    console.expect(page.locator("#desk-note")).to_contain_text(f"approved {iid} as otto")

    console.expect(page.locator("#pv-status")).to_have_text("executed")
    console.expect(console.row(iid)).to_have_count(0)
    executed = page.locator(
        '#events-table tr[data-event="intent.transition"]', has_text=f"{iid[:11]}… executing → executed"
    )
    console.expect(executed).to_have_count(1)
    proposed = page.locator(  # journal format 5: the proposal's row says where its decision sent it
        '#events-table tr[data-event="intent.proposed"]', has_text=f"{iid[:11]}…"
    )
    console.expect(proposed).to_contain_text("→ pending_approval (APPROVAL_PENDING) by approval")
    console.expect(page.locator("#pv-facts")).to_contain_text("otto at")
    console.expect(page.locator('#intent-states [data-state="executed"]')).to_be_visible()
    console.expect(page.locator("#chart-equity svg")).to_be_visible()  # the curve starts with the first fill
    console.shot("operator-approved-executed")

    done = desk.get(f"/intents/{iid}/preview")
    assert (done["status"], done["decided_by"], done["decision_reason"]) == (
        "executed",
        "otto",
        "sized right; band checked",
    )
    orders = [o for o in desk.get(f"/sessions/{SESSION}/orders")["items"] if o["intent_id"] == iid]
    assert [(o["symbol"], o["side"], o["status"]) for o in orders] == [(req["symbol"], "buy", "filled")]
    console.assert_offline_and_clean()


def test_a_risk_officer_halts_with_a_reason_and_the_banner_and_the_api_say_halted(console, desk):
    desk.first_pending()
    console.sign_in(ApiRole.RISK_OFFICER)
    page = console.page
    console.expect(console.banner()).to_have_attribute("data-state", "active")
    console.expect(page.locator("#state-word")).to_have_text("Active")
    page.locator("#queue-table tbody tr").first.click()
    console.expect(page.locator("#pv-status")).to_have_text("pending")
    assert console.buttons("^(Approve|Reject)").count() == 0  # a risk officer decides no intent

    console.buttons("^Halt trading").click()
    dialog = page.get_by_role("dialog", name="Halt trading?")
    console.expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Halt trading").click()  # no reason: refused here, nothing sent
    console.expect(page.locator("#state-error")).to_contain_text("A reason is required")
    assert desk.get("/trading-state")["state"] == "active"
    dialog.get_by_label("Reason").fill("drill: the desk says stop")
    console.shot("risk-officer-halt-confirmation")
    dialog.get_by_role("button", name="Halt trading").click()
    console.expect(dialog).to_be_hidden()

    console.expect(console.banner()).to_have_attribute("data-state", "halted")
    console.expect(page.locator("#state-word")).to_have_text("Halted")
    console.expect(page.locator("#state-who")).to_contain_text("by rita")
    console.expect(page.locator("#state-who")).to_contain_text("drill: the desk says stop")
    console.expect(page.locator("#incidents-table")).to_contain_text("drill: the desk says stop")
    assert console.buttons("^Halt").count() == 0 and console.buttons("^Resume").count() == 1
    console.shot("risk-officer-halted")

    state = desk.get("/trading-state", as_=ApiRole.VIEWER)
    assert (state["state"], state["actor"], state["reason"]) == ("halted", "rita", "drill: the desk says stop")

    # leaving halted waits for the cooldown: the console shows the server's refusal as it said it
    console.buttons("^Resume").click()
    resume = page.get_by_role("dialog", name="Resume trading?")
    resume.get_by_label("Reason").fill("drill over")
    page.keyboard.press("Enter")
    console.expect(page.locator("#state-error")).to_contain_text("Refused:")
    console.expect(page.locator("#state-error")).to_contain_text("cooldown")
    page.keyboard.press("Escape")
    console.expect(resume).to_be_hidden()
    assert desk.get("/trading-state")["state"] == "halted"
    console.assert_offline_and_clean(409)


def test_a_viewer_sees_no_approve_or_halt_and_a_forged_request_is_refused(console, desk):
    req = desk.first_pending()
    iid = req["intent_id"]
    console.sign_in(ApiRole.VIEWER)
    page = console.page
    console.row(iid).click()
    console.expect(page.locator("#pv-status")).to_have_text("pending")
    console.expect(page.locator("#stream-status")).to_have_text("live")
    assert console.buttons("^(Approve|Reject|Halt|Reduce|Resume)").count() == 0
    console.expect(page.locator("#decide-none")).to_have_text(
        "Your role may not decide intents: an operator's token does."
    )
    for key in ("a", "r", "h"):  # nor do the shortcuts open anything
        page.keyboard.press(key)
    assert page.get_by_role("dialog").count() == 0
    console.shot("viewer-read-only")

    # the page's own token, sent by hand as a forged call would be: the server refuses it
    forged = page.evaluate(
        """async (iid) => {
          const token = sessionStorage.getItem("keel.console.token");
          const post = (path, body) => fetch(path, {method: "POST", body: JSON.stringify(body),
            headers: {Authorization: "Bearer " + token, "Content-Type": "application/json"}})
            .then(async (r) => ({status: r.status, body: await r.json()}));
          return [await post(`/api/v1/intents/${iid}/approve`, {reason: "forged", expect_version: 1}),
                  await post("/api/v1/trading-state/halt", {reason: "forged"})];
        }""",
        iid,
    )
    assert [f["status"] for f in forged] == [403, 403]
    assert [f["body"]["type"] for f in forged] == ["urn:keel:problem:forbidden"] * 2
    assert "vera holds the viewer role, which may not approve or reject intents" in forged[0]["body"]["detail"]
    assert desk.get(f"/intents/{iid}/preview")["status"] == "pending"
    assert desk.get("/trading-state")["state"] == "active"

    # a token revoked meanwhile signs the tab out at its next call
    vera = next(t for t in desk.get("/tokens") if t["name"] == "vera")
    assert desk.call("POST", f"/tokens/{vera['token_id']}/revoke").status_code == 200
    console.expect(page.locator("#login-view")).to_be_visible()
    console.expect(page.locator("#login-error")).to_contain_text("was revoked")
    assert page.evaluate("sessionStorage.getItem('keel.console.token')") is None
    console.assert_offline_and_clean(401, 403)


def test_the_keyboard_alone_signs_in_rejects_with_a_reason_and_escape_sends_nothing(console, desk):
    first = desk.first_pending()
    page = console.page
    page.goto(desk.base + "/console/")
    console.expect(page.locator("#token")).to_be_focused()
    page.keyboard.type(desk.secrets[ApiRole.OPERATOR])
    page.keyboard.press("Enter")
    console.expect(page.locator("#identity")).to_have_text("otto · operator")

    page.keyboard.press("?")
    help_ = page.get_by_role("dialog", name="Keyboard shortcuts")
    console.expect(help_).to_be_visible()
    console.expect(help_).to_contain_text("approve the previewed intent")
    page.keyboard.press("Escape")
    console.expect(help_).to_be_hidden()

    console.expect(console.row(first["intent_id"])).to_be_visible()
    page.keyboard.press("j")
    console.expect(page.locator("#pv-status")).to_have_text("pending")
    console.expect(console.row(first["intent_id"])).to_have_attribute("aria-current", "true")
    page.keyboard.press("r")
    dialog = page.get_by_role("dialog", name="Reject intent")
    console.expect(dialog).to_be_visible()
    console.expect(dialog.get_by_label("Reason")).to_be_focused()
    page.keyboard.press("Enter")  # a blank reason: refused in the page, nothing sent
    console.expect(page.locator("#decide-error")).to_contain_text("A reason is required")
    assert desk.get(f"/intents/{first['intent_id']}/preview")["status"] == "pending"
    page.keyboard.type("too big for a Monday")
    page.keyboard.press("Enter")
    console.expect(dialog).to_be_hidden()
    console.expect(page.locator("#pv-status")).to_have_text("rejected")
    console.expect(page.locator("#desk-note")).to_contain_text(f"rejected {first['intent_id']} as otto")
    rejected = desk.get(f"/intents/{first['intent_id']}/preview")
    assert (rejected["status"], rejected["decided_by"]) == ("rejected", "otto")

    # the session goes on and asks again; Escape leaves it as it was
    second = wait_for(
        lambda: next((r for r in desk.get("/intents/pending") if r["intent_id"] != first["intent_id"]), None),
        "the next pending intent",
    )
    console.expect(console.row(second["intent_id"])).to_be_visible()
    page.keyboard.press("j")
    console.expect(console.row(second["intent_id"])).to_have_attribute("aria-current", "true")
    page.keyboard.press("a")
    approve = page.get_by_role("dialog", name="Approve intent")
    console.expect(approve).to_be_visible()
    page.keyboard.type("not sure yet")
    page.keyboard.press("Escape")
    console.expect(approve).to_be_hidden()
    assert desk.get(f"/intents/{second['intent_id']}/preview")["status"] == "pending"
    page.keyboard.press("h")  # not an operator's: nothing opens
    assert page.get_by_role("dialog").count() == 0
    console.shot("operator-keyboard")
    console.assert_offline_and_clean()


def test_the_console_loads_nothing_from_elsewhere_and_every_control_has_a_name(console, desk):
    desk.first_pending()
    root = httpx.get(desk.base + "/", timeout=WAIT)
    assert root.status_code == 307 and root.headers["location"] == "/console/"
    served = httpx.get(desk.base + "/console/", timeout=WAIT)
    csp = served.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "script-src 'self'" in csp
    assert "/console" not in "".join(httpx.get(desk.base + "/openapi.json", timeout=WAIT).json()["paths"])
    # what the page reads the role from: the calling token, never a secret
    for role, name in NAMES.items():
        me = desk.get("/tokens/me", as_=role)
        assert (me["name"], me["role"]) == (name, role.value) and desk.secrets[role] not in str(me)
    assert desk.get("/tokens/me", as_=ApiRole.VIEWER)["permissions"] == ["read"]
    assert desk.get("/tokens/me", as_=ApiRole.OPERATOR)["permissions"] == ["read", "decide"]
    assert desk.get("/tokens/me", as_=ApiRole.RISK_OFFICER)["permissions"] == ["read", "trading-state"]
    assert desk.get("/tokens/me", as_=ApiRole.ADMIN)["permissions"] == ["read", "decide", "trading-state", "tokens"]
    assert httpx.get(desk.base + "/api/v1/tokens/me", timeout=WAIT).status_code == 401
    shipped = sorted(p.name for p in CONSOLE_FILES.iterdir())
    assert shipped == ["app.css", "app.js", "format.js", "index.html", "sse.js", "views.js"]
    # the chart script is the run report's (keel.charts), served with the console's headers
    chart = httpx.get(desk.base + "/console/chart.js", timeout=WAIT)
    assert chart.status_code == 200 and chart.text == charts.script() and "KeelChart" in chart.text
    assert chart.headers["content-security-policy"] == csp and chart.headers["content-type"].startswith(
        "text/javascript"
    )
    for name, text in [
        *((n, (CONSOLE_FILES / n).read_text(encoding="utf-8")) for n in shipped),
        ("chart.js", chart.text),
    ]:
        # no URL to any host but the SVG namespace's name
        assert set(re.findall(r"https?://[^\s\"'<>)]+", text)) <= {"http://www.w3.org/2000/svg"}, name
        assert "@import" not in text and "url(" not in text

    console.sign_in(ApiRole.ADMIN)
    page = console.page
    console.expect(page.locator("#stream-status")).to_have_text("live")
    console.expect(page.locator("#events-table tbody tr").first).to_be_visible()
    page.locator("#queue-table tbody tr").first.click()
    console.expect(page.locator("#pv-status")).to_have_text("pending")
    assert page.evaluate("location.href") == desk.base + "/console/"
    assert page.evaluate("sessionStorage.getItem('keel.console.token')") == desk.secrets[ApiRole.ADMIN]
    console.shot("admin-desk")

    def every_control_is_named() -> None:
        buttons = page.get_by_role("button")
        assert buttons.count() > 0
        assert page.get_by_role("button", name=re.compile(r"\w")).count() == buttons.count()
        boxes = page.get_by_role("textbox")
        assert page.get_by_role("textbox", name=re.compile(r"\w")).count() == boxes.count()
        assert page.get_by_role("combobox", name=re.compile(r"\w")).count() == page.get_by_role("combobox").count()

    every_control_is_named()  # the desk, an admin's: every action shown
    assert console.buttons("^(Approve|Reject|Halt trading|Reduce only)").count() == 4
    for opener, title in (("^Approve", "Approve intent"), ("^Halt trading", "Halt trading?"), ("^Shortcuts", None)):
        console.buttons(opener).click()
        dialog = page.get_by_role("dialog", name=title) if title else page.get_by_role("dialog")
        console.expect(dialog).to_be_visible()
        every_control_is_named()
        page.keyboard.press("Escape")
        console.expect(dialog).to_be_hidden()
    assert desk.get("/trading-state")["state"] == "active"  # opening and leaving a dialog sends nothing

    page.get_by_role("button", name="Sign out").click()
    console.expect(page.locator("#login-view")).to_be_visible()
    every_control_is_named()  # the sign-in form
    assert page.evaluate("sessionStorage.getItem('keel.console.token')") is None
    assert len(console.requests) > 10
    console.assert_offline_and_clean()
