// hop dashboard: stats from /api/v1/links/{slug}/stats, kept live by the
// server-sent events of /api/v1/links/{slug}/live. Clicks update the counters,
// chart, breakdowns and feed at once; an exact re-read of the stats follows
// shortly after (unique visitors can only be counted by the server).
(function () {
  "use strict";
  var root = document.getElementById("dashboard");
  if (!root) return;
  var slug = root.dataset.slug;
  var api = "/api/v1/links/" + encodeURIComponent(slug);
  var tz = "UTC";
  try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) {}
  var $ = function (id) { return document.getElementById(id); };
  var regionNames = null;
  try { regionNames = new Intl.DisplayNames([navigator.language || "en"], { type: "region" }); } catch (e) {}

  var BREAKDOWNS = ["countries", "cities", "referrers", "browsers", "oses", "devices", "utm_sources", "rules", "variants"];
  var PRESETS = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
  var STEP = { minute: 60e3, hour: 3600e3, day: 86400e3 };

  var view = { range: "24h", interval: "auto", bots: false };
  var current = null;      // last stats answer, updated live
  var xs = [];             // bucket starts, ms
  var chart = null;
  var allTime = { clicks: 0, clicks_with_bots: 0 };
  var refetchTimer = null;
  var fetchSeq = 0;

  function windowOf() {
    var now = Date.now();
    if (view.range === "custom") {
      var f = new Date($("from").value), t = new Date($("to").value);
      if (isNaN(f) || isNaN(t) || f >= t) return null;
      return { from: f.getTime(), to: t.getTime(), moving: false };
    }
    // The window ends a moment ahead so clicks arriving now fall inside it.
    return { from: now - PRESETS[view.range], to: now + 60e3, moving: true };
  }

  function intervalFor(w) {
    if (view.interval !== "auto") return view.interval;
    var span = w.to - w.from;
    if (span <= 3 * 3600e3) return "minute";
    if (span <= 8 * 86400e3) return "hour";
    return "day";
  }

  function query(w) {
    var p = new URLSearchParams({
      from: new Date(w.from).toISOString(), to: new Date(w.to).toISOString(),
      tz: tz, include_bots: view.bots ? "true" : "false"
    });
    return p;
  }

  function showError(msg) {
    var el = $("dash-error");
    el.textContent = msg || "";
    el.hidden = !msg;
  }

  function load() {
    var w = windowOf();
    if (!w) { showError("Choose a start before the end."); return; }
    var p = query(w);
    p.set("interval", intervalFor(w));
    p.set("top", "10");
    $("csv").href = api + "/clicks.csv?" + query(w).toString();
    var seq = ++fetchSeq;
    fetch(api + "/stats?" + p.toString(), { credentials: "same-origin", headers: { accept: "application/json" } })
      .then(function (r) {
        return r.json().then(function (body) { return { ok: r.ok, body: body }; });
      })
      .then(function (res) {
        if (seq !== fetchSeq) return; // a newer request is on its way
        if (!res.ok) { showError(res.body.error ? res.body.error.message : "Could not load the stats."); return; }
        showError("");
        current = res.body;
        current.window = w;
        render();
        loadVariantVisitors(p, seq);
      })
      .catch(function () { if (seq === fetchSeq) showError("Could not reach hop. Retrying…"); });
  }

  // Unique visitors per variant of an A/B split, beside its clicks: one
  // stats answer per variant (variant=…), every number of it that variant's.
  var variantVisitors = {};
  function loadVariantVisitors(p, seq) {
    var variants = (current.top.variants || []).slice(0, 10);
    if (!variants.length) { variantVisitors = {}; return; }
    Promise.all(variants.map(function (e) {
      var q = new URLSearchParams(p);
      q.set("variant", e.value);
      q.set("top", "1");
      return fetch(api + "/stats?" + q.toString(), { credentials: "same-origin", headers: { accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (body) { return [e.value, body ? body.unique_visitors : null]; });
    })).then(function (pairs) {
      if (seq !== fetchSeq) return;
      variantVisitors = {};
      pairs.forEach(function (pv) { if (pv[1] !== null) variantVisitors[pv[0]] = pv[1]; });
      renderTable("variants");
    }).catch(function () {});
  }

  function scheduleRefetch(ms) {
    if (refetchTimer) clearTimeout(refetchTimer);
    refetchTimer = setTimeout(function () { refetchTimer = null; load(); }, ms);
  }

  function setNumber(id, n) {
    var el = $(id);
    var text = Number(n).toLocaleString();
    if (el.textContent !== text) {
      el.textContent = text;
      el.classList.remove("bump"); void el.offsetWidth; el.classList.add("bump");
    }
  }

  function label(key, value) {
    if (key === "countries") {
      if (!/^[A-Z]{2}$/.test(value)) return value;
      var flag = String.fromCodePoint.apply(null, value.split("").map(function (c) { return 0x1f1e6 + c.charCodeAt(0) - 65; }));
      var name = regionNames ? regionNames.of(value) : value;
      return flag + " " + name;
    }
    return value;
  }

  function renderTable(key) {
    var table = $("top-" + key);
    if (!table) return;
    var entries = (current.top[key] || []).slice().sort(function (a, b) { return b.clicks - a.clicks; }).slice(0, 10);
    // Smart links' breakdowns (rules, variants) show once a click has one.
    var section = table.closest("section");
    if (section && section.hasAttribute("data-optional")) section.hidden = !entries.length;
    var body = document.createElement("tbody");
    if (!entries.length) {
      var tr = document.createElement("tr");
      var td = document.createElement("td"); td.className = "muted"; td.textContent = "No clicks in this range";
      tr.appendChild(td); body.appendChild(tr);
    }
    var max = entries.length ? entries[0].clicks : 1;
    entries.forEach(function (e) {
      var tr = document.createElement("tr");
      var name = document.createElement("td");
      var bar = document.createElement("span"); bar.className = "bar"; bar.style.width = (100 * e.clicks / max) + "%";
      var text = document.createElement("span"); text.className = "label"; text.textContent = label(key, e.value);
      name.appendChild(bar); name.appendChild(text);
      var n = document.createElement("td"); n.className = "num"; n.textContent = e.clicks.toLocaleString();
      tr.appendChild(name); tr.appendChild(n);
      if (key === "variants") {
        var v = document.createElement("td"); v.className = "num visitors";
        var known = Object.prototype.hasOwnProperty.call(variantVisitors, e.value);
        v.textContent = known ? variantVisitors[e.value].toLocaleString() + " visitors" : "";
        tr.appendChild(v);
      }
      body.appendChild(tr);
    });
    table.replaceChild(body, table.tBodies[0]);
  }

  function chartSize() {
    var el = $("chart");
    return { width: Math.max(280, el.clientWidth), height: 260 };
  }

  // The end of the last bucket (ms): the next bucket's start, as far as the
  // series tells (a day may be 23 or 25 hours; that is close enough here).
  function lastEnd() {
    var n = xs.length;
    if (!n) return 0;
    var step = n > 1 ? xs[n - 1] - xs[n - 2] : (STEP[current.interval] || 3600e3);
    return xs[n - 1] + Math.max(step, STEP[current.interval] || 0);
  }

  // The bucket still counting (it holds now), if the range reaches now.
  function partialBucket() {
    var now = Date.now(), n = xs.length;
    if (!n || !current.window.moving) return null;
    if (now < xs[n - 1] || now >= lastEnd()) return null;
    return { from: xs[n - 1], to: lastEnd() };
  }

  function renderPartialNote() {
    var p = partialBucket();
    var note = $("chart-note");
    if (!p) { note.hidden = true; return; }
    var fmt = current.interval === "day"
      ? new Date(p.from).toLocaleDateString()
      : new Date(p.from).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    note.textContent = "The last bar (" + fmt + " to now) is partial: it is still counting.";
    note.hidden = false;
  }

  function renderChart() {
    xs = current.series.map(function (b) { return Date.parse(b.start); });
    var data = [xs.map(function (x) { return x / 1000; }), current.series.map(function (b) { return b.clicks; })];
    renderPartialNote();
    if (chart && chart.interval === current.interval) { chart.setData(data); return; }
    if (chart) chart.destroy();
    var style = getComputedStyle(document.documentElement);
    var accent = style.getPropertyValue("--accent").trim() || "#4338ca";
    var fg = style.getPropertyValue("--muted").trim() || "#666";
    var size = chartSize();
    chart = new uPlot({
      width: size.width, height: size.height,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), tz); },
      // Bars start at their bucket and span it: the x scale runs to the end
      // of the last bucket, so the current one is drawn in full.
      scales: {
        x: { time: true, range: function (u, min, max) { return xs.length ? [xs[0] / 1000, lastEnd() / 1000] : [min, max]; } },
        y: { range: function (u, min, max) { return [0, Math.max(1, max * 1.1)]; } }
      },
      hooks: { draw: [function (u) {
        // Shade the bucket still counting.
        var p = partialBucket();
        if (!p) return;
        var x0 = u.valToPos(p.from / 1000, "x", true), x1 = u.valToPos(p.to / 1000, "x", true);
        var ctx = u.ctx;
        ctx.save();
        ctx.fillStyle = "rgba(128,128,128,.12)";
        ctx.fillRect(x0, u.bbox.top, x1 - x0, u.bbox.height);
        ctx.restore();
      }] },
      axes: [{ stroke: fg, grid: { stroke: "rgba(128,128,128,.15)" } }, { stroke: fg, grid: { stroke: "rgba(128,128,128,.15)" } }],
      series: [{}, { label: "Clicks", stroke: accent, fill: accent + "99", width: 1, points: { show: false }, paths: uPlot.paths.bars({ size: [0.8, 48], align: 1 }) }]
    }, data, $("chart"));
    chart.interval = current.interval;
    root.chart = chart; // for the browser tests
  }

  function render() {
    setNumber("total", current.total_clicks);
    setNumber("visitors", current.unique_visitors);
    $("tz-label").textContent = "(" + current.interval + "s, " + tz + ")";
    if (window.uPlot) renderChart();
    BREAKDOWNS.forEach(renderTable);
  }

  function bump(entries, value) {
    for (var i = 0; i < entries.length; i++) {
      if (entries[i].value === value) { entries[i].clicks += 1; return; }
    }
    entries.push({ value: value, clicks: 1 });
  }

  var feedIds = {};

  // `old`: a stored click shown on load, appended below the newer ones.
  function addFeed(c, old) {
    var feed = $("feed");
    if (c.event_id) {
      if (feedIds[c.event_id]) return;
      feedIds[c.event_id] = true;
    }
    var empty = $("feed-empty");
    if (empty) empty.remove();
    var li = document.createElement("li");
    if (!old) li.className = "new";
    var t = document.createElement("time"); t.dateTime = c.at; t.textContent = new Date(c.at).toLocaleTimeString();
    var where = [c.city, c.country].filter(Boolean).join(", ") || "unknown place";
    var what = c.browser + " on " + c.os + " (" + c.device + ")";
    var from = c.referrer ? " from " + c.referrer : "";
    var route = c.rule ? " · rule " + c.rule + (c.variant ? ", variant " + c.variant : "") : "";
    li.appendChild(t);
    li.appendChild(document.createTextNode((c.country && /^[A-Z]{2}$/.test(c.country) ? label("countries", c.country).split(" ")[0] + " " : "") + where + " · " + what + from + route + (c.bot ? " · bot" : "")));
    if (old) feed.appendChild(li); else feed.insertBefore(li, feed.firstChild);
    while (feed.children.length > 50) feed.removeChild(feed.lastChild);
  }

  // The latest stored clicks, so the feed is not empty on open; then live.
  function loadRecent(then) {
    fetch(api + "/clicks/recent?limit=20&include_bots=true", { credentials: "same-origin", headers: { accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : { clicks: [] }; })
      .then(function (body) {
        body.clicks.forEach(function (c) { addFeed(c, true); });
        var empty = $("feed-empty");
        if (empty) empty.textContent = "No clicks yet. Waiting for the first…";
      })
      .catch(function () {})
      .then(then);
  }

  function onClick(c) {
    addFeed(c);
    if (!current || (c.bot && !view.bots)) return;
    var at = Date.parse(c.at);
    var w = current.window;
    if (at < w.from || at >= w.to) return;
    current.total_clicks += 1;
    var i = xs.length - 1;
    while (i >= 0 && xs[i] > at) i--;
    var step = STEP[current.interval] || 3600e3;
    if (i < 0 || at >= xs[xs.length - 1] + step) { scheduleRefetch(200); return; }
    current.series[i].clicks += 1;
    Object.keys(c.breakdown || {}).forEach(function (key) {
      if (!current.top[key]) current.top[key] = [];
      bump(current.top[key], c.breakdown[key]);
    });
    render();
    scheduleRefetch(1500);
  }

  function connect() {
    if (!window.EventSource) { $("live-state").textContent = "live updates unavailable"; return; }
    var state = $("live-state");
    var es = new EventSource(api + "/live");
    var dropped = false;
    es.addEventListener("open", function () {
      state.textContent = "live"; state.classList.add("on");
      if (dropped) { dropped = false; load(); }
    });
    es.addEventListener("error", function () {
      dropped = true;
      state.textContent = "reconnecting…"; state.classList.remove("on");
    });
    es.addEventListener("totals", function (e) {
      allTime = JSON.parse(e.data);
      setNumber("alltime", view.bots ? allTime.clicks_with_bots : allTime.clicks);
    });
    es.addEventListener("resync", function () { load(); });
    es.addEventListener("click", function (e) { onClick(JSON.parse(e.data)); });
  }

  function toLocalInput(ms) {
    var d = new Date(ms);
    var pad = function (n) { return String(n).padStart(2, "0"); };
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }

  $("range").addEventListener("change", function (e) {
    view.range = e.target.value;
    var custom = view.range === "custom";
    $("custom-range").hidden = !custom;
    if (custom && !$("from").value) {
      $("from").value = toLocalInput(Date.now() - 7 * 86400e3);
      $("to").value = toLocalInput(Date.now() + 60e3);
    }
    load();
  });
  $("from").addEventListener("change", load);
  $("to").addEventListener("change", load);
  $("interval").addEventListener("change", function (e) { view.interval = e.target.value; load(); });
  $("bots").addEventListener("change", function (e) {
    view.bots = e.target.checked;
    setNumber("alltime", view.bots ? allTime.clicks_with_bots : allTime.clicks);
    load();
  });
  $("controls").addEventListener("submit", function (e) { e.preventDefault(); });
  window.addEventListener("resize", function () { if (chart) chart.setSize(chartSize()); });
  // A moving window moves: re-read it every minute.
  setInterval(function () { if (current && current.window.moving) load(); }, 60e3);

  load();
  loadRecent(connect);
})();
