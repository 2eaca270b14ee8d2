/*
 * Live Execution Monitor dashboard, the endpoint drill-down: clicking an endpoint row (or Enter
 * on it), or opening the page at #endpoint=GET%20/api/orders/:id, opens one endpoint's view from
 * GET /api/live-execution/endpoints/<key>: both sides' latency distributions on one log axis with
 * p50/p95/p99 marked, the matched requests' gaps, the slowest of them as waterfalls, HTTP statuses
 * per side, the endpoint's differences and its calls per minute.
 *
 * Classic script loaded after dashboard.js: it reads window.LiveDashboard.format and
 * LiveDashboard.api (the page's API call: same base URL, token and errors). Text from the API
 * reaches the page through textContent only. The two sides keep the page's one colour-blind-safe
 * pair (LiveDashboard.charts.COLORS: Okabe-Ito sky blue and orange) in every part of the view.
 */
(() => {
  "use strict";

  const LiveDashboard = window.LiveDashboard || {};
  if (!LiveDashboard.format || !LiveDashboard.api || !LiveDashboard.charts) return; // dashboard.js says what did not load
  const { $, el, row, isNum, one, fmtCount, fmtMs, fmtPct, TYPE_LABELS, pctLabel, evidenceText, DASH } =
    LiveDashboard.format;

  const { COLORS } = LiveDashboard.charts;
  const SIDES = [
    ["backend", "Server"],
    ["frontend", "Browser"],
  ];
  const MARKS = { p50: [], p95: [6, 4], p99: [2, 3] }; // line dash of each percentile's marker
  const REFRESH_MS = 5000;
  const TICK_GAP_PX = 72; // least room between two x labels ("1,259 ms" is about 50 px wide)

  const state = { key: null, seq: 0, timer: null, charts: {}, from: null };

  // --- opening and closing -------------------------------------------------------------------

  /** The endpoint key the address names (#endpoint=…, beside the filter's #release=…), or null. */
  function hashKey() {
    return LiveDashboard.address.get("endpoint"); // dashboard-filter.js reads the hash's parameters
  }

  /** Opens `key`'s view through the address, so Back closes it and the link can be shared. */
  function choose(key) {
    const hash = LiveDashboard.address.hashWith({ endpoint: key });
    if (location.hash === hash) show(key);
    else location.hash = hash;
  }

  function follow() {
    const key = hashKey();
    if (key === null) hide();
    else if (key !== state.key) show(key);
  }

  function show(key) {
    const view = $("endpoint-view");
    state.key = key;
    destroyCharts();
    view.replaceChildren(...skeleton(key));
    view.hidden = false;
    view.dataset.key = key;
    view.dataset.state = "loading";
    $("drill-close").addEventListener("click", close);
    view.scrollIntoView({ block: "start" });
    view.focus({ preventScroll: true });
    load(key);
    clearInterval(state.timer);
    state.timer = setInterval(() => state.key !== null && load(state.key), REFRESH_MS);
  }

  function hide() {
    const view = $("endpoint-view");
    clearInterval(state.timer);
    state.key = null;
    state.seq += 1; // an answer still on its way is dropped
    destroyCharts();
    view.hidden = true;
    view.replaceChildren();
    delete view.dataset.key;
  }

  /** Closes the view, clears the address and gives the focus back to the row it came from. */
  function close() {
    const from = state.from;
    const rest = LiveDashboard.address.hashWith({ endpoint: null }); // the filter stays
    history.replaceState(null, "", location.pathname + location.search + rest);
    hide();
    if (from && from.isConnected) from.focus();
    else {
      const again = [...document.querySelectorAll("#endpoint-table tr[data-key]")].find((r) => r.dataset.key === from?.dataset.key);
      if (again) again.focus();
    }
  }

  // --- loading -------------------------------------------------------------------------------

  async function load(key) {
    const seq = ++state.seq;
    let answer;
    try {
      const filtered = LiveDashboard.filter.suffix(); // ?release=, ?environment= (dashboard-filter.js)
      answer = await LiveDashboard.api(`/endpoints/${encodeURIComponent(key)}${filtered}`);
    } catch (error) {
      if (seq !== state.seq) return;
      const text = error && error.status === 404
        ? `Nothing is known of ${key} yet: no call of it in the window or the newest events.`
        : `The drill-down did not load: ${(error && error.message) || "no answer"}.`;
      $("endpoint-view").dataset.state = "error";
      $("drill-note").textContent = text;
      return;
    }
    if (seq !== state.seq || key !== state.key) return;
    render(answer);
    $("endpoint-view").dataset.state = "ready";
  }

  // --- the view --------------------------------------------------------------------------------

  function panel(id, title, note) {
    const box = el("section", "drill-panel");
    box.id = id;
    const head = el("header", "drill-panel-head");
    head.appendChild(el("h3", "", title));
    if (note) head.appendChild(el("span", "muted", note));
    box.appendChild(head);
    return box;
  }

  function chartBox(id, label) {
    const box = el("div", "chart-box");
    const canvas = el("canvas");
    canvas.id = id;
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", label);
    box.appendChild(canvas);
    return box;
  }

  function legend() {
    const list = el("p", "drill-legend");
    for (const [side, name] of SIDES) {
      const item = el("span", `drill-key drill-${side}`);
      item.appendChild(el("span", "drill-swatch"));
      item.appendChild(document.createTextNode(name));
      list.appendChild(item);
    }
    const marks = el("span", "muted", "lines: p50 solid, p95 dashed, p99 dotted");
    list.appendChild(marks);
    return list;
  }

  /** The view's fixed parts for `key`; render() fills them. */
  function skeleton(key) {
    const head = el("header", "card-head drill-head");
    const title = el("h2", "");
    title.id = "drill-title";
    title.appendChild(document.createTextNode("Endpoint "));
    title.appendChild(el("code", "", key));
    head.appendChild(title);
    const note = el("span", "muted", "Loading…");
    note.id = "drill-note";
    head.appendChild(note);
    const closeBtn = el("button", "btn btn-secondary btn-small", "Close");
    closeBtn.id = "drill-close";
    closeBtn.type = "button";
    head.appendChild(closeBtn);

    const latency = panel("drill-latency-panel", "Latency, both sides", "share of each side's calls, log scale");
    latency.appendChild(legend());
    latency.appendChild(chartBox("drill-latency", "Latency distributions of the server and the browser"));
    const table = el("table", "table drill-percentiles");
    table.id = "drill-percentiles";
    const headRow = row(["Side", "Calls", "p50", "p95", "p99", "Errors"].map((t) => el("th", t === "Side" ? "" : "num", t)));
    headRow.querySelectorAll("th").forEach((th) => (th.scope = "col"));
    const thead = el("thead");
    thead.appendChild(headRow);
    table.append(thead, el("tbody"));
    latency.appendChild(table);

    const gaps = panel("drill-gaps-panel", "Gap of matched requests", "browser minus server, same trace");
    gaps.appendChild(chartBox("drill-gaps", "Distribution of the browser-minus-server gap of matched requests"));
    const gapNote = el("p", "drill-summary");
    gapNote.id = "drill-gap-summary";
    gaps.appendChild(gapNote);

    const falls = panel("drill-waterfalls-panel", "Slowest matched requests", "browser's clock; server placed, estimated");
    const fallKey = el("p", "drill-legend");
    for (const [side, text] of [["frontend", "browser's wait"], ["backend", "server's work (striped: placed by estimate)"]]) {
      const item = el("span", `drill-key drill-${side}`);
      item.appendChild(el("span", `drill-swatch${side === "backend" ? " wf-estimated-swatch" : ""}`));
      item.appendChild(document.createTextNode(text));
      fallKey.appendChild(item);
    }
    falls.appendChild(fallKey);
    const fallList = el("div", "waterfalls");
    fallList.id = "drill-waterfalls";
    falls.appendChild(fallList);

    const calls = panel("drill-calls-panel", "Calls per minute", "newest events scanned");
    calls.appendChild(chartBox("drill-calls", "Calls per minute of the server and the browser"));

    const statuses = panel("drill-statuses-panel", "HTTP statuses", "newest events scanned");
    const statusTable = el("table", "table drill-statuses");
    statusTable.id = "drill-statuses";
    statuses.appendChild(statusTable);

    const diffs = panel("drill-differences-panel", "Differences", "as the live check finds them");
    const diffList = el("div", "drill-differences");
    diffList.id = "drill-differences";
    diffs.appendChild(diffList);

    const grid = el("div", "drill-grid");
    grid.append(latency, gaps, falls, calls, statuses, diffs);
    return [head, grid];
  }

  function render(d) {
    const scanned = d.scanned || {};
    $("drill-note").textContent =
      `window ${one.format((d.window_seconds || 0) / 60)} min · ${fmtCount(scanned.matched)} matched of the newest ` +
      `${fmtCount(scanned.backend)} server and ${fmtCount(scanned.frontend)} browser calls scanned`;
    renderPercentiles(d);
    renderGapSummary(d.gaps);
    renderWaterfalls(d.slowest || []);
    renderStatuses(d);
    renderDifferences(d.differences || []);
    drawCharts(d);
  }

  function renderPercentiles(d) {
    const rows = SIDES.map(([side, name]) => {
      const s = d[side];
      const label = el("th", `drill-side drill-${side}`, name);
      label.scope = "row";
      if (!s) return row([label, el("td", "num muted", "not seen"), DASH, DASH, DASH, DASH]);
      const f = s.figures;
      const tr = row([label, fmtCount(f.count), fmtMs(f.p50_ms), fmtMs(f.p95_ms), fmtMs(f.p99_ms), `${fmtCount(f.error_count)} (${fmtPct(f.error_rate)})`]);
      tr.dataset.side = side;
      return tr;
    });
    $("drill-percentiles").tBodies[0].replaceChildren(...rows);
  }

  function renderGapSummary(gaps) {
    const g = (gaps && gaps.distribution) || { count: 0 };
    const text = g.count
      ? `${fmtCount(g.count)} matched requests: p50 ${fmtMs(g.p50_ms)}, p95 ${fmtMs(g.p95_ms)}, p99 ${fmtMs(g.p99_ms)}` +
        (g.zeros ? `; ${fmtCount(g.zeros)} with no gap (the server's time took all the browser's)` : "")
      : "No matched requests yet: the gap needs browser calls and server requests sharing a trace id.";
    $("drill-gap-summary").textContent = text;
  }

  const at = (w, point) => (w[point] - w.browser_start) * 1000; // ms after the browser's start

  function renderWaterfalls(slowest) {
    const box = $("drill-waterfalls");
    if (!slowest.length) {
      box.replaceChildren(el("p", "empty", "No matched requests among the newest events yet."));
      return;
    }
    const scale = Math.max(...slowest.map((w) => w.browser_ms), 1);
    const pct = (ms) => `${Math.max(0, Math.min(100, (ms / scale) * 100))}%`;
    box.replaceChildren(...slowest.map((w) => {
      const item = el("article", "waterfall");
      item.dataset.trace = w.trace_id;
      item.dataset.browserMs = String(w.browser_ms);
      item.dataset.serverMs = String(w.server_ms);
      item.dataset.estimated = (w.estimated || []).join(" ");
      const head = el("p", "waterfall-head");
      head.appendChild(el("code", "", w.trace_id));
      const from = w.server_ms_from === "server_timing" ? "Server-Timing" : "server event";
      const code = isNum(w.http_status) ? ` · HTTP ${w.http_status}` : "";
      head.appendChild(el("span", w.status === "error" ? "wf-error" : "muted",
        ` browser ${fmtMs(w.browser_ms)} · server ${fmtMs(w.server_ms)} (${from})${code}`));
      const track = el("div", "wf-track");
      const serverStart = at(w, "server_start");
      const serverEnd = at(w, "server_end");
      const estimated = (w.estimated || []).length > 0;
      track.setAttribute("role", "img");
      track.setAttribute("aria-label", `Browser from 0 to ${fmtMs(w.browser_ms)}; server${estimated ? " (estimated)" : ""} ` +
        `from ${fmtMs(serverStart)} to ${fmtMs(serverEnd)}`);
      const browser = el("div", "wf-bar wf-browser");
      browser.style.width = pct(w.browser_ms);
      const server = el("div", `wf-bar wf-server${estimated ? " wf-estimated" : ""}`);
      server.style.left = pct(serverStart);
      server.style.width = pct(serverEnd - serverStart);
      track.append(browser, server);
      const points = el("p", "wf-points muted");
      const mark = (point) => ((w.estimated || []).includes(point) ? "≈" : "");
      points.textContent = `browser start 0 ms · server start ${mark("server_start")}${fmtMs(serverStart)} · ` +
        `server end ${mark("server_end")}${fmtMs(serverEnd)} · browser end ${fmtMs(w.browser_ms)}` +
        (estimated ? " (≈ estimated: the two clocks differ)" : "");
      item.append(head, track, points);
      return item;
    }));
  }

  function renderStatuses(d) {
    const codes = new Set();
    for (const [side] of SIDES) Object.keys((d[side] && d[side].statuses) || {}).forEach((c) => codes.add(c));
    const table = $("drill-statuses");
    const headRow = row([el("th", "", "Status"), ...SIDES.map(([side, name]) => el("th", `num drill-side drill-${side}`, name))]);
    headRow.querySelectorAll("th").forEach((th) => (th.scope = "col"));
    const thead = el("thead");
    thead.appendChild(headRow);
    const body = el("tbody");
    const sorted = [...codes].sort();
    for (const code of sorted) {
      const name = el("th", Number(code) >= 400 ? "wf-error" : "", code === "none" ? "no status" : code);
      name.scope = "row";
      const tr = row([name, ...SIDES.map(([side]) => fmtCount(((d[side] && d[side].statuses) || {})[code] || 0))]);
      tr.dataset.status = code;
      body.appendChild(tr);
    }
    if (!sorted.length) {
      const td = el("td", "empty", "No calls among the newest events.");
      td.colSpan = 3;
      body.appendChild(row([td]));
    }
    table.replaceChildren(thead, body);
  }

  function renderDifferences(differences) {
    const box = $("drill-differences");
    if (!differences.length) {
      box.replaceChildren(el("p", "empty", "No difference detected on this endpoint."));
      return;
    }
    box.replaceChildren(...differences.map((diff) => LiveDashboard.alertCard(diff, false)));
  }

  // --- charts ------------------------------------------------------------------------------

  function destroyCharts() {
    Object.values(state.charts).forEach((chart) => chart.destroy());
    state.charts = {};
  }

  /**
   * A distribution as an outline of flat steps on the log axis, in % of its count: each bin's two
   * corners at its own share, from edges[i] to edges[i + 1] (`from`/`to` on both, for the
   * tooltip), joined by straight lines. Explicit corners, not Chart.js's `stepped`, whose "after"
   * gives each bin the next one's height.
   */
  function steps(edges, dist) {
    if (!dist || !dist.count || !edges.length) return [];
    const first = edges[0];
    const last = edges[edges.length - 1];
    const points = [{ x: first, y: 0 }];
    dist.counts.forEach((n, i) => {
      const bin = { y: (n / dist.count) * 100, from: edges[i], to: edges[i + 1] };
      points.push({ x: bin.from, ...bin }, { x: bin.to, ...bin });
    });
    points.push({ x: last, y: 0 });
    return points;
  }

  /**
   * The x axis's ticks between `min` and `max` on `px` pixels of log scale: round values (1, 2,
   * 5 × 10^k) first, the bin edges too when fewer than three round values fall inside (a narrow
   * range, such as gaps of 760 to 1,260 ms), none closer than TICK_GAP_PX to another, so no two
   * labels overlap. Chart.js's own log ticks always add `min` and `max` beside round ones.
   */
  function logTicks(min, max, px, edges) {
    const span = Math.log(max / min) || 1;
    const at = (v) => (Math.log(v / min) / span) * px;
    const round = [];
    for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e += 1) {
      for (const m of [1, 2, 5]) round.push(m * 10 ** e);
    }
    const inside = (v) => v >= min && v <= max;
    const wanted = round.filter(inside);
    const candidates = wanted.length >= 3 ? wanted : [...wanted, ...edges.filter(inside)];
    const chosen = [];
    for (const v of candidates) {
      if (chosen.every((c) => Math.abs(at(c) - at(v)) >= TICK_GAP_PX && fmtMs(c) !== fmtMs(v))) chosen.push(v);
    }
    return chosen.sort((a, b) => a - b);
  }

  function distributionSet(label, color, points, dist, side) {
    return {
      label, side, counts: dist ? dist.counts : [], data: points, fill: "origin", tension: 0,
      borderColor: color, backgroundColor: `${color}33`, borderWidth: 2, pointRadius: 0,
    };
  }

  function markerSets(label, color, dist, top, side) {
    if (!dist || !dist.count) return [];
    return Object.entries(MARKS).filter(([mark]) => isNum(dist[`${mark}_ms`])).map(([mark, dash]) => ({
      label: `${label} ${mark}`, side, marker: mark, value: dist[`${mark}_ms`],
      data: [{ x: dist[`${mark}_ms`], y: 0 }, { x: dist[`${mark}_ms`], y: top }],
      borderColor: color, borderDash: dash, borderWidth: 1.5, pointRadius: 0, fill: false,
    }));
  }

  function logChart(id, datasets, edges) {
    const Chart = window.Chart;
    const options = {
      animation: false, maintainAspectRatio: false, parsing: false,
      plugins: {
        legend: { display: false },
        tooltip: { filter: (item) => !item.dataset.marker && item.raw.to !== undefined, callbacks: { label: (c) => `${c.dataset.label}: ${one.format(c.parsed.y)}% of calls from ${fmtMs(c.raw.from)} to ${fmtMs(c.raw.to)}` } },
      },
      scales: {
        x: {
          type: "logarithmic", min: edges[0], max: edges[edges.length - 1],
          ticks: { callback: (v) => fmtMs(v), autoSkip: false, maxRotation: 0 },
          afterBuildTicks: (scale) => {
            scale.ticks = logTicks(edges[0], edges[edges.length - 1], scale.width, edges).map((value) => ({ value }));
          },
        },
        y: { beginAtZero: true, ticks: { callback: (v) => `${v}%` } },
      },
    };
    return makeOrUpdate(id, { type: "line", data: { datasets }, options }, Chart);
  }

  function makeOrUpdate(id, config, Chart) {
    const old = state.charts[id];
    if (old) {
      old.data = config.data;
      if (config.options.scales) old.options.scales = config.options.scales;
      old.update("none");
      return old;
    }
    state.charts[id] = new Chart($(id), config);
    return state.charts[id];
  }

  function drawCharts(d) {
    const Chart = window.Chart;
    if (typeof Chart !== "function") {
      document.querySelectorAll("#endpoint-view .chart-box").forEach((box) => {
        box.replaceChildren(el("p", "empty", "Charts unavailable: static/vendor/chart.umd.js is missing (run npm ci && npm run build)."));
      });
      return;
    }
    const edges = d.edges_ms || [];
    const sides = SIDES.map(([side, name]) => [side, name, d[side] && d[side].latency]);
    const shown = sides.map(([side, name, dist]) => [side, name, dist, steps(edges, dist)]);
    const top = Math.max(1, ...shown.flatMap(([, , , points]) => points.map((p) => p.y))) * 1.05;
    const latency = [
      ...shown.filter(([, , , points]) => points.length).map(([side, name, dist, points]) => distributionSet(name, COLORS[side], points, dist, side)),
      ...shown.flatMap(([side, name, dist]) => markerSets(name, COLORS[side], dist, top, side)),
    ];
    if (edges.length) logChart("drill-latency", latency, edges);
    const gapEdges = (d.gaps && d.gaps.edges_ms) || [];
    const gapDist = d.gaps && d.gaps.distribution;
    const gapPoints = steps(gapEdges, gapDist);
    const gapTop = Math.max(1, ...gapPoints.map((p) => p.y)) * 1.05;
    if (gapEdges.length) {
      logChart("drill-gaps", [distributionSet("Gap", COLORS.gap, gapPoints, gapDist, "gap"), ...markerSets("Gap", COLORS.gap, gapDist, gapTop, "gap")], gapEdges);
    }
    const minutes = d.calls_per_minute || [];
    const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hour12: false });
    makeOrUpdate("drill-calls", {
      type: "bar",
      data: {
        labels: minutes.map((m) => clock.format(new Date(m.minute * 1000))),
        datasets: SIDES.map(([side, name]) => ({ label: name, side, data: minutes.map((m) => m[side]), backgroundColor: COLORS[side], borderRadius: 3 })),
      },
      options: {
        animation: false, maintainAspectRatio: false,
        plugins: { legend: { labels: { boxWidth: 12 } } },
        scales: { x: { grid: { display: false } }, y: { beginAtZero: true, ticks: { precision: 0 } } },
      },
    }, Chart);
  }

  // --- wiring ------------------------------------------------------------------------------

  function wire() {
    const body = $("endpoint-table").tBodies[0];
    const pick = (target) => target.closest && target.closest("tr[data-key]");
    body.addEventListener("click", (ev) => {
      const tr = pick(ev.target);
      if (!tr) return;
      state.from = tr;
      choose(tr.dataset.key);
    });
    body.addEventListener("keydown", (ev) => {
      const tr = pick(ev.target);
      if (!tr || (ev.key !== "Enter" && ev.key !== " ")) return;
      ev.preventDefault();
      state.from = tr;
      choose(tr.dataset.key);
    });
    $("endpoint-view").addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") close();
    });
    window.addEventListener("hashchange", follow);
    window.addEventListener("live-dashboard-filter", () => state.key !== null && load(state.key));
    follow();
  }

  wire();
})();
