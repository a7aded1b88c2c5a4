/* A line (or an area down to zero) of one series as SVG, with its axes and the value under the pointer: the
 * equity curve and the drawdown. Drawn from the data the API returned, nothing fetched. */
import { el, num, when } from "./format.js";

const NS = "http://www.w3.org/2000/svg";

function svg(name, attrs, text) {
  const e = document.createElementNS(NS, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}

/* One series as an SVG line (or an area down to zero), with its axes and the value under the pointer. */
export function drawChart(host, pts, o) {
  host.textContent = "";
  host.setAttribute("data-points", String(pts.length));
  if (pts.length < 2) {
    host.appendChild(el("p", { class: "empty" }, "No " + o.name + " curve yet: it starts with the first fill."));
    return;
  }
  const W = Math.max(host.clientWidth || 700, 320);
  const H = o.height;
  const L = 74,
    R = 10,
    T = 8,
    B = 20;
  let x0 = Infinity,
    x1 = -Infinity,
    y0 = Infinity,
    y1 = -Infinity;
  for (const p of pts) {
    x0 = Math.min(x0, p.x);
    x1 = Math.max(x1, p.x);
    y0 = Math.min(y0, p.y);
    y1 = Math.max(y1, p.y);
  }
  if (o.fill) y1 = Math.max(y1, 0);
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) {
    y0 -= 1;
    y1 += 1;
  }
  const pad = (y1 - y0) * 0.06;
  y0 -= pad;
  y1 += pad;
  const span = y1 - y0;
  const digits = span >= 1000 ? 0 : span >= 1 ? 2 : span >= 0.01 ? 3 : 4;
  const px = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const py = (y) => T + ((y1 - y) / (y1 - y0)) * (H - T - B);
  const last = pts[pts.length - 1];
  const chart = svg("svg", {
    viewBox: "0 0 " + W + " " + H,
    width: W,
    height: H,
    role: "img",
    "aria-label":
      o.name +
      ": " +
      pts.length +
      " points, last " +
      num(last.y) +
      o.unit +
      " at " +
      when(new Date(last.x).toISOString()),
  });
  for (let i = 0; i <= 3; i++) {
    const v = y0 + ((y1 - y0) * i) / 3;
    chart.appendChild(svg("line", { x1: L, x2: W - R, y1: py(v), y2: py(v), stroke: "#eaeef2" }));
    chart.appendChild(
      svg(
        "text",
        { x: L - 6, y: py(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#57606a" },
        num(v, digits) + o.unit,
      ),
    );
  }
  for (let j = 0; j <= 4; j++) {
    const v = x0 + ((x1 - x0) * j) / 4;
    const anchor = j === 0 ? "start" : j === 4 ? "end" : "middle";
    chart.appendChild(
      svg(
        "text",
        { x: px(v), y: H - 5, "text-anchor": anchor, "font-size": 11, fill: "#57606a" },
        when(new Date(v).toISOString()).slice(5, 16),
      ),
    );
  }
  const d = pts.map((p, i) => (i ? "L" : "M") + px(p.x).toFixed(1) + " " + py(p.y).toFixed(1)).join("");
  if (o.fill) {
    const area =
      d +
      "L" +
      px(last.x).toFixed(1) +
      " " +
      py(0).toFixed(1) +
      "L" +
      px(pts[0].x).toFixed(1) +
      " " +
      py(0).toFixed(1) +
      "Z";
    chart.appendChild(svg("path", { d: area, fill: o.color, "fill-opacity": 0.16, stroke: "none" }));
  }
  chart.appendChild(svg("path", { d: d, fill: "none", stroke: o.color, "stroke-width": 1.5, "data-series": o.name }));
  const cross = svg("line", { y1: T, y2: H - B, stroke: "#8c959f", "stroke-dasharray": "3 3", visibility: "hidden" });
  chart.appendChild(cross);
  const tip = el("div", { class: "tip", hidden: "" });
  const overlay = svg("rect", { x: L, y: T, width: W - L - R, height: H - T - B, fill: "transparent" });
  overlay.addEventListener("mousemove", (ev) => {
    const box = chart.getBoundingClientRect();
    const sx = ((ev.clientX - box.left) * W) / box.width;
    const x = x0 + ((sx - L) / (W - L - R)) * (x1 - x0);
    let k = 0;
    for (let i = 1; i < pts.length; i++) if (Math.abs(pts[i].x - x) < Math.abs(pts[k].x - x)) k = i;
    cross.setAttribute("x1", px(pts[k].x));
    cross.setAttribute("x2", px(pts[k].x));
    cross.setAttribute("visibility", "visible");
    tip.textContent = when(new Date(pts[k].x).toISOString()) + " UTC · " + o.name + " " + num(pts[k].y) + o.unit;
    tip.hidden = false;
    tip.style.left = Math.min(ev.clientX - box.left + 12, box.width - 240) + "px";
  });
  overlay.addEventListener("mouseleave", () => {
    cross.setAttribute("visibility", "hidden");
    tip.hidden = true;
  });
  chart.appendChild(overlay);
  host.appendChild(chart);
  host.appendChild(tip);
}
