// The console's live views: the campaigns list, a campaign's progress and chart, and the
// new-campaign form's template list. Every value is set as text (textContent), never
// as markup, and this file is the only script (the pages' CSP allows no inline one).
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var STATES = ["sent", "failed", "unknown", "skipped", "pending"];

  function make(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function stateClass(state) { return "state state-" + state.replace(/ /g, "-"); }

  function duration(seconds) {
    if (!seconds) return "–";
    if (seconds < 90) return seconds + " s";
    if (seconds < 5400) return Math.round(seconds / 60) + " min";
    return (seconds / 3600).toFixed(1) + " h";
  }

  // Ask `url` every `every` ms (longer while nothing runs), hand the JSON to `show`.
  function poll(url, show) {
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (data) { setTimeout(tick, show(data) ? 1000 : 4000); })
        .catch(function () { setTimeout(tick, 5000); });
    }
    tick();
  }

  // --- the campaigns list ----------------------------------------------------------
  function campaignRow(c) {
    var tr = make("tr");
    tr.dataset.id = c.id;
    var link = make("a", c.name, "name");
    link.href = "/campaigns/" + c.id;
    var first = make("td"); first.appendChild(link); tr.appendChild(first);
    var state = make("td"); state.appendChild(make("span", c.state, stateClass(c.state)));
    if (c.daytime_short) {
      var wait = make("div", c.daytime_short, "muted small");
      wait.title = c.daytime.text;
      state.appendChild(wait);
    }
    tr.appendChild(state);
    var progress = make("td");
    var bar = make("progress"); bar.max = c.total || 1; bar.value = c.done;
    progress.appendChild(bar);
    progress.appendChild(make("span", " " + c.done + " / " + c.total, "muted"));
    tr.appendChild(progress);
    STATES.forEach(function (s) { tr.appendChild(make("td", c.counts[s], "num")); });
    tr.appendChild(make("td", c.delivery_short, "small"));
    tr.appendChild(make("td", c.created_at, "muted nowrap"));
    return tr;
  }

  function initList(table) {
    var shown = "";
    poll(table.dataset.live, function (data) {
      var running = data.campaigns.some(function (c) { return c.state.indexOf("running") === 0; });
      var text = JSON.stringify(data);
      if (text === shown) return running; // redraw only what changed: a selection survives
      shown = text;
      var body = table.tBodies[0];
      body.replaceChildren.apply(body, data.campaigns.map(campaignRow));
      table.hidden = data.campaigns.length === 0;
      table.dataset.drawn = "live"; // drawn from the JSON now, no longer by the server
      return running;
    });
  }

  // --- one campaign ----------------------------------------------------------------
  function setField(root, name, value) {
    root.querySelectorAll('[data-field="' + name + '"]').forEach(function (node) {
      node.textContent = value === null || value === undefined ? "" : String(value);
      if (node.classList.contains("alert")) node.hidden = !value;
    });
  }

  function showCampaign(root, c) {
    setField(root, "state", c.state);
    root.querySelector('[data-field="state"]').className = stateClass(c.state);
    setField(root, "done", c.done);
    setField(root, "total", c.total);
    setField(root, "rate", c.rate);
    setField(root, "eta", duration(c.eta_seconds));
    setField(root, "halt_reason", c.halt_reason);
    setField(root, "error", c.error);
    setField(root, "daytime", c.daytime.text);
    var bar = document.getElementById("progress");
    bar.max = c.total || 1; bar.value = c.done;
    Object.keys(c.counts).forEach(function (s) {
      var cell = root.querySelector('[data-count="' + s + '"]');
      if (cell) cell.textContent = c.counts[s];
    });
    root.querySelectorAll("[data-when]").forEach(function (form) {
      form.hidden = !c[form.dataset.when];
    });
    Object.keys(c.delivery).forEach(function (k) {
      var cell = root.querySelector('[data-delivery="' + k + '"]');
      if (cell) cell.textContent = c.delivery[k];
    });
    root.querySelector('[data-show="resolved"]').hidden = !c.delivery.resolved;
    root.querySelector('[data-show="chart_window"]').hidden = !c.chart_window;
    root.querySelector('[data-show="chart_whole"]').hidden = !!c.chart_window;
    root.querySelector('[data-show="interrupted"]').hidden = c.state !== "interrupted";
    root.querySelector('[data-show="no_codes"]').hidden = c.errors.length > 0;
    document.getElementById("codes").hidden = c.errors.length === 0;
    var codes = document.getElementById("codes").tBodies[0];
    codes.replaceChildren.apply(codes, c.errors.map(function (e) {
      var tr = make("tr");
      tr.appendChild(make("td", e.state));
      var code = make("td"); code.appendChild(make("code", e.error_code)); tr.appendChild(code);
      tr.appendChild(make("td", e.rows, "num"));
      return tr;
    }));
    var notes = document.getElementById("notices");
    notes.replaceChildren.apply(notes, c.notices.map(function (t) { return make("li", t); }));
    notes.parentNode.hidden = c.notices.length === 0;
    drawChart(document.getElementById("chart"), c.chart);
    return c.state.indexOf("running") === 0;
  }

  // Bars of send requests per second, by the time each left (or per few seconds on a
  // long campaign), with the account's limit drawn as a line.
  function drawChart(box, points) {
    var W = 900, H = 220, L = 40, B = 28, T = 10, R = 10;
    var root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", class: "bars" });
    if (!points.length) {
      box.replaceChildren(make("p", "No send request has left yet.", "muted"));
      return;
    }
    var first = points[0][0], last = points[points.length - 1][0];
    var bucket = 1;
    while ((last - first) / bucket > 120) bucket *= 2;
    var n = Math.floor((last - first) / bucket) + 1, counts = new Array(n).fill(0);
    points.forEach(function (p) { counts[Math.floor((p[0] - first) / bucket)] += p[1]; });
    var limit = Number(box.dataset.limit) * bucket;
    var top = Math.max(limit, Math.max.apply(null, counts)) * 1.15;
    var plotW = W - L - R, plotH = H - T - B, w = plotW / Math.max(n, 30);
    function y(v) { return T + plotH - (plotH * v) / top; }
    [0, limit].forEach(function (v) {
      root.appendChild(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: v ? "limit" : "axis" }));
      root.appendChild(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, v));
    });
    root.appendChild(svg("text", { x: W - R, y: y(limit) - 4, "text-anchor": "end", class: "limit-label" },
      "limit " + limit + " per " + (bucket === 1 ? "second" : bucket + " s")));
    counts.forEach(function (v, i) {
      var rect = svg("rect", { x: L + i * w + 1, y: y(v), width: Math.max(w - 2, 1), height: plotH * v / top, class: "bar" });
      rect.appendChild(svg("title", {}, new Date((first + i * bucket) * 1000).toLocaleTimeString() + ": " + v));
      root.appendChild(rect);
    });
    root.appendChild(svg("text", { x: L, y: H - 8 }, new Date(first * 1000).toLocaleTimeString()));
    root.appendChild(svg("text", { x: L + n * w, y: H - 8, "text-anchor": "end" }, new Date(last * 1000).toLocaleTimeString()));
    box.replaceChildren(root);
  }

  function initCampaign(root) {
    poll(root.dataset.live, function (c) { return showCampaign(root, c); });
  }

  // --- the new-campaign form: only the chosen sender's templates ----------------------
  function initNew(form) {
    var sender = form.querySelector("#sender"), template = form.querySelector("#template");
    function filter() {
      Array.prototype.forEach.call(template.options, function (o) {
        if (!o.dataset.sender) return;
        o.hidden = o.dataset.sender !== sender.value;
        if (o.hidden && o.selected) template.value = "";
      });
    }
    sender.addEventListener("change", filter);
    filter();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var list = document.getElementById("campaigns");
    if (list) initList(list);
    var campaign = document.getElementById("campaign");
    if (campaign) initCampaign(campaign);
    var form = document.getElementById("new-campaign");
    if (form) initNew(form);
  });
})();
