/* The views of the console: each draws one panel from what the API returned, with text only (nothing shown is
 * ever parsed as HTML). They hold no state and call nothing: app.js decides what to show and when. */
import { el, num, qty, short, signed, stamp, when } from "./format.js";

const $ = (id) => document.getElementById(id);
// the journal records the events table keeps, newest first
const KEPT_EVENTS = 300;

const STATES = {
  active: { word: "Active", text: "new intents may be sent" },
  reduce: { word: "Reduce only", text: "only exits that shrink risk pass" },
  halted: { word: "Halted", text: "nothing is sent; working orders are cancelled" },
};

export function renderTrading(t) {
  const known = STATES[t.state] || { word: t.state, text: "" };
  const banner = $("banner");
  banner.className = "banner state-" + (STATES[t.state] ? t.state : "unknown");
  banner.setAttribute("data-state", t.state);
  $("state-word").textContent = known.word;
  $("state-word").setAttribute("data-state", t.state);
  $("state-text").textContent = known.text;
  const who = t.actor ? "by " + t.actor + (t.since ? " at " + when(t.since) + " UTC" : "") : "";
  $("state-who").textContent = [who, t.reason ? "“" + t.reason + "”" : ""].filter(Boolean).join(": ");
  $("halt").hidden = t.state === "halted";
  $("reduce").hidden = t.state === "reduce";
  $("resume").hidden = t.state === "active";
}

export function renderIncidents(list) {
  const rows = list
    .slice()
    .reverse()
    .map((i) => [
      { text: i.incident_id, cls: "num" },
      stamp(i.opened_at),
      i.trigger,
      i.opened_by,
      { text: i.reason, cls: "wrap" },
      i.open ? { text: i.state + " (open)", cls: "neg" } : "closed " + when(i.closed_at).slice(5),
    ]);
  fill($("incidents-table"), rows, $("incidents-empty"));
}

export function renderPreview(r, canDecide) {
  $("preview-empty").hidden = !!r;
  $("preview-body").hidden = !r;
  $("decide-actions").hidden = !(r && r.status === "pending" && canDecide);
  $("decide-none").hidden = !(r && r.status === "pending" && !canDecide);
  if (!r) return;
  const pv = r.preview || {};
  const intent = pv.intent || {};
  const sends = pv.sends || {};
  $("pv-what").textContent =
    r.side.toUpperCase() +
    " " +
    qty(r.quantity) +
    " " +
    r.symbol +
    " · " +
    r.leg +
    (sends.order_type ? " · " + sends.order_type : "");
  const status = $("pv-status");
  status.textContent = r.status;
  status.className = "pill s-" + r.status;
  status.setAttribute("data-status", r.status);
  const facts = [
    ["Intent", r.intent_id],
    ["Session", r.session + " (" + r.run_id + ")"],
    ["Notional", num(r.notional)],
    [
      "Reference",
      intent.reference_price !== undefined ? num(intent.reference_price, 4) + " at " + when(intent.reference_ts) : null,
    ],
    [
      "Price band",
      Array.isArray(sends.price_band) ? num(sends.price_band[0], 4) + " – " + num(sends.price_band[1], 4) : null,
    ],
    [
      "Stop / target",
      intent.stop !== undefined
        ? (intent.stop === null ? "none" : num(intent.stop, 4)) +
          " / " +
          (intent.target === null || intent.target === undefined ? "none" : num(intent.target, 4))
        : null,
    ],
    ["Proposer", r.proposer],
    [
      "Supervisor",
      pv.verdict
        ? pv.verdict.verdict +
          (pv.verdict.reasons && pv.verdict.reasons.length ? ": " + pv.verdict.reasons.join(", ") : "")
        : null,
    ],
    [
      "Critic",
      pv.critic
        ? pv.critic.verdict +
          " (" +
          pv.critic.reviewer +
          ")" +
          (pv.critic.reasons && pv.critic.reasons.length ? ": " + pv.critic.reasons.join(", ") : "")
        : null,
    ],
    ["Will send", r.bound_hash + " · version " + r.version],
    ["Requested", when(r.requested_ts) + " (session clock)"],
    ["Expires", when(r.expires_ts) + " (session clock)"],
    ["Decided", r.decided_by ? r.decided_by + " at " + when(r.decided_ts) + ": " + r.decision_reason : null],
    ["Outcome", r.outcome_reason],
  ];
  const dl = $("pv-facts");
  dl.textContent = "";
  for (const [k, v] of facts) {
    if (v === null || v === undefined) continue;
    dl.appendChild(el("dt", {}, k));
    dl.appendChild(el("dd", {}, v));
  }
  const checks = $("pv-checks");
  checks.textContent = "";
  for (const c of checkList(pv.checks)) {
    const li = el("li", { class: c.ok ? "pass" : "fail" }, (c.ok ? "✓ " : "✗ ") + c.name + (c.ok ? "" : ": " + c.why));
    li.title = c.ok ? "passed" : "failed";
    checks.appendChild(li);
  }
  if (!checks.children.length) checks.appendChild(el("li", {}, "no check recorded"));
  $("pv-rationale").textContent = intent.rationale ? "Why: " + intent.rationale : "";
}

function checkList(checks) {
  if (Array.isArray(checks)) {
    return checks.map((c) => ({ name: c.name, ok: !!c.passed, why: c.reason_code || "failed" }));
  }
  return Object.keys(checks || {}).map((k) => {
    const v = checks[k];
    const ok = v === "pass" || v === true || (v && v.passed === true);
    return { name: k, ok: ok, why: typeof v === "string" ? v : JSON.stringify(v) };
  });
}

function tile(label, value, cls) {
  const d = el("div", { class: cls || null });
  d.appendChild(el("span", {}, label));
  d.appendChild(el("b", {}, value));
  return d;
}

export function renderAccount(a) {
  const tiles = $("tiles");
  tiles.textContent = "";
  const pnl = signed(a.pnl);
  const day = signed(a.daily_pnl);
  tiles.appendChild(tile("Equity", num(a.equity)));
  tiles.appendChild(tile("Cash", num(a.cash)));
  tiles.appendChild(tile("PnL", pnl.text, pnl.cls));
  tiles.appendChild(tile("Today", day.text, day.cls));
  tiles.appendChild(tile("Drawdown", a.drawdown_pct === null ? "–" : num(a.drawdown_pct) + " %"));
  tiles.appendChild(tile("Exposure", num(a.open_exposure)));
  tiles.appendChild(tile("Realized", num(a.realized_pnl)));
  tiles.appendChild(tile("Fees", num(a.fees_paid)));
  $("account-asof").textContent = a.as_of ? "as of bar " + a.as_of.bar + ", " + when(a.as_of.ts) : "no checkpoint yet";
  const rows = a.positions.map((p) => [
    p.symbol,
    { text: qty(p.quantity), cls: "num" },
    { text: num(p.average_price, 4), cls: "num" },
    { text: num(p.mark_price, 4), cls: "num" },
    { text: num(p.market_value), cls: "num" },
    signed(p.unrealized_pnl),
  ]);
  fill($("positions-table"), rows, $("positions-empty"));
}

export function renderOrders(list) {
  $("orders-count").textContent = list.length;
  const rows = list.map((o) => [
    stamp(o.submitted_ts),
    o.symbol,
    { text: o.side, cls: o.side },
    o.order_type,
    { text: qty(o.quantity), cls: "num" },
    { text: qty(o.filled_quantity), cls: "num" },
    o.status,
  ]);
  fill($("orders-table"), rows, $("orders-empty"));
}

export function renderRun(run) {
  const reasons = Object.entries(run.blocked_reasons || {}).slice(0, 10);
  const top = reasons.length ? reasons[0][1] : 1;
  const rows = reasons.map(([reason, n]) => {
    const bar = el("div", { class: "bar-fill", "aria-hidden": "true" });
    bar.style.width = Math.max(2, (n / top) * 100) + "%";
    return [
      { text: reason, cls: "mono" },
      { text: n, cls: "num" },
      { node: bar, cls: "barcell" },
    ];
  });
  fill($("blocked-table"), rows, $("blocked-empty"));
  const states = $("intent-states");
  states.textContent = "";
  const by = run.intents_by_state || {};
  for (const k of Object.keys(by)) states.appendChild(el("span", { "data-state": k }, k + " " + by[k]));
  if (!states.children.length) states.appendChild(el("span", {}, "no intent yet"));
}

export function renderEquity(eq) {
  const pts = (eq.points || [])
    .map((p) => ({ x: Date.parse(p.ts), y: p.equity }))
    .filter((p) => isFinite(p.x) && p.y !== null);
  let peak = -Infinity;
  const dd = pts.map((p) => {
    peak = Math.max(peak, p.y);
    return { x: p.x, y: peak > 0 ? -((peak - p.y) / peak) * 100 : 0 };
  });
  const worst =
    eq.max_drawdown_pct === null || eq.max_drawdown_pct === undefined ? "–" : num(eq.max_drawdown_pct) + " %";
  $("equity-basis").textContent =
    "from the " + (eq.basis === "report" ? "run report" : "fills") + " · max drawdown " + worst;
  curve($("chart-equity"), pts, { name: "equity", color: "#0969da", unit: "", height: 150 });
  curve($("chart-drawdown"), dd, { name: "drawdown", color: "#cf222e", unit: " %", fill: true, height: 100 });
}

/* One curve, drawn by the chart script the run report draws with (keel.charts, loaded by index.html). */
function curve(host, pts, o) {
  window.KeelChart.draw(host, {
    series: [{ name: o.name, x: pts.map((p) => p.x), y: pts.map((p) => p.y), color: o.color, fill: o.fill }],
    unit: o.unit,
    height: o.height,
    ticks: { y: 3, x: 4 },
    times: "minute",
    empty: "No " + o.name + " curve yet: it starts with the first fill.",
  });
}

function summary(rec) {
  const p = rec.payload || {};
  if (rec.event === "intent.transition") {
    return (
      short(p.intent_id) +
      " " +
      p.from +
      " → " +
      p.to +
      (p.reason ? " (" + p.reason + ")" : "") +
      (p.actor ? " by " + p.actor : "")
    );
  }
  if (rec.event === "intent.proposed" && p.intent) {
    const i = p.intent;
    const d = p.decision; // journal format 5: the decision rides with the proposal
    return (
      short(i.intent_id) +
      " " +
      i.side +
      " " +
      qty(i.quantity) +
      " " +
      i.symbol +
      " (" +
      i.leg +
      ")" +
      (d ? " → " + d.to + (d.reason ? " (" + d.reason + ")" : "") + (d.actor ? " by " + d.actor : "") : "")
    );
  }
  const keys = [
    "intent_id",
    "client_order_id",
    "symbol",
    "side",
    "quantity",
    "price",
    "status",
    "state",
    "reason",
    "why",
  ];
  const parts = [];
  for (const k of keys) {
    if (p[k] === undefined || p[k] === null || typeof p[k] === "object") continue;
    const v = typeof p[k] === "number" ? qty(Number(p[k].toPrecision(10))) : p[k];
    parts.push(k === "intent_id" || k === "client_order_id" ? short(v) : k + "=" + v);
  }
  return parts.join(" ");
}

export function renderEvents(fresh, live) {
  const body = $("events-table").tBodies[0];
  if (!fresh.length) body.textContent = "";
  for (const rec of fresh) {
    const tr = el("tr", { "data-seq": rec.seq, "data-event": rec.event, class: live ? "fresh" : null });
    [{ text: rec.seq, cls: "num" }, stamp(rec.ts), rec.stage, rec.event, { text: summary(rec), cls: "wrap" }].forEach(
      (c) => tr.appendChild(cell(c)),
    );
    body.insertBefore(tr, body.firstChild);
  }
  while (body.rows.length > KEPT_EVENTS) body.deleteRow(body.rows.length - 1);
  $("events-empty").hidden = body.rows.length > 0;
  $("events-table").hidden = body.rows.length === 0;
}

export function cell(c) {
  const td = el("td");
  if (c !== null && typeof c === "object") {
    if (c.cls) td.className = c.cls;
    if (c.title) td.title = c.title;
    if (c.node) td.appendChild(c.node);
    else td.textContent = c.text === undefined || c.text === null ? "–" : String(c.text);
  } else {
    td.textContent = c === undefined || c === null ? "–" : String(c);
  }
  return td;
}

export function fill(table, rows, empty) {
  const body = table.tBodies[0];
  body.textContent = "";
  for (const r of rows) {
    const tr = el("tr");
    r.forEach((c) => tr.appendChild(cell(c)));
    body.appendChild(tr);
  }
  table.hidden = rows.length === 0;
  if (empty) empty.hidden = rows.length > 0;
}
