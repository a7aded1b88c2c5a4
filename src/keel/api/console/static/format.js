/* Formatting for the console: numbers in en-US with tabular digits, times in UTC, ids shortened; and the one DOM
 * helper every view builds with (text only: nothing shown is ever parsed as HTML). */

export function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) {
    if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]);
  }
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

export function num(v, digits) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  const d = digits === undefined ? 2 : digits;
  return Number(v).toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}

export function qty(v) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  return Number(v).toLocaleString("en-US", { maximumFractionDigits: 8 });
}

export function signed(v, digits) {
  if (v === null || v === undefined || !isFinite(v)) return { text: "–" };
  return { text: (v > 0 ? "+" : "") + num(v, digits), cls: v > 0 ? "num pos" : v < 0 ? "num neg" : "num" };
}

export function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  if (isNaN(d.getTime())) return String(iso);
  return d.toISOString().slice(0, 19).replace("T", " ");
}

export function stamp(iso) {
  // a table's time: month-day and time of day (the full time is the cell's title)
  return { text: when(iso).slice(5), title: when(iso) + " UTC" };
}

export function short(id) {
  return id ? String(id).slice(0, 11) + "…" : "–";
}
