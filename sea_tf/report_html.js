/* The script of sea-tf's report page (sea_tf/report_html.py inlines it): draws the Pareto plots as
   SVG, sorts the table, shows a tooltip on hover and the cell's card on click. Plain DOM, no library,
   no network: the page opens from file://. Data strings are only ever set as text, never as markup. */
(function () {
  "use strict";
  var SVGNS = "http://www.w3.org/2000/svg";
  var payload = JSON.parse(document.getElementById("tune-data").textContent);
  var tune = payload.tune, stat = payload.latency_stat, colors = payload.colors;
  var cells = tune.cells || [], budgets = tune.budgets || {}, byId = {};
  cells.forEach(function (c) { byId[c.id] = c; });
  var chosen = {};
  Object.keys(tune.choice || {}).forEach(function (b) { var c = tune.choice[b]; if (c && c.cell) chosen[b] = c.cell; });
  var floor = isNum(tune.reference_accuracy) && isNum(budgets.accuracy_drop)
    ? tune.reference_accuracy - budgets.accuracy_drop : null;
  var AXES = {
    latency: {title: "accuracy vs latency " + stat, label: "latency " + stat + " per window (ms)",
              x: function (c) { return c.latency_ms ? c.latency_ms[stat] : null; },
              budget: budgets.latency_ms, key: "latency_ms", text: "latency ≤ " + fmt(budgets.latency_ms) + " ms"},
    size: {title: "accuracy vs model size", label: "model file size (KB)",
           x: function (c) { return isNum(c.size_bytes) ? c.size_bytes / 1024 : null; },
           budget: budgets.flash_kb, key: "flash_kb", text: "flash ≤ " + fmt(budgets.flash_kb) + " KB"}
  };
  var W = 640, H = 400, M = {l: 62, r: 22, t: 36, b: 52};

  function isNum(v) { return typeof v === "number" && isFinite(v); }
  function fmt(v) {
    if (!isNum(v)) return "—";
    var a = Math.abs(v);
    return a >= 1000 ? String(Math.round(v)) : String(Number(v.toPrecision(a >= 1 ? 4 : 3)));
  }
  function svg(tag, attrs, text) {
    var e = document.createElementNS(SVGNS, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function node(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function color(c) { return colors[(c.export || {}).mode] || "#777777"; }

  // --- scales and ticks ---------------------------------------------------------------------------------------
  function scale(lo, hi, a, b, log) {
    var f = log ? Math.log10 : function (v) { return v; }, l0 = f(lo), l1 = f(hi);
    return function (v) { return a + (f(v) - l0) / (l1 - l0) * (b - a); };
  }
  function extent(values, log) {
    var lo = Math.min.apply(null, values), hi = Math.max.apply(null, values);
    if (log) return [lo / 1.35, hi * 1.35];
    var span = hi - lo || Math.abs(hi) * 0.2 || 1;
    var out = [lo - span * 0.1, hi + span * 0.1];
    if (out[0] < 0 && lo >= 0) out[0] = 0;
    return out;
  }
  function linearTicks(lo, hi, n) {
    var raw = (hi - lo) / n, step = Math.pow(10, Math.floor(Math.log10(raw))), r = raw / step, ticks = [];
    step *= r >= 7.5 ? 10 : r >= 3.5 ? 5 : r >= 1.5 ? 2 : 1;
    for (var v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
    return ticks;
  }
  function logTicks(lo, hi) {
    var ticks = [], k0 = Math.floor(Math.log10(lo)), k1 = Math.ceil(Math.log10(hi));
    var mantissas = k1 - k0 > 4 ? [1] : [1, 2, 5];
    for (var k = k0; k <= k1; k++) {
      mantissas.forEach(function (m) { var v = Number((m * Math.pow(10, k)).toPrecision(12)); if (v >= lo && v <= hi) ticks.push(v); });
    }
    return ticks.length >= 2 ? ticks : linearTicks(lo, hi, 5);
  }

  // --- one plot: the points of one board against one cost -------------------------------------------------------
  function drawPlot(fig) {
    var board = fig.getAttribute("data-board"), axisName = fig.getAttribute("data-axis"), axis = AXES[axisName];
    var done = cells.filter(function (c) { return c.board === board && c.status === "done"; });
    var pts = done.filter(function (c) { return isNum(c.accuracy) && isNum(axis.x(c)) && axis.x(c) > 0; });
    var root = svg("svg", {"class": "pareto", viewBox: "0 0 " + W + " " + H, role: "img", "data-board": board,
                           "data-axis": axisName, "aria-label": axis.title + " on " + board});
    fig.textContent = "";
    fig.appendChild(root);
    root.appendChild(svg("text", {x: M.l, y: 20, "class": "plot-title"}, axis.title));
    var frame = {x: M.l, y: M.t, width: W - M.l - M.r, height: H - M.t - M.b, "class": "frame"};
    if (!pts.length) {      // a short empty frame: nothing to read off axes
      root.setAttribute("viewBox", "0 0 " + W + " 90");
      root.appendChild(svg("rect", {x: M.l, y: M.t, width: W - M.l - M.r, height: 44, "class": "frame"}));
      root.appendChild(svg("text", {x: W / 2, y: M.t + 27, "class": "empty", "text-anchor": "middle"},
                           "no done cell of " + board + " has both an accuracy and a " + axisName));
      caption(fig, 0, done.length, false);
      return;
    }
    var xs = pts.map(axis.x), ys = pts.map(function (c) { return 100 * c.accuracy; });
    var xb = isNum(axis.budget) && axis.budget > 0, yb = isNum(floor);
    var allX = xb ? xs.concat([axis.budget]) : xs, allY = yb ? ys.concat([100 * floor]) : ys;
    var log = Math.max.apply(null, allX) / Math.min.apply(null, allX) > 10;
    var xd = extent(allX, log), yd = extent(allY, false);
    var X = scale(xd[0], xd[1], M.l, W - M.r, log), Y = scale(yd[0], yd[1], H - M.b, M.t, false);

    var axes = svg("g", {"class": "axes"});
    (log ? logTicks(xd[0], xd[1]) : linearTicks(xd[0], xd[1], 6)).forEach(function (v) {
      axes.appendChild(svg("line", {x1: X(v), x2: X(v), y1: M.t, y2: H - M.b, "class": "grid"}));
      axes.appendChild(svg("line", {x1: X(v), x2: X(v), y1: H - M.b, y2: H - M.b + 5, "class": "tick"}));
      axes.appendChild(svg("text", {x: X(v), y: H - M.b + 18, "text-anchor": "middle", "class": "tick-label"}, fmt(v)));
    });
    linearTicks(yd[0], yd[1], 5).forEach(function (v) {
      axes.appendChild(svg("line", {x1: M.l, x2: W - M.r, y1: Y(v), y2: Y(v), "class": "grid"}));
      axes.appendChild(svg("line", {x1: M.l - 5, x2: M.l, y1: Y(v), y2: Y(v), "class": "tick"}));
      axes.appendChild(svg("text", {x: M.l - 8, y: Y(v) + 4, "text-anchor": "end", "class": "tick-label"}, fmt(v)));
    });
    axes.appendChild(svg("rect", frame));
    axes.appendChild(svg("text", {x: M.l + (W - M.l - M.r) / 2, y: H - 12, "text-anchor": "middle", "class": "axis-label"},
                         axis.label + (log ? " — log scale" : "")));
    var yMid = M.t + (H - M.t - M.b) / 2;
    axes.appendChild(svg("text", {x: 16, y: yMid, "text-anchor": "middle", "class": "axis-label",
                                  transform: "rotate(-90 16 " + yMid + ")"}, "accuracy (%)"));
    root.appendChild(axes);

    if (xb) {
      root.appendChild(svg("line", {x1: X(axis.budget), x2: X(axis.budget), y1: M.t, y2: H - M.b, "class": "budget",
                                    "data-budget": axis.key}));
      var left = X(axis.budget) > W - M.r - 110;     // near the right edge: the label goes left of its line
      root.appendChild(svg("text", {x: X(axis.budget) + (left ? -5 : 5), y: M.t + 13, "text-anchor": left ? "end" : "start",
                                    "class": "budget-label"}, axis.text));
    }
    if (yb) {
      root.appendChild(svg("line", {x1: M.l, x2: W - M.r, y1: Y(100 * floor), y2: Y(100 * floor), "class": "budget",
                                    "data-budget": "accuracy"}));
      root.appendChild(svg("text", {x: W - M.r - 5, y: Y(100 * floor) - 6, "text-anchor": "end", "class": "budget-label"},
                           "accuracy floor " + fmt(100 * floor) + " %"));
    }

    var frontIds = ((tune.pareto || {})[board] || {})[axisName] || [];
    var front = frontIds.map(function (id) { return byId[id]; })
      .filter(function (c) { return c && pts.indexOf(c) >= 0; })
      .sort(function (a, b) { return axis.x(a) - axis.x(b); });
    if (front.length > 1) {
      var d = "M" + X(axis.x(front[0])) + "," + Y(100 * front[0].accuracy);
      for (var i = 1; i < front.length; i++) d += "H" + X(axis.x(front[i])) + "V" + Y(100 * front[i].accuracy);
      root.appendChild(svg("path", {d: d, "class": "front"}));
    }
    var onFront = {};
    front.forEach(function (c) { onFront[c.id] = true; });
    var pick = chosen[board];
    pts.slice().sort(function (a, b) { return (a.id === pick) - (b.id === pick); }).forEach(function (c) {
      var cls = "cell" + (onFront[c.id] ? " on-front" : "") + (c.id === pick ? " chosen" : "");
      var dot = svg("circle", {cx: X(axis.x(c)), cy: Y(100 * c.accuracy), r: 6, fill: color(c), "class": cls,
                               "data-cell": c.id, tabindex: 0});
      dot.appendChild(svg("title", {}, c.id));
      root.appendChild(dot);
      if (c.id === pick) {
        root.appendChild(svg("circle", {cx: X(axis.x(c)), cy: Y(100 * c.accuracy), r: 11, "class": "chosen-ring"}));
        var right = X(axis.x(c)) < W - M.r - 70;
        root.appendChild(svg("text", {x: X(axis.x(c)) + (right ? 15 : -15), y: Y(100 * c.accuracy) - 12,
                                      "text-anchor": right ? "start" : "end", "class": "chosen-label"}, "chosen"));
      }
    });
    caption(fig, pts.length, done.length, log);
  }

  function caption(fig, shown, done, log) {
    var text = shown + " of " + done + " done cell(s) plotted" + (shown < done ? " (the rest lack this figure)" : "");
    fig.appendChild(node("figcaption", "", text + (log ? "; the x axis is logarithmic (the costs span more than 10×)" : "")));
  }

  function drawLegend(div) {
    var board = div.getAttribute("data-board"), modes = {};
    cells.forEach(function (c) { if (c.board === board && c.status === "done" && (c.export || {}).mode) modes[c.export.mode] = true; });
    function item(label, draw) {
      var span = node("span", "item"), icon = svg("svg", {width: 26, height: 14, viewBox: "0 0 26 14", "aria-hidden": "true"});
      draw(icon);
      span.appendChild(icon);
      span.appendChild(document.createTextNode(label));
      div.appendChild(span);
    }
    Object.keys(modes).sort().forEach(function (m) {
      item(m, function (s) { s.appendChild(svg("circle", {cx: 13, cy: 7, r: 5, fill: colors[m] || "#777777", "class": "swatch-dot"})); });
    });
    item("Pareto front", function (s) { s.appendChild(svg("path", {d: "M2,11H13V3H24", "class": "front"})); });
    if (chosen[board]) item("chosen", function (s) { s.appendChild(svg("circle", {cx: 13, cy: 7, r: 5.5, "class": "chosen-ring"})); });
    if (isNum(budgets.latency_ms) || isNum(budgets.flash_kb) || isNum(floor)) {
      item("budget", function (s) { s.appendChild(svg("line", {x1: 2, x2: 24, y1: 7, y2: 7, "class": "budget"})); });
    }
  }

  // --- tooltip and card ---------------------------------------------------------------------------------------------
  var tip = document.getElementById("tooltip"), card = document.getElementById("card");
  function showTip(c, x, y) {
    var lat = c.latency_ms || {}, bench = c.bench || {}, exp = c.export || {};
    var lines = ["accuracy " + (isNum(c.accuracy) ? fmt(100 * c.accuracy) + " %" : "—"),
                 "latency " + stat + " " + fmt(lat[stat]) + " ms" + (isNum(lat.p90) ? " (p90 " + fmt(lat.p90) + ")" : ""),
                 "size " + (isNum(c.size_bytes) ? fmt(c.size_bytes / 1024) + " KB" : "—")
                   + " · peak RSS " + (isNum(c.peak_rss_mb) ? fmt(c.peak_rss_mb) + " MB" : "—"),
                 [exp.mode, exp.placement, bench.threads !== undefined ? bench.threads + " thread(s)" : null,
                  bench.xnnpack === undefined ? null : "XNNPACK " + (bench.xnnpack ? "on" : "off")]
                   .filter(function (p) { return p !== null && p !== undefined; }).join(" · ")];
    tip.textContent = "";
    tip.appendChild(node("div", "tip-id", c.id));
    lines.forEach(function (l) { if (l) tip.appendChild(node("div", "", l)); });
    tip.hidden = false;
    tip.style.left = Math.max(8, Math.min(x + 14, window.innerWidth - tip.offsetWidth - 8)) + "px";
    tip.style.top = Math.max(8, Math.min(y + 14, window.innerHeight - tip.offsetHeight - 8)) + "px";
  }
  function cellOf(target) {
    var t = target && target.closest ? target.closest("circle.cell") : null;
    return t ? byId[t.getAttribute("data-cell")] : null;
  }
  document.addEventListener("mouseover", function (e) { var c = cellOf(e.target); if (c) showTip(c, e.clientX, e.clientY); });
  document.addEventListener("mouseout", function (e) { if (cellOf(e.target)) tip.hidden = true; });
  document.addEventListener("focusin", function (e) {
    var c = cellOf(e.target);
    if (c) { var r = e.target.getBoundingClientRect(); showTip(c, r.right, r.bottom); }
  });
  document.addEventListener("focusout", function (e) { if (cellOf(e.target)) tip.hidden = true; });

  function flatten(obj, prefix, out) {
    Object.keys(obj).forEach(function (k) {
      var v = obj[k], key = prefix ? prefix + "." + k : k;
      if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out);
      else out.push([key, v]);
    });
    return out;
  }
  function relativePath(v) { return typeof v === "string" && v !== "" && !/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(v) && v.charAt(0) !== "/"; }
  function showCard(id) {
    var c = byId[id];
    if (!c) return;
    card.querySelector(".card-id").textContent = id;
    var dl = card.querySelector("dl");
    dl.textContent = "";
    flatten(c, "", []).forEach(function (kv) {
      dl.appendChild(node("dt", "", kv[0]));
      var dd = node("dd", "");
      if (kv[0].indexOf("card.") === 0 && relativePath(kv[1])) {
        var a = node("a", "", kv[1]);
        a.setAttribute("href", kv[1]);
        dd.appendChild(a);
      } else {
        dd.textContent = kv[1] === null ? "—" : Array.isArray(kv[1]) ? JSON.stringify(kv[1]) : String(kv[1]);
      }
      dl.appendChild(dd);
    });
    card.querySelector("pre").textContent = JSON.stringify(c, null, 2);
    card.hidden = false;
    Array.prototype.forEach.call(document.querySelectorAll(".selected"), function (e) { e.classList.remove("selected"); });
    Array.prototype.forEach.call(document.querySelectorAll("[data-cell]"), function (e) {
      if (e.getAttribute("data-cell") === id) e.classList.add("selected");
    });
  }
  document.addEventListener("click", function (e) {
    var t = e.target.closest ? e.target.closest("[data-cell]") : null;
    if (t && !t.closest("#card") && !e.target.closest("a")) showCard(t.getAttribute("data-cell"));
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") card.hidden = true;
    else if (e.key === "Enter" && cellOf(e.target)) showCard(e.target.getAttribute("data-cell"));
  });
  card.querySelector("button.close").addEventListener("click", function () { card.hidden = true; });

  // --- the table: click a header to sort, again for the other way -----------------------------------------------
  var table = document.getElementById("cells");
  var heads = table ? Array.prototype.slice.call(table.tHead.rows[0].cells) : [];
  heads.forEach(function (th, i) {
    var button = node("button", "sort");
    button.type = "button";
    while (th.firstChild) button.appendChild(th.firstChild);
    th.appendChild(button);
    button.addEventListener("click", function () { sortBy(i, th); });
  });
  function sortBy(i, th) {
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
    var numeric = th.getAttribute("data-type") === "num", body = table.tBodies[0];
    var rows = Array.prototype.map.call(body.rows, function (r, k) { return {r: r, k: k, v: r.cells[i].getAttribute("data-v")}; });
    rows.sort(function (a, b) {
      var ae = a.v === null || a.v === "", be = b.v === null || b.v === "";
      if (ae || be) return ae === be ? a.k - b.k : ae ? 1 : -1;     // no value: last, either way
      var d = numeric ? parseFloat(a.v) - parseFloat(b.v) : a.v.localeCompare(b.v, undefined, {numeric: true});
      return d === 0 ? a.k - b.k : dir === "ascending" ? d : -d;
    });
    rows.forEach(function (x) { body.appendChild(x.r); });
  }

  Array.prototype.forEach.call(document.querySelectorAll("figure.plot"), drawPlot);
  Array.prototype.forEach.call(document.querySelectorAll(".legend[data-board]"), drawLegend);
  document.documentElement.classList.add("js");
})();
