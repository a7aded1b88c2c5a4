/* Keel console: the operator API in a browser. No build step, no library, nothing fetched from anywhere but this
 * server. Every call goes through /api/v1 with the bearer token, which is kept in this tab's sessionStorage only:
 * never in a URL (the event stream is read with fetch() so that the token travels as a header; EventSource cannot
 * send one), never logged. The page hides what the token's role may not do, but the server decides: every action
 * is checked again there, and its refusal is shown as it said it.
 *
 * Data flow: the control plane (trading state, pending intents, incidents, sessions) is polled every CONTROL_MS;
 * the selected session's journal streams live, and each record that changes positions, orders or intents triggers
 * a (debounced) reload of those reads; a `trading_state` event updates the banner at once.
 *
 * This module holds the state and the flow; views.js draws the panels, chart.js (keel.charts, the run report's
 * too) the curves, sse.js reads the event stream, format.js formats numbers and times. ES modules from this server: no bundler, no build step. */
import { el, num, qty, short, stamp, when } from "./format.js";
import { readEvents } from "./sse.js";
import {
  cell,
  renderAccount,
  renderEquity,
  renderEvents,
  renderIncidents,
  renderOrders,
  renderPreview as drawPreview,
  renderRun,
  renderTrading as drawTrading,
} from "./views.js";

const API = "/api/v1";
const TOKEN_KEY = "keel.console.token";
const SESSION_KEY = "keel.console.session";
const CONTROL_MS = 2000;
const SESSION_MS = 5000;
const DEBOUNCE_MS = 300;
const BACKLOG = 100; // journal records shown when a session is opened
const TERMINAL = ["executed", "failed", "expired", "refused", "rejected"];

const S = {
  token: null,
  me: null,
  sessions: [],
  session: null, // the selected session's record
  pending: [],
  selected: null, // intent id in the queue
  preview: null, // the request shown in the preview pane
  trading: null,
  equity: null,
  stream: null, // the AbortController of the open event stream
  streamSince: 0, // when it opened (the backlog it sends first is not news)
  lastSeq: null, // the seq of the last journal record received: a reconnect resumes after it
  retryMs: 2000, // the reconnect delay the server asks for
  timers: [],
  reload: null,
  queueShown: null, // what the queue's rows show now
  busy: {}, // reloads in flight
  again: false, // a reload asked for while one was in flight
  needStream: false, // the selected session's stream is still to be opened
};

// -- small helpers ------------------------------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

function problem(status, detail, hint) {
  const p = new Error(detail);
  p.status = status;
  p.detail = detail;
  p.hint = hint || "";
  return p;
}

function said(p) {
  return p.detail + (p.hint ? " — " + p.hint : "");
}

function may(permission) {
  return !!(S.me && S.me.permissions.indexOf(permission) >= 0);
}

// -- the API ------------------------------------------------------------------------------------------------------

function headers(extra) {
  return Object.assign({ Authorization: "Bearer " + S.token }, extra || {});
}

async function api(method, path, body) {
  const init = {
    method: method,
    headers: headers({ Accept: "application/json" }),
    cache: "no-store",
    credentials: "omit",
    referrerPolicy: "no-referrer",
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(API + path, init);
  } catch (e) {
    throw problem(0, "the Keel API cannot be reached", "is `keel serve` still running?");
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (e) {
      data = null;
    }
  }
  if (res.ok) return data;
  const p = problem(res.status, (data && data.detail) || res.status + " " + res.statusText, data && data.hint);
  if (res.status === 401 && S.me) signOut("You were signed out: " + p.detail + ".");
  throw p;
}

// -- signing in and out -------------------------------------------------------------------------------------------

async function signIn(token) {
  S.token = token;
  try {
    S.me = await api("GET", "/tokens/me");
  } catch (p) {
    S.token = null;
    S.me = null;
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(p.status === 401 ? "That token was refused: " + p.detail + "." : said(p));
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  enterDesk();
}

function showLogin(message) {
  $("desk").hidden = true;
  $("bar").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = message || "";
  $("token").value = "";
  $("token").focus();
}

function signOut(message) {
  stopStream();
  S.timers.forEach((t) => clearInterval(t));
  S.timers = [];
  clearTimeout(S.reload);
  sessionStorage.removeItem(TOKEN_KEY);
  for (const d of document.querySelectorAll("dialog[open]")) d.close();
  $("desk-note").textContent = "";
  Object.assign(S, { token: null, me: null, sessions: [], session: null, pending: [], selected: null });
  Object.assign(S, { preview: null, trading: null, equity: null, lastSeq: null, queueShown: null });
  showLogin(message);
}

function enterDesk() {
  $("login-view").hidden = true;
  $("desk").hidden = false;
  $("bar").hidden = false;
  $("identity").textContent = S.me.name + " · " + S.me.role.replace("_", " ");
  $("identity").title = "token " + S.me.token_id + "; may: " + S.me.permissions.join(", ");
  $("state-actions").hidden = !may("trading-state");
  renderPreview();
  refreshControl();
  S.timers.push(setInterval(refreshControl, CONTROL_MS));
  S.timers.push(setInterval(() => refreshSession(), SESSION_MS));
  $("queue").focus();
}

// -- the control plane: trading state, pending intents, incidents, sessions ---------------------------------------

async function refreshControl() {
  if (S.busy.control || !S.token) return;
  S.busy.control = true;
  try {
    const [trading, pending, incidents, sessions] = await Promise.all([
      api("GET", "/trading-state"),
      api("GET", "/intents/pending"),
      api("GET", "/incidents?limit=10"),
      api("GET", "/sessions"),
    ]);
    $("desk-error").hidden = true;
    renderTrading(trading);
    S.pending = pending;
    renderQueue();
    renderIncidents(incidents);
    renderSessions(sessions);
    if (S.preview && TERMINAL.indexOf(S.preview.status) < 0) await refreshPreview();
  } catch (p) {
    if (S.token) showDeskError(said(p));
  } finally {
    S.busy.control = false;
  }
}

function showDeskError(text) {
  $("desk-error").textContent = text;
  $("desk-error").hidden = false;
}

function renderSessions(list) {
  S.sessions = list;
  const select = $("session");
  const names = list.map((s) => s.name);
  const shown = Array.from(select.options).map((o) => o.value);
  if (names.join("\n") !== shown.join("\n")) {
    select.textContent = "";
    for (const s of list) select.appendChild(el("option", { value: s.name }, s.name + " (" + s.status + ")"));
  } else {
    list.forEach((s, i) => (select.options[i].textContent = s.name + " (" + s.status + ")"));
  }
  if (!list.length) {
    $("session-status").textContent = "no session is registered";
    return;
  }
  let pick = S.session ? S.session.name : sessionStorage.getItem(SESSION_KEY);
  if (names.indexOf(pick) < 0) {
    const live = list.filter((s) => s.status === "running" || s.status === "stopping");
    pick = (live[0] || list[list.length - 1]).name;
  }
  select.value = pick;
  const rec = list[names.indexOf(pick)];
  const changed = !S.session || S.session.name !== rec.name || S.session.run_id !== rec.run_id;
  S.session = rec;
  renderSessionStatus();
  if (changed) openSession();
}

function renderSessionStatus() {
  const s = S.session;
  const parts = [s.mode, "approval " + s.approval_mode, s.strategy, s.status];
  if (s.responding === false) parts.push("NOT RESPONDING: heartbeat " + num(s.heartbeat_age_seconds, 0) + " s ago");
  else if (s.responding) parts.push("heartbeat " + num(s.heartbeat_age_seconds, 1) + " s ago");
  if (s.end_reason) parts.push(s.end_reason);
  $("session-status").textContent = parts.filter(Boolean).join(" · ");
}

function renderTrading(t) {
  S.trading = t;
  drawTrading(t);
}

function renderPreview() {
  drawPreview(S.preview, may("decide"));
}

// -- the approval queue and the preview ---------------------------------------------------------------------------

function renderQueue() {
  const body = $("queue-table").tBodies[0];
  const ids = S.pending.map((r) => r.intent_id);
  if (S.selected && ids.indexOf(S.selected) < 0) S.selected = null;
  // rebuilt only when what it shows changed, and the row that had the focus keeps it
  const shown = JSON.stringify([S.selected, S.pending.map((r) => [r.intent_id, r.version, r.expires_ts])]);
  if (shown === S.queueShown) return;
  S.queueShown = shown;
  const focused =
    document.activeElement && body.contains(document.activeElement)
      ? document.activeElement.getAttribute("data-intent")
      : null;
  body.textContent = "";
  $("queue-count").textContent = S.pending.length;
  $("queue-empty").hidden = S.pending.length > 0;
  $("queue-table").hidden = S.pending.length === 0;
  S.pending.forEach((r, i) => {
    const tr = el("tr", {
      "data-intent": r.intent_id,
      tabindex: (S.selected ? r.intent_id === S.selected : i === 0) ? "0" : "-1",
      "aria-current": r.intent_id === S.selected ? "true" : null,
      "aria-label": r.side + " " + qty(r.quantity) + " " + r.symbol + ", " + r.leg + ", session " + r.session,
    });
    const cells = [
      stamp(r.requested_ts),
      r.session,
      r.symbol,
      { text: r.side, cls: r.side },
      r.leg,
      { text: qty(r.quantity), cls: "num" },
      { text: num(r.notional), cls: "num" },
      r.proposer,
      stamp(r.expires_ts),
      { text: short(r.intent_id), title: r.intent_id, cls: "mono" },
    ];
    cells.forEach((c) => tr.appendChild(cell(c)));
    tr.addEventListener("click", () => select(r.intent_id));
    tr.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        select(r.intent_id);
      } else if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        ev.preventDefault();
        move(ev.key === "ArrowDown" ? 1 : -1);
      }
    });
    body.appendChild(tr);
  });
  const again = focused && body.querySelector('tr[data-intent="' + CSS.escape(focused) + '"]');
  if (again) again.focus();
  else if (focused) $("queue").focus(); // its row is gone (decided elsewhere): stay in the queue
}

function move(step) {
  if (!S.pending.length) return;
  const ids = S.pending.map((r) => r.intent_id);
  let at = ids.indexOf(S.selected);
  at = at < 0 ? (step > 0 ? 0 : ids.length - 1) : Math.min(ids.length - 1, Math.max(0, at + step));
  select(ids[at]);
}

async function select(intentId) {
  S.selected = intentId;
  S.preview = S.pending.find((r) => r.intent_id === intentId) || null;
  renderQueue();
  const row = $("queue-table").querySelector('tr[data-intent="' + CSS.escape(intentId) + '"]');
  if (row) row.focus();
  renderPreview();
  await refreshPreview();
}

async function refreshPreview() {
  if (!S.preview) return;
  const id = S.preview.intent_id;
  try {
    const now = await api("GET", "/intents/" + encodeURIComponent(id) + "/preview");
    if (S.preview && S.preview.intent_id === id) {
      S.preview = now;
      renderPreview();
    }
  } catch (p) {
    if (S.token) showDeskError(said(p));
  }
}

// -- the selected session: positions, orders, equity, blocked reasons, events -------------------------------------

function openSession() {
  stopStream();
  S.lastSeq = null;
  S.needStream = true; // opened by the first reload that reads the run's journal head
  renderEvents([], false);
  sessionStorage.setItem(SESSION_KEY, S.session.name);
  refreshSession();
}

function reloadSoon() {
  clearTimeout(S.reload);
  S.reload = setTimeout(() => {
    refreshSession();
    refreshControl();
  }, DEBOUNCE_MS);
}

async function refreshSession() {
  const s = S.session;
  if (!s || !S.token) return;
  if (S.busy.session) {
    S.again = true; // asked while a reload is on its way: once more when it is done
    return;
  }
  if (!s.run_id) {
    setStream("no run yet", "down");
    return;
  }
  S.busy.session = true;
  const base = "/sessions/" + encodeURIComponent(s.name);
  try {
    const [positions, working, partial, equity, run] = await Promise.all([
      api("GET", base + "/positions"),
      api("GET", base + "/orders?status=working&limit=1000"),
      api("GET", base + "/orders?status=partial_fill&limit=1000"),
      api("GET", base + "/equity?points=400"),
      api("GET", "/runs/" + encodeURIComponent(s.run_id)),
    ]);
    if (!S.session || S.session.name !== s.name || S.session.run_id !== s.run_id) return; // switched meanwhile
    renderAccount(positions);
    renderOrders(working.items.concat(partial.items));
    S.equity = equity;
    renderEquity(equity);
    renderRun(run);
    if (S.needStream) {
      S.needStream = false;
      openStream(s, Math.max(0, run.journal_head_seq - BACKLOG));
    }
  } catch (p) {
    if (S.token) showDeskError(said(p));
  } finally {
    S.busy.session = false;
    const again = S.again;
    S.again = false;
    if (again) refreshSession();
  }
}

// -- the event stream ---------------------------------------------------------------------------------------------

function setStream(text, kind) {
  const pill = $("stream-status");
  pill.textContent = text;
  pill.className = "pill " + (kind || "");
}

function stopStream() {
  if (S.stream) S.stream.abort();
  S.stream = null;
}

async function openStream(session, after) {
  stopStream();
  const ctl = new AbortController();
  S.stream = ctl;
  const path = "/events/stream?session=" + encodeURIComponent(session.name) + (after !== null ? "&after=" + after : "");
  let ended = false;
  setStream("connecting…", "down");
  try {
    const res = await fetch(API + path, {
      headers: headers({ Accept: "text/event-stream" }),
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
      signal: ctl.signal,
    });
    if (res.status === 401) {
      signOut("You were signed out: the bearer token is not valid any more.");
      return;
    }
    if (!res.ok || !res.body) throw problem(res.status, "the event stream answered " + res.status);
    setStream("live", "live");
    S.streamSince = Date.now();
    await readEvents(res.body, (frame) => {
      if (onFrame(frame, session) === "end") ended = true;
    });
  } catch (e) {
    if (ctl.signal.aborted) return;
  }
  if (S.stream !== ctl) return;
  S.stream = null;
  if (ended) {
    setStream("session ended", "ended");
    return;
  }
  setStream("reconnecting…", "down");
  setTimeout(() => {
    if (S.token && S.session && S.session.name === session.name && !S.stream) {
      openStream(session, S.lastSeq !== null ? S.lastSeq : after); // resume right after the last record seen
    }
  }, S.retryMs);
}

function onFrame(frame, session) {
  if (frame.retry !== null) S.retryMs = frame.retry;
  if (frame.data === null || !S.session || S.session.name !== session.name) return null;
  let body;
  try {
    body = JSON.parse(frame.data);
  } catch (e) {
    return null;
  }
  const event = frame.event;
  const id = frame.id;
  if (event === "trading_state") {
    renderTrading(Object.assign({}, S.trading || {}, body));
    reloadSoon();
  } else if (event === "journal") {
    if (id !== null) S.lastSeq = Number(id);
    renderEvents([body], Date.now() - S.streamSince > 1500); // the backlog sent on connecting is not news
    if (/^(intent|order|approval|session|run)\./.test(body.event)) reloadSoon();
  } else if (event === "end") {
    reloadSoon();
    return "end";
  }
  return null;
}

// -- tables and charts --------------------------------------------------------------------------------------------

// -- dialogs: decide an intent, change the trading state, help ---------------------------------------------------

const DECISIONS = {
  approve: {
    title: "Approve intent",
    button: "Approve",
    cls: "primary",
    then: "The session re-checks it and sends it at its next bar.",
    done: "approved",
  },
  reject: {
    title: "Reject intent",
    button: "Reject",
    cls: "danger",
    then: "The session never sends it.",
    done: "rejected",
  },
};

const CHANGES = {
  halt: {
    title: "Halt trading",
    button: "Halt trading",
    what: "Every session stops sending from its next state check: new intents are blocked and working orders are cancelled. Leaving halted needs a risk officer (or an admin) and waits for the cooldown.",
  },
  reduce: {
    title: "Reduce only",
    button: "Reduce only",
    what: "Only exits that shrink risk pass. From halted, this waits for the cooldown.",
  },
  resume: {
    title: "Resume trading",
    button: "Resume trading",
    what: "Back to active: sessions may send new entries again. From halted, this waits for the cooldown.",
  },
};

let deciding = null;
let changing = null;

function openDecide(kind) {
  const r = S.preview;
  if (!r || r.status !== "pending" || !may("decide")) return;
  const d = DECISIONS[kind];
  deciding = { kind: kind, id: r.intent_id, version: r.version };
  $("decide-title").textContent = d.title;
  $("decide-what").textContent =
    d.button +
    " " +
    r.side +
    " " +
    qty(r.quantity) +
    " " +
    r.symbol +
    " (" +
    r.leg +
    ", notional " +
    num(r.notional) +
    ") in session " +
    r.session +
    ", as previewed (version " +
    r.version +
    "). " +
    d.then;
  $("decide-submit").textContent = d.button;
  $("decide-submit").className = d.cls;
  resetField("decide");
  $("decide-dialog").showModal();
  $("decide-reason").focus();
}

function openChange(kind) {
  if (!may("trading-state")) return;
  const c = CHANGES[kind];
  changing = kind;
  $("state-title").textContent = c.title + "?";
  $("state-what").textContent = c.what;
  $("state-submit").textContent = c.button;
  $("state-submit").className = kind === "halt" ? "danger" : "primary";
  resetField("state");
  $("state-dialog").showModal();
  $("state-reason").focus();
}

function resetField(prefix) {
  $(prefix + "-reason").value = "";
  $(prefix + "-reason").removeAttribute("aria-invalid");
  $(prefix + "-error").textContent = "";
  $(prefix + "-submit").disabled = false;
}

function reasonOf(prefix) {
  const input = $(prefix + "-reason");
  const reason = input.value.trim();
  if (!reason) {
    input.setAttribute("aria-invalid", "true");
    $(prefix + "-error").textContent = "A reason is required: it is recorded with your name. Nothing was sent.";
    input.focus();
    return null;
  }
  input.removeAttribute("aria-invalid");
  return reason;
}

async function submitDecision(ev) {
  ev.preventDefault();
  if (!deciding) return;
  const reason = reasonOf("decide");
  if (reason === null) return;
  const job = deciding;
  $("decide-submit").disabled = true;
  try {
    const done = await api("POST", "/intents/" + encodeURIComponent(job.id) + "/" + job.kind, {
      reason: reason,
      expect_version: job.version,
    });
    deciding = null;
    $("decide-dialog").close();
    S.preview = done.request;
    renderPreview();
    const what = done.changed ? DECISIONS[job.kind].done : "already " + done.request.status + ", nothing was changed:";
    note(what + " " + job.id + " as " + S.me.name);
    refreshControl();
  } catch (p) {
    $("decide-error").textContent = "Refused: " + said(p);
    $("decide-submit").disabled = false;
    if (p.status === 409) refreshPreview();
  }
}

async function submitChange(ev) {
  ev.preventDefault();
  if (!changing) return;
  const reason = reasonOf("state");
  if (reason === null) return;
  const kind = changing;
  $("state-submit").disabled = true;
  try {
    const done = await api("POST", "/trading-state/" + kind, { reason: reason });
    changing = null;
    $("state-dialog").close();
    note("trading is now " + done.state);
    refreshControl();
  } catch (p) {
    $("state-error").textContent = "Refused: " + said(p);
    $("state-submit").disabled = false;
  }
}

function note(text) {
  $("desk-note").textContent = when(new Date().toISOString()) + " UTC · " + text;
}

// -- wiring -------------------------------------------------------------------------------------------------------

function typing(target) {
  return (
    target &&
    (target.tagName === "INPUT" ||
      target.tagName === "TEXTAREA" ||
      target.tagName === "SELECT" ||
      target.isContentEditable)
  );
}

function onKey(ev) {
  if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if ($("desk").hidden || document.querySelector("dialog[open]") || typing(ev.target)) return;
  const actions = {
    j: () => move(1),
    k: () => move(-1),
    a: () => openDecide("approve"),
    r: () => openDecide("reject"),
    h: () => S.trading && S.trading.state !== "halted" && openChange("halt"),
    s: () => $("session").focus(),
    "?": () => $("help-dialog").showModal(),
  };
  const act = actions[ev.key];
  if (!act) return;
  ev.preventDefault();
  act();
}

function start() {
  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = $("token").value.trim();
    $("token").value = "";
    if (!token) {
      $("login-error").textContent = "Paste an API token first.";
      $("token").focus();
      return;
    }
    signIn(token);
  });
  $("signout").addEventListener("click", () => signOut("Signed out. The token was forgotten by this tab."));
  $("session").addEventListener("change", () => {
    const rec = S.sessions.find((s) => s.name === $("session").value);
    if (rec) {
      S.session = rec;
      renderSessionStatus();
      openSession();
    }
  });
  $("approve").addEventListener("click", () => openDecide("approve"));
  $("reject").addEventListener("click", () => openDecide("reject"));
  $("halt").addEventListener("click", () => openChange("halt"));
  $("reduce").addEventListener("click", () => openChange("reduce"));
  $("resume").addEventListener("click", () => openChange("resume"));
  $("decide-form").addEventListener("submit", submitDecision);
  $("state-form").addEventListener("submit", submitChange);
  $("decide-cancel").addEventListener("click", () => $("decide-dialog").close());
  $("state-cancel").addEventListener("click", () => $("state-dialog").close());
  $("decide-dialog").addEventListener("close", () => (deciding = null));
  $("state-dialog").addEventListener("close", () => (changing = null));
  for (const prefix of ["decide", "state"]) {
    $(prefix + "-reason").addEventListener("input", () => {
      $(prefix + "-reason").removeAttribute("aria-invalid");
      $(prefix + "-error").textContent = "";
    });
  }
  $("help-open").addEventListener("click", () => $("help-dialog").showModal());
  $("help-close").addEventListener("click", () => $("help-dialog").close());
  document.addEventListener("keydown", onKey);
  window.addEventListener("resize", () => S.equity && renderEquity(S.equity));
  const kept = sessionStorage.getItem(TOKEN_KEY);
  if (kept) signIn(kept);
  else showLogin("");
}

start();
