/* Keel's line chart: series over time as SVG, with axes, a legend, trade markers and the values under the pointer.
 * One script for every page that draws a curve: the run report inlines it (a file that works offline), the web
 * console serves it (`/console/chart.js`). A classic script, no module, no library: it defines `KeelChart.draw`.
 *
 * draw(host, spec) empties `host` and draws `spec`:
 *   series:  [{name, x: [epoch ms], y: [number | null], color, fill}]; a null y breaks the line; fill: an area to 0
 *   markers: [{x, y, kind: "buy" | "sell", label}] (optional)
 *   unit:    after each value ("" or " %"); digits: decimals of values (default: from the range)
 *   height:  pixels (default 240); ticks: {y, x} grid lines (default 4 and 5); times: "date" | "minute" on the axis
 *   empty:   what to say when no series has two points (default "no data")
 * It marks the host with data-drawn (series drawn) and data-points (points of the first series), and each path
 * with data-series, each legend entry with data-legend and each marker with data-marker, for tests and tools. */
(function (root) {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";

  function node(name, attrs, text) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function num(v, d) {
    return Number(v).toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
  }
  function when(ms) {
    return new Date(ms).toISOString().slice(0, 16).replace("T", " ");
  }
  function nearest(xs, x) {
    var lo = 0, hi = xs.length - 1;
    while (hi - lo > 1) {
      var mid = (lo + hi) >> 1;
      if (xs[mid] < x) lo = mid; else hi = mid;
    }
    return Math.abs(xs[lo] - x) <= Math.abs(xs[hi] - x) ? lo : hi;
  }
  function points(s) {
    var n = 0;
    for (var i = 0; i < s.y.length; i++) if (s.y[i] !== null && isFinite(s.y[i])) n++;
    return n;
  }

  function draw(host, spec) {
    host.textContent = "";
    var series = spec.series || [], markers = spec.markers || [], unit = spec.unit || "";
    host.setAttribute("data-points", String(series.length ? points(series[0]) : 0));
    if (!series.some(function (s) { return points(s) >= 2; })) {
      var p = document.createElement("p");
      p.className = "empty";
      p.textContent = spec.empty || "no data";
      host.appendChild(p);
      host.setAttribute("data-drawn", "0");
      return;
    }
    var W = Math.max(host.clientWidth || 900, 320), H = spec.height || 240, L = 74, R = 12, T = 10, B = 24;
    var ticks = spec.ticks || { y: 4, x: 5 };
    var x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    series.forEach(function (s) {
      s.x.forEach(function (x, i) {
        var y = s.y[i];
        if (y === null || !isFinite(y)) return;
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      });
      if (s.fill) y1 = Math.max(y1, 0);
    });
    markers.forEach(function (m) { if (m.y < y0) y0 = m.y; if (m.y > y1) y1 = m.y; });
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) { y0 -= 1; y1 += 1; }
    var pad = (y1 - y0) * 0.05;
    y0 -= pad;
    y1 += pad;
    var span = y1 - y0;
    var digits = spec.digits !== undefined ? spec.digits : span >= 1000 ? 0 : span >= 1 ? 2 : span >= 0.01 ? 3 : 4;
    var axisDigits = spec.digits !== undefined ? Math.min(digits, 2) : digits; // a range of cents keeps its digits
    function px(x) { return L + (x - x0) / (x1 - x0) * (W - L - R); }
    function py(y) { return T + (y1 - y) / (y1 - y0) * (H - T - B); }
    var first = series[0], last = first.x.length - 1;
    while (last > 0 && (first.y[last] === null || !isFinite(first.y[last]))) last--;
    var svg = node("svg", {
      viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img",
      "aria-label": first.name + ": " + points(first) + " points, last " + num(first.y[last], digits) + unit +
        " at " + when(first.x[last]) + " UTC",
    });
    for (var i = 0; i <= ticks.y; i++) {
      var yv = y0 + (y1 - y0) * i / ticks.y, yy = py(yv);
      svg.appendChild(node("line", { x1: L, x2: W - R, y1: yy, y2: yy, stroke: "#eaeef2" }));
      svg.appendChild(node("text", { x: L - 6, y: yy + 4, "text-anchor": "end", "font-size": 11, fill: "#57606a" },
        num(yv, axisDigits) + unit));
    }
    for (var j = 0; j <= ticks.x; j++) {
      var xv = x0 + (x1 - x0) * j / ticks.x;
      var label = spec.times === "minute" ? when(xv).slice(5, 16) : when(xv).slice(0, 10);
      svg.appendChild(node("text", { x: px(xv), y: H - 7, "text-anchor": j === 0 ? "start" : j === ticks.x ? "end" : "middle",
        "font-size": 11, fill: "#57606a" }, label));
    }
    series.forEach(function (s) {
      var d = "", start = true;
      s.x.forEach(function (x, k) {
        if (s.y[k] === null || !isFinite(s.y[k])) { start = true; return; }
        d += (start ? "M" : "L") + px(x).toFixed(1) + " " + py(s.y[k]).toFixed(1);
        start = false;
      });
      if (s.fill && s.x.length) {
        svg.appendChild(node("path", { d: d + "L" + px(s.x[s.x.length - 1]).toFixed(1) + " " + py(0).toFixed(1) + "L" +
          px(s.x[0]).toFixed(1) + " " + py(0).toFixed(1) + "Z", fill: s.color, "fill-opacity": 0.16, stroke: "none" }));
      }
      svg.appendChild(node("path", { d: d, fill: "none", stroke: s.color, "stroke-width": 1.5, "data-series": s.name }));
    });
    if (series.length > 1) series.forEach(function (s, k) {
      svg.appendChild(node("text", { x: L + 8, y: T + 14 + k * 14, "font-size": 12, fill: s.color, "data-legend": s.name },
        "\u25A0 " + s.name));
    });
    markers.forEach(function (m) {
      var x = px(m.x), y = py(m.y), up = m.kind === "buy";
      var d = up ? "M" + x + " " + (y + 1) + "l-4 7h8z" : "M" + x + " " + (y - 1) + "l-4 -7h8z";
      var mark = node("path", { d: d, fill: up ? "#1a7f37" : "#cf222e", "data-marker": m.kind });
      mark.appendChild(node("title", {}, m.label + " @ " + num(m.y, digits) + ", " + when(m.x)));
      svg.appendChild(mark);
    });
    var cross = node("line", { y1: T, y2: H - B, stroke: "#8c959f", "stroke-dasharray": "3 3", visibility: "hidden" });
    svg.appendChild(cross);
    var tip = document.createElement("div");
    tip.className = "tip";
    tip.style.display = "none";
    tip.style.top = "6px";
    var overlay = node("rect", { x: L, y: T, width: W - L - R, height: H - T - B, fill: "transparent" });
    overlay.addEventListener("mousemove", function (ev) {
      var r = svg.getBoundingClientRect(), sx = (ev.clientX - r.left) * W / r.width;
      var x = x0 + (sx - L) / (W - L - R) * (x1 - x0), lines = [];
      series.forEach(function (s) {
        if (!s.x.length) return;
        var k = nearest(s.x, x);
        if (s.y[k] !== null && isFinite(s.y[k])) lines.push(s.name + ": " + num(s.y[k], digits) + unit);
        if (lines.length === 1) lines.unshift(when(s.x[k]) + " UTC");
      });
      cross.setAttribute("x1", sx);
      cross.setAttribute("x2", sx);
      cross.setAttribute("visibility", "visible");
      tip.textContent = "";
      lines.forEach(function (t) { var div = document.createElement("div"); div.textContent = t; tip.appendChild(div); });
      tip.style.display = "block";
      tip.style.left = Math.min(ev.clientX - r.left + 12, r.width - 240) + "px";
    });
    overlay.addEventListener("mouseleave", function () { cross.setAttribute("visibility", "hidden"); tip.style.display = "none"; });
    svg.appendChild(overlay);
    host.appendChild(svg);
    host.appendChild(tip);
    host.setAttribute("data-drawn", String(series.filter(function (s) { return points(s) > 0; }).length));
  }

  root.KeelChart = { draw: draw };
})(window);
