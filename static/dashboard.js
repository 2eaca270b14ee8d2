/*
 * Live Execution Monitor dashboard, part 3 of 3: polls the monitor's REST API and draws what
 * it says (metrics, differences, endpoints, event stream), with the charts drawn by
 * dashboard-charts.js and the text formatted by dashboard-format.js. The monitor's live stream
 * (Server-Sent Events) makes it poll at once when new events arrive.
 *
 * Works served by the monitor at "/" (API on the same origin) and opened from disk
 * (file:///…/live_execution_dashboard.html?api=http://localhost:5001). Query parameters:
 * ?api=URL (monitor base), ?refresh=SECONDS (default 2), ?events=N (stream length, default 50),
 * ?token=TOKEN (for a monitor started with --token; removed from the address bar at once).
 *
 * Classic scripts, because ES modules do not load from file://: the parts share the one
 * window.LiveDashboard object, and the page loads them in order (format, charts, the release
 * filter, this file, the endpoint drill-down).
 *
 * Every value that comes from the API reaches the page through textContent or a chart's
 * data array, never through HTML parsing, so an event named "<img onerror=…>" is just text.
 */
(() => {
  "use strict";

  const LiveDashboard = window.LiveDashboard || {};
  if (!LiveDashboard.format || !LiveDashboard.charts || !LiveDashboard.filter) {
    const banner = document.getElementById("banner-config");
    banner.textContent = "The dashboard is incomplete: static/dashboard-format.js, " +
      "static/dashboard-charts.js and static/dashboard-filter.js must load before static/dashboard.js.";
    banner.hidden = false;
    return;
  }
  const {
    $, el, row, groupRow, setText, markOverflow, isNum, int, one, upTo2, signedOne, clock, DASH,
    fmtCount, fmtMs, fmtMsSigned, fmtPct, fmtPerMin, fmtRatio, fmtElapsed, timeOf,
    TYPE_LABELS, WORK_LABELS, verdict, figuresText, evidenceText, pctLabel, detailsText,
  } = LiveDashboard.format;
  const { MAX_POINTS, makeCharts, updateCharts } = LiveDashboard.charts;
  const filter = LiveDashboard.filter; // dashboard-filter.js: ?release= and ?environment=

  const API_PATH = "/api/live-execution";
  const MAX_ALERTS = 25;
  const MAX_ENDPOINT_ROWS = 40;
  const SEVERITIES = ["low", "medium", "high"];
  // README's value: `null` alone would shut out the loopback origins the apps themselves run on.
  const FILE_CORS_ORIGINS = String.raw`null,^https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$`;
  // The browser logger's captures the dashboard turns off: every CaptureKind of
  // frontend/types.ts but "api" (tests/test_dashboard_connection.py checks the two agree).
  const LOGGER_CAPTURES_OFF = ["clicks", "scrolls", "forms", "pageLoad", "webVitals", "errors"];
  // Reopening a live stream the monitor refused: the wait doubles from the first to the last,
  // and is never shorter than the monitor's Retry-After.
  const STREAM_BACKOFF_MS = [1000, 30000];

  // --- configuration -----------------------------------------------------------------------

  /** Reads ?api=, ?refresh=, ?events= and ?token=; bad values fall back with a warning. */
  function readConfig() {
    const params = new URLSearchParams(location.search);
    const problems = [];
    const overHttp = location.protocol === "http:" || location.protocol === "https:";
    let api = overHttp ? location.origin : "http://localhost:5001";
    const given = params.get("api");
    if (given) {
      try {
        const url = new URL(given);
        if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error("scheme");
        api = url.origin + url.pathname;
      } catch {
        problems.push(`?api=${given} is not an http(s) URL; using ${api}.`);
      }
    }
    api = api.replace(/\/+$/, "");
    let refresh = 2;
    if (params.has("refresh")) {
      const value = Number(params.get("refresh"));
      if (Number.isFinite(value) && value >= 0.5 && value <= 300) refresh = value;
      else problems.push(`?refresh= must be between 0.5 and 300 seconds; using ${refresh}.`);
    }
    let events = 50;
    if (params.has("events")) {
      const value = Number(params.get("events"));
      if (Number.isInteger(value) && value >= 1 && value <= 1000) events = value;
      else problems.push(`?events= must be a whole number from 1 to 1000; using ${events}.`);
    }
    const token = params.get("token") || "";
    if (token) {
      params.delete("token");
      const query = params.toString();
      history.replaceState(null, "", location.pathname + (query ? `?${query}` : "") + location.hash);
    }
    return { api, apiOrigin: new URL(api).origin, refreshMs: refresh * 1000, events, token, problems, overHttp };
  }

  const config = readConfig();
  let charts = null;

  // --- state -------------------------------------------------------------------------------

  const state = {
    reachable: null,
    monitoring: null,
    data: null,
    differences: [],
    minSamples: 10,
    uptime: { seconds: 0, at: 0, running: false },
    paused: false,
    pausedAt: null,
    hideSelf: true,
    eventLimit: config.events,
    components: "",
    timer: null,
    inFlight: false,
    again: false,
    selfMonitor: null,
    errorFrom: null,
  };

  // --- API ---------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  class Unreachable extends Error {}

  async function api(path, options = {}) {
    const controller = new AbortController();
    const timeout = setTimeout(() => controller.abort(), Math.max(5000, config.refreshMs * 2));
    const headers = { Accept: "application/json" };
    if (config.token) headers.Authorization = `Bearer ${config.token}`;
    let response;
    try {
      response = await fetch(config.api + API_PATH + path, {
        ...options,
        headers,
        cache: "no-store",
        credentials: "omit",
        signal: controller.signal,
      });
    } catch (error) {
      throw new Unreachable(error && error.name === "AbortError" ? "the request timed out" : "no answer");
    } finally {
      clearTimeout(timeout);
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok) {
      const message = body && typeof body.error === "string" ? body.error : `HTTP ${response.status}`;
      // A gateway error or a monitor shutting down or overloaded: it will be back, like a refused connection.
      if ([502, 503, 504].includes(response.status)) throw new Unreachable(`${message}, HTTP ${response.status}`);
      throw new ApiError(response.status, message);
    }
    return body;
  }

  function requestPoll() {
    if (state.inFlight) {
      state.again = true;
      return;
    }
    poll();
  }

  async function poll() {
    clearTimeout(state.timer);
    state.inFlight = true;
    try {
      const limit = Math.min(1000, Math.max(state.eventLimit * 4, 200));
      const query = filter.addTo(new URLSearchParams({
        limit: String(limit),
        history: String(MAX_POINTS),
        include_self: String(!state.hideSelf),
      }));
      const asked = filter.snapshot();
      const data = await api(`/data?${query}`);
      showReachable();
      if (!filter.current(asked)) return; // the filter changed on the way: the next poll asks again
      filter.showNote(data.filter || null);
      render(data);
    } catch (error) {
      showFailure(error, "poll");
    } finally {
      state.inFlight = false;
      if (state.again) {
        state.again = false;
        state.timer = setTimeout(poll, 0);
      } else {
        state.timer = setTimeout(poll, config.refreshMs);
      }
    }
  }

  async function control(action) {
    const buttons = [$("start-btn"), $("stop-btn")];
    buttons.forEach((b) => (b.disabled = true));
    try {
      const answer = await api(`/${action}`, { method: "POST" });
      $("banner-error").hidden = true;
      state.errorFrom = null;
      setMonitoring(Boolean(answer && answer.monitoring));
    } catch (error) {
      showFailure(error, "control");
    }
    requestPoll();
  }

  // --- connection state --------------------------------------------------------------------

  function showReachable() {
    state.reachable = true;
    $("banner-unreachable").hidden = true;
    // A refused Start/Stop stays on screen until the next one succeeds; a refused poll
    // is over as soon as a poll succeeds.
    if (state.errorFrom === "poll") {
      $("banner-error").hidden = true;
      state.errorFrom = null;
    }
    $("main").classList.remove("stale");
  }

  function showFailure(error, source) {
    if (error instanceof ApiError) {
      state.reachable = true;
      state.errorFrom = source;
      let text = `${error.message} (HTTP ${error.status}).`;
      if (error.status === 401) text += " Open the dashboard with ?token=… for a monitor started with --token.";
      setText("banner-error-text", text);
      $("banner-error").hidden = false;
      return;
    }
    state.reachable = false;
    state.monitoring = null;
    $("banner-error").hidden = true;
    state.errorFrom = null;
    // From a file the page's origin is null, which the monitor refuses unless told otherwise.
    const command = location.protocol === "file:"
      ? `python run_live_monitor.py --cors-origins '${FILE_CORS_ORIGINS}' (the default loopback origins ` +
        "plus null, the origin of a page opened from a file)"
      : "python run_live_monitor.py";
    const text = `No answer from ${config.api} (${error.message}). Is it running? Start it with ${command}. ` +
      `Retrying every ${one.format(config.refreshMs / 1000)} s…`;
    setText("banner-unreachable-text", text);
    $("banner-unreachable").hidden = false;
    $("banner-stopped").hidden = true;
    $("main").classList.add("stale");
    const pill = $("state-pill");
    pill.className = "pill pill-down";
    setText("state-pill", "Unreachable");
    $("start-btn").disabled = true;
    $("stop-btn").disabled = true;
    state.uptime.running = false;
  }

  function setMonitoring(on) {
    state.monitoring = on;
    $("start-btn").disabled = on;
    $("stop-btn").disabled = !on;
    const pill = $("state-pill");
    pill.className = on ? "pill pill-live" : "pill pill-stopped";
    setText("state-pill", on ? "Monitoring" : "Stopped");
    $("banner-stopped").hidden = on;
  }

  // --- rendering ---------------------------------------------------------------------------

  function render(data) {
    state.data = data;
    state.differences = Array.isArray(data.differences) ? data.differences : [];
    if (data.thresholds && isNum(data.thresholds.min_samples)) state.minSamples = data.thresholds.min_samples;
    setMonitoring(Boolean(data.monitoring));
    state.uptime = { seconds: data.uptime_seconds, at: performance.now(), running: Boolean(data.monitoring) };
    renderMetrics(data, state.differences);
    renderComparison(data);
    renderAlerts(state.differences);
    renderEndpoints(data.endpoints || []);
    updateCharts(charts, data);
    if (!state.paused) renderEvents();
    setText("last-update", clock.format(new Date()));
  }

  function renderMetrics(data, shown) {
    const be = data.backend || {};
    const fe = data.frontend || {};
    setText("metric-backend", fmtCount(be.total_events));
    setText("metric-frontend", fmtCount(fe.total_events));
    setText("metric-backend-sub", be.total_events ? `${fmtPerMin(be.events_per_minute)} · avg ${fmtMs(be.avg_duration_ms)}` : "No backend events yet");
    setText("metric-frontend-sub", fe.total_events ? `${fmtPerMin(fe.events_per_minute)} · avg ${fmtMs(fe.avg_duration_ms)}` : "No frontend events yet");
    setText("metric-differences", fmtCount(shown.length));
    const bySeverity = SEVERITIES.slice().reverse()
      .map((s) => [s, shown.filter((d) => d.severity === s).length])
      .filter(([, n]) => n > 0)
      .map(([s, n]) => `${int.format(n)} ${s}`);
    setText("metric-differences-sub", bySeverity.length ? bySeverity.join(" · ") : "None detected");
    const card = $("metric-differences").closest(".metric");
    card.classList.toggle("has-high", shown.some((d) => d.severity === "high"));
    tickUptime();
    const windowMin = isNum(data.window_seconds) ? data.window_seconds / 60 : null;
    setText("window-note", windowMin ? `last ${upTo2.format(windowMin)} min` : "");
  }

  function tickUptime() {
    const u = state.uptime;
    const seconds = u.running ? u.seconds + (performance.now() - u.at) / 1000 : u.seconds;
    setText("metric-uptime", fmtElapsed(seconds));
    setText("metric-uptime-sub", state.reachable === false ? "Monitor unreachable" : u.running ? "Running" : "Stopped");
  }

  const label = (text) => el("th", "", text);
  /** A row of two durations and their difference, backend minus frontend. */
  const durations = (name, b, f, diff = isNum(b) && isNum(f) ? b - f : null) =>
    row([label(name), fmtMs(b), fmtMs(f), fmtMsSigned(diff)]);

  function renderComparison(data) {
    const be = data.backend || {};
    const fe = data.frontend || {};
    const [beApi, feApi] = [be.api_calls || {}, fe.api_calls || {}];
    const cmp = data.comparison || {};
    const [basisName, basisTitle] = {
      "API calls": ["API calls", "Both sides have API calls: only those are compared (like for like)"],
      operations: ["all events", "Neither side has API calls: every event of each side is compared"],
    }[cmp.basis] || ["nothing", "Only one side has API calls: the other's events are not the same work, " +
      "so no side is judged busier, slower or failing more; the ratios below cover all events"];
    /** A figure of both sides in one cell across the three value columns. */
    const across = (text, title) => {
      const cell = el("td", "num ratio", text);
      cell.colSpan = 3;
      cell.title = title;
      return cell;
    };
    const rate = (x) => (isNum(x) ? `${signedOne.format(x * 100)} pts` : DASH);
    const successGap = isNum(be.success_rate) && isNum(fe.success_rate) ? be.success_rate - fe.success_rate : null;
    const group = (text, title) => groupRow(4, text, title);
    const rows = [
      group("All events of each side", "The backend's requests, queries and logs; the frontend's page loads, " +
        "web vitals, renders and API calls"),
      durations("Average duration", be.avg_duration_ms, fe.avg_duration_ms),
      durations("p95 duration", be.p95_duration_ms, fe.p95_duration_ms),
      row([label("Success rate"), fmtPct(be.success_rate), fmtPct(fe.success_rate), rate(successGap)]),
      row([label("Events per minute"), fmtPerMin(be.events_per_minute), fmtPerMin(fe.events_per_minute), DASH]),
      row([label("Events in window"), fmtCount(be.window_events), fmtCount(fe.window_events), DASH]),
      group("The same API calls, seen from both sides", "The browser's API calls (api) and the server requests " +
        "they make (http, less pages and static files): time on the server vs. the browser's wait"),
      durations("API call average", beApi.avg_duration_ms, feApi.avg_duration_ms),
      durations("API call p95", beApi.p95_duration_ms, feApi.p95_duration_ms),
      row([label("API calls in window"), fmtCount(beApi.count), fmtCount(feApi.count), DASH]),
      group(`What the differences compare: ${basisName}`, basisTitle),
      row([label("Performance ratio"), across(fmtRatio(cmp.performance_ratio), "Backend average ÷ frontend average")]),
      row([label("Activity ratio"), across(isNum(cmp.activity_ratio) ? fmtRatio(cmp.activity_ratio) : DASH,
        "Backend per minute ÷ frontend per minute, sampled events counted as the events they stand for")]),
      row([label("Success difference"), across(rate(cmp.success_rate_diff), "Backend success rate − frontend's")]),
      group("Events by kind of work", "Only API calls are compared when both sides have some; the rest is " +
        "reported, never makes a side busier or slower"),
      ...Object.entries(WORK_LABELS).map(([kind, text]) =>
        row([label(text), fmtCount((be.work || {})[kind]), fmtCount((fe.work || {})[kind]), DASH])),
    ];
    $("comparison-table").tBodies[0].replaceChildren(...rows);
    setText("comparison-summary", verdict(be, fe));
    $("hint-frontend").hidden = Boolean(fe.total_events);
    $("hint-backend").hidden = Boolean(be.total_events) || !fe.total_events;
  }

  // The monitor tags its own traffic where events enter (its API calls, from either side); it
  // is listed, never counted, so no figure, endpoint row or difference holds it.
  function isOwn(event) {
    return Boolean(event.details && event.details.self_monitor === true);
  }

  // #alerts is a live region: redrawing it unchanged on every poll made screen readers
  // announce the same alerts again, so it is redrawn only when what it shows changed.
  let drawnAlerts = "";

  function renderAlerts(shown) {
    const box = $("alerts");
    setText("alerts-count", shown.length ? `${int.format(shown.length)} detected` : "");
    const noEvents = !state.data || (!state.data.backend.total_events && !state.data.frontend.total_events);
    const drawing = JSON.stringify([shown.slice(0, MAX_ALERTS), shown.length, state.monitoring, noEvents, state.minSamples]);
    if (drawing === drawnAlerts) return;
    drawnAlerts = drawing;
    if (!shown.length) {
      const empty = el("div", "empty");
      if (!state.monitoring && noEvents) {
        empty.appendChild(el("strong", "", "Click Start Monitoring"));
        empty.appendChild(el("span", "", " to begin, then send events from your backend and frontend."));
      } else {
        empty.appendChild(el("strong", "ok", "No differences detected."));
        empty.appendChild(el("span", "", ` Nothing is flagged until each side has at least ${int.format(state.minSamples)} events.`));
      }
      box.replaceChildren(empty);
      return;
    }
    const nodes = shown.slice(0, MAX_ALERTS).map((d) => alertCard(d));
    if (shown.length > MAX_ALERTS) nodes.push(el("p", "muted", `and ${int.format(shown.length - MAX_ALERTS)} more (GET /api/live-execution/differences)`));
    box.replaceChildren(...nodes);
  }

  /** A difference as a card; `whole`: with its scope and both sides' figures (the drill-down,
   * one endpoint's view, leaves them out). Used by dashboard-endpoint.js too. */
  function alertCard(d, whole = true) {
      const severity = SEVERITIES.includes(d.severity) ? d.severity : "low";
    const card = el("article", `alert sev-${severity}`);
    card.dataset.severity = severity;
    card.dataset.type = String(d.type);
    const head = el("header", "alert-head");
    head.appendChild(el("span", `badge sev-badge-${severity}`, severity.toUpperCase()));
    head.appendChild(el("strong", "alert-type", TYPE_LABELS[d.type] || String(d.type)));
    if (whole) head.appendChild(d.key === null || d.key === undefined ? el("span", "scope", "whole service") : el("code", "scope", d.key));
    if (isNum(d.difference_pct)) head.appendChild(el("span", "pct", pctLabel(d.type, d.difference_pct)));
    card.appendChild(head);
    card.appendChild(el("p", "alert-message", d.message));
    if (whole) {
    const figures = el("dl", "alert-figures");
    figures.appendChild(el("dt", "side-backend", "Backend"));
    figures.appendChild(el("dd", "", figuresText(d.backend)));
    figures.appendChild(el("dt", "side-frontend", "Frontend"));
    figures.appendChild(el("dd", "", figuresText(d.frontend)));
    card.appendChild(figures);
    }
    card.appendChild(el("p", "alert-evidence", evidenceText(d)));
    return card;
  }

  function pair(a, b, format) {
    return `${format(a)} / ${format(b)}`;
  }

  function renderEndpoints(rows) {
    const body = $("endpoint-table").tBodies[0];
    setText("endpoints-note", rows.length > MAX_ENDPOINT_ROWS ? `busiest ${MAX_ENDPOINT_ROWS} of ${int.format(rows.length)}` : "");
    if (!rows.length) {
      const td = el("td", "empty", "No endpoint events yet: backend http events and frontend api events named “METHOD /route” are compared here.");
      td.colSpan = 9;
      body.replaceChildren(row([td]));
      return;
    }
    // A row keeps the keyboard's focus across polls (dashboard-endpoint.js opens it on Enter).
    const focused = body.contains(document.activeElement) ? document.activeElement.dataset.key : undefined;
    body.replaceChildren(...rows.slice(0, MAX_ENDPOINT_ROWS).map((r) => {
      const be = r.backend || {};
      const fe = r.frontend || {};
      const key = el("td", "key");
      key.appendChild(el("code", "", r.key));
      const seen = el("td");
      seen.appendChild(el("span", `badge seen-${["both", "backend", "frontend"].includes(r.seen_by) ? r.seen_by : "both"}`, r.seen_by));
      if (r.work === "pages_and_assets") seen.appendChild(el("span", "badge work-asset", "page/static"));
      const gapClass = (v) => (isNum(v) && Math.abs(v) >= 100 ? "num gap-warn" : "num");
      const tr = row([
        key, seen,
        pair(be.count, fe.count, fmtCount),
        fmtCount(r.matched_requests),
        pair(be.p50_ms, be.p95_ms, fmtMs),
        pair(fe.p50_ms, fe.p95_ms, fmtMs),
        el("td", gapClass(r.gap_p50_ms), fmtMsSigned(r.matched_gap_p50_ms ?? r.gap_p50_ms)),
        el("td", gapClass(r.gap_p95_ms), fmtMsSigned(r.matched_gap_p95_ms ?? r.gap_p95_ms)),
        pair(be.error_rate, fe.error_rate, fmtPct),
      ]);
      tr.dataset.key = String(r.key);
      tr.tabIndex = 0; // opened by click or Enter (dashboard-endpoint.js)
      markSinceBaseline(tr, r.key);
      return tr;
    }));
    if (focused !== undefined) [...body.rows].find((tr) => tr.dataset.key === focused)?.focus({ preventScroll: true });
  }

  // --- event stream ------------------------------------------------------------------------

  function filteredEvents() {
    const events = (state.data && state.data.recent_events) || [];
    const service = $("filter-service").value;
    const status = $("filter-status").value;
    const component = $("filter-component").value;
    return events.filter((e) =>
      (!service || e.service === service) &&
      (!status || e.status === status) &&
      (!component || e.component === component) &&
      !(state.hideSelf && isOwn(e)));
  }

  function updateComponentOptions() {
    const names = new Set();
    const data = state.data || {};
    for (const side of [data.backend, data.frontend]) {
      if (side && side.components) Object.keys(side.components).forEach((n) => names.add(n));
    }
    for (const e of data.recent_events || []) names.add(e.component);
    const select = $("filter-component");
    if (select.value) names.add(select.value);
    const sorted = [...names].filter((n) => typeof n === "string").sort();
    const signature = sorted.join("\u0000");
    if (signature === state.components) return;
    state.components = signature;
    const current = select.value;
    const options = [el("option", "", "All")];
    options[0].value = "";
    for (const name of sorted) {
      const option = el("option", "", name);
      option.value = name;
      options.push(option);
    }
    select.replaceChildren(...options);
    select.value = current;
  }

  function renderEvents() {
    updateComponentOptions();
    const body = $("event-table").tBodies[0];
    const all = (state.data && state.data.recent_events) || [];
    const events = filteredEvents().slice(0, state.eventLimit);
    const rows = events.map((e) => {
      const service = e.service === "frontend" ? "frontend" : "backend";
      const status = e.status === "error" ? "error" : "success";
      const tr = el("tr", `event event-${status}`);
      tr.dataset.service = service;
      tr.dataset.status = status;
      tr.appendChild(el("td", "time", timeOf(e.timestamp)));
      const svc = el("td");
      svc.appendChild(el("span", `badge seen-${service}`, e.service));
      tr.appendChild(svc);
      tr.appendChild(el("td", "component", e.component));
      const action = el("td", "action", e.action);
      action.title = String(e.action);
      tr.appendChild(action);
      tr.appendChild(el("td", "num", fmtMs(e.duration_ms)));
      const st = el("td");
      st.appendChild(el("span", `badge status-${status}`, e.status));
      tr.appendChild(st);
      const details = el("td", "details", detailsText(e.details));
      if (e.trace_id) details.title = `trace ${e.trace_id}`;
      tr.appendChild(details);
      return tr;
    });
    body.replaceChildren(...rows);
    const empty = $("events-empty");
    if (rows.length) {
      empty.hidden = true;
    } else {
      empty.hidden = false;
      if (all.length) empty.textContent = "No events match the filters.";
      else if (!state.monitoring) empty.textContent = "No events yet. Click Start Monitoring, then send events from your backend (init_app) and frontend (browser logger) — see README.";
      else empty.textContent = "Waiting for events: instrument your backend (init_app) and add the browser logger to your frontend — see README.";
    }
    const note = state.paused ? `Paused at ${state.pausedAt} · ` : "";
    setText("events-note", `${note}showing ${int.format(rows.length)} of the last ${int.format(state.eventLimit)}, newest first`);
  }

  // --- live stream -------------------------------------------------------------------------

  // EventSource reconnects by itself when a stream ends (after the monitor's `retry:` hint, as
  // when the store goes down), but gives up for good on an answer that is not a stream, such
  // as the 503 a monitor gives while its store is down or too many streams are open. Then the
  // page reopens it itself, after a backoff that doubles and honours the monitor's Retry-After.
  const stream = { timer: null, failures: 0 };

  function streamUrl() {
    return `${config.api}${API_PATH}/stream`;
  }

  function openStream() {
    // EventSource cannot send a token: a monitor started with --token is polled alone.
    if (config.token || typeof EventSource !== "function") return;
    const source = new EventSource(streamUrl());
    source.addEventListener("open", () => {
      stream.failures = 0;
      showStream("live");
    });
    source.addEventListener("events", (message) => {
      if (hasAppEvents(message.data)) requestPoll();
    });
    source.addEventListener("error", () => {
      if (source.readyState !== EventSource.CLOSED) {
        showStream("reconnecting"); // the browser reconnects after the monitor's retry hint
        return;
      }
      source.close();
      reopenStreamLater();
    });
  }

  /** Reopens the stream after the backoff, or after the monitor's Retry-After when longer. */
  async function reopenStreamLater() {
    stream.failures += 1;
    const [first, last] = STREAM_BACKOFF_MS;
    const backoff = Math.min(last, first * 2 ** (stream.failures - 1)) * (0.8 + Math.random() * 0.4);
    const delay = Math.max(backoff, await retryAfterMs());
    showStream("reconnecting", delay);
    clearTimeout(stream.timer);
    stream.timer = setTimeout(openStream, delay);
  }

  /** The wait the monitor asks for before the stream is opened again (0 when it names none):
   * a HEAD request to the stream answers what a GET would, without opening one. */
  async function retryAfterMs() {
    const controller = new AbortController();
    const timeout = setTimeout(() => controller.abort(), 5000);
    try {
      const answer = await fetch(streamUrl(), {
        method: "HEAD", cache: "no-store", credentials: "omit", signal: controller.signal,
      });
      const seconds = Number(answer.headers.get("Retry-After"));
      return answer.status === 503 && Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0;
    } catch {
      return 0; // no answer: the backoff alone
    } finally {
      clearTimeout(timeout);
    }
  }

  /** True when a stream message holds an event of the apps, not only the monitor's own. */
  function hasAppEvents(data) {
    try {
      const events = JSON.parse(data);
      return Array.isArray(events) && events.some((e) => e && !isOwn(e));
    } catch {
      return false;
    }
  }

  /** The stream's pill: "live", or "reconnecting" (by the browser, or by the page in ``delayMs``). */
  function showStream(mode, delayMs) {
    const pill = $("stream-pill");
    pill.hidden = false;
    pill.dataset.state = mode;
    pill.className = mode === "live" ? "pill pill-live" : "pill pill-reconnecting";
    setText("stream-pill", mode === "live" ? "Live stream" : "Stream reconnecting…");
    pill.title = mode === "live"
      ? "New events update the page at once"
      : delayMs
        ? `The live stream is down; next attempt in ${int.format(Math.ceil(delayMs / 1000))} s. ` +
          `The page still refreshes every ${upTo2.format(config.refreshMs / 1000)} s.`
        : "The live stream ended; the browser is reconnecting.";
  }

  // --- the browser logger: the dashboard is the monitor's first frontend -------------------

  async function startBrowserLogger() {
    const logger = window.LiveMonitor;
    if (!logger || typeof logger.initLiveMonitor !== "function") return;
    // Only when the monitor records its own side too; otherwise every poll would show up
    // as a frontend call the backend never saw.
    try {
      const answer = await api("/config");
      const setting = (answer.settings || []).find((s) => s.name === "self_monitor");
      state.selfMonitor = Boolean(setting && setting.value);
    } catch {
      return;
    }
    if (!state.selfMonitor) return;
    // API calls only: the monitor tags calls to its own API as its own traffic (listed, never
    // counted or compared); this page's load, web vitals, clicks or errors would arrive untagged
    // and count as the app's frontend.
    const capture = Object.fromEntries(LOGGER_CAPTURES_OFF.map((kind) => [kind, false]));
    try {
      // The monitor's API is this page's own API even on another origin (a dashboard opened
      // from disk): listed as a trace target, its calls stay "api" calls, not dependencies.
      logger.initLiveMonitor({ endpoint: config.api, capture, tracePropagationTargets: [config.api] });
    } catch (error) {
      console.warn("Live Execution Monitor: the browser logger did not start:", error && error.message);
    }
  }

  // --- the difference history: when each difference opened and resolved (a timeline) -------

  const HISTORY_SPAN_S = 3600; // the timeline covers the last hour
  const HISTORY_ROWS = 30;
  let drawnHistory = "";

  /** Reads GET /differences/history (at most every 5 s: episodes change slowly) and draws it. */
  async function pollHistory() {
    try {
      const answer = await api("/differences/history?limit=100");
      renderHistory(Array.isArray(answer && answer.episodes) ? answer.episodes : []);
    } catch {
      // The main poll tells why the monitor cannot be reached; the timeline keeps what it drew.
    }
    setTimeout(pollHistory, Math.max(config.refreshMs, 5000));
  }

  /** One row per episode, newest first: severity, difference, times, and a bar over the last hour. */
  function renderHistory(episodes) {
    const latest = Math.max(0, ...episodes.map((e) => Math.max(e.opened_at || 0, e.resolved_at || 0)));
    const now = Math.max(Date.now() / 1000, latest); // the browser's clock may lag the monitor's
    const start = now - HISTORY_SPAN_S;
    const open = episodes.filter((e) => !isNum(e.resolved_at)).length;
    setText("history-note", episodes.length ? `${int.format(open)} open · ${int.format(episodes.length)} in all` : "");
    const drawing = JSON.stringify([episodes.slice(0, HISTORY_ROWS), Math.floor(now / 10)]);
    if (drawing === drawnHistory) return;
    drawnHistory = drawing;
    const box = $("history-list");
    if (!episodes.length) {
      box.replaceChildren(el("li", "empty", "No difference has opened yet: each one is listed here from when it opens until it resolves."));
      return;
    }
    box.replaceChildren(...episodes.slice(0, HISTORY_ROWS).map((e) => historyRow(e, start, now)));
  }

  function historyRow(episode, start, now) {
    const d = episode.difference || {};
    const severity = SEVERITIES.includes(episode.severity) ? episode.severity : "low";
    const resolved = isNum(episode.resolved_at);
    const item = el("li", `history-item sev-${severity}`);
    item.dataset.id = String(episode.id);
    item.dataset.state = resolved ? "resolved" : "open";
    const head = el("div", "history-head");
    head.appendChild(el("span", `badge sev-badge-${severity}`, severity.toUpperCase()));
    head.appendChild(el("strong", "", TYPE_LABELS[d.type] || String(d.type)));
    head.appendChild(d.key === null || d.key === undefined ? el("span", "scope", "whole service") : el("code", "scope", d.key));
    const end = resolved ? episode.resolved_at : now;
    const lasted = fmtElapsed(end - episode.opened_at);
    head.appendChild(el("span", "muted history-times", resolved
      ? `${timeOf(episode.opened_at)} → ${timeOf(episode.resolved_at)} (${lasted})`
      : `open since ${timeOf(episode.opened_at)} (${lasted})`));
    item.appendChild(head);
    const track = el("div", "history-track");
    const bar = el("div", `history-bar${resolved ? "" : " history-open"}`);
    const right = Math.min(1, Math.max(0, (end - start) / HISTORY_SPAN_S));
    const width = Math.max(0.005, right - Math.max(0, (episode.opened_at - start) / HISTORY_SPAN_S));
    bar.style.left = `${((right - width) * 100).toFixed(2)}%`; // CSSOM, which the page's CSP allows
    bar.style.width = `${(width * 100).toFixed(2)}%`;
    bar.title = d.message || "";
    track.appendChild(bar);
    item.appendChild(track);
    return item;
  }

  // --- the pinned baseline: a button pins the window; its changes sit beside the endpoint figures ---

  // Which changes (side, metric) of GET /baseline go beside which endpoint table column.
  const SINCE_COLUMNS = [
    [2, [["backend", "calls_per_minute"], ["frontend", "calls_per_minute"]]],
    [4, [["backend", "p50_ms"], ["backend", "p95_ms"]]],
    [5, [["frontend", "p50_ms"], ["frontend", "p95_ms"]]],
    [6, [["both", "gap_p50_ms"]]],
    [8, [["backend", "error_rate"], ["frontend", "error_rate"]]],
  ];
  const SINCE_ARROWS = { regression: " ▲", improvement: " ▼" };
  const baseline = { answer: null, changes: new Map(), fresh: new Set(), drawn: "" };

  /** Reads GET /baseline every refresh: another dashboard (or process) may pin or unpin. */
  async function pollBaseline() {
    try {
      showBaseline(await api("/baseline"));
    } catch {
      // The main poll tells why the monitor cannot be reached; the figures keep what they showed.
    }
    setTimeout(pollBaseline, Math.max(config.refreshMs, 2000));
  }

  /** The button pins the window as it is now, or unpins the baseline pinned. */
  async function toggleBaseline() {
    const button = $("baseline-btn");
    button.disabled = true;
    try {
      const pinned = baseline.answer && baseline.answer.pinned;
      showBaseline(await api("/baseline", { method: pinned ? "DELETE" : "POST" }));
      $("banner-error").hidden = true;
    } catch (error) {
      showFailure(error, "baseline");
    } finally {
      button.disabled = false;
    }
  }

  /** Keeps an answer of /baseline: the button, the note, and the endpoint figures when it changed. */
  function showBaseline(answer) {
    const since = answer && answer.pinned ? answer.since_baseline : null;
    baseline.answer = answer;
    baseline.changes = new Map((since ? since.changes : []).map((c) => [`${c.key}\n${c.side}\n${c.metric}`, c]));
    baseline.fresh = new Set((since ? since.new_endpoints : []).map((p) => p.key));
    const button = $("baseline-btn");
    const pinned = Boolean(since);
    button.textContent = pinned ? "Unpin baseline" : "Pin baseline";
    button.setAttribute("aria-pressed", String(pinned));
    button.classList.toggle("btn-active", pinned);
    const counts = since ? since.counts : {};
    setText("baseline-note", pinned && filter.active()
      ? `A baseline is pinned (at ${timeOf(answer.baseline.pinned_at)}): its changes compare every event, not one ` +
        "release or environment, so they are hidden while the filter is on."
      : pinned
      ? `Since the baseline pinned at ${timeOf(answer.baseline.pinned_at)}: ${int.format(counts.regression || 0)} regression(s), ${int.format(counts.improvement || 0)} improvement(s). Hover a ▲ or ▼ for its confidence.`
      : "");
    const drawing = JSON.stringify(answer);
    if (drawing !== baseline.drawn && state.data) renderEndpoints(state.data.endpoints || []);
    baseline.drawn = drawing;
  }

  /** The hook of the endpoint table: the row of `key` gets each of its changes since the baseline
   * beside the figure it is about (e.g. "+42 ms ▲"), its verdict, severity and confidence in its tooltip. */
  function markSinceBaseline(tr, key) {
    // the baseline's changes are of all events: beside one release's figures they would mislead
    if (!baseline.answer || !baseline.answer.pinned || filter.active()) return;
    if (baseline.fresh.has(key)) tr.cells[0].appendChild(el("span", "badge since-new", "new since baseline"));
    for (const [column, figures] of SINCE_COLUMNS) {
      const found = figures.map(([side, metric]) => baseline.changes.get(`${key}\n${side}\n${metric}`));
      if (!found.some(Boolean)) continue;
      const line = el("div", "since");
      found.forEach((change, i) => {
        if (i) line.appendChild(document.createTextNode(" / "));
        line.appendChild(change ? sinceFigure(change) : el("span", "since-fig", DASH));
      });
      tr.cells[column].appendChild(line);
    }
  }

  function sinceFigure(c) {
    const span = el("span", `since-fig since-${c.verdict.replace(/ /g, "-")}${c.severity ? ` sev-${c.severity}` : ""}`);
    span.dataset.side = c.side;
    span.dataset.metric = c.metric;
    span.dataset.verdict = c.verdict;
    const arrow = c.verdict === "changed" ? (c.change > 0 ? " ▲" : " ▼") : SINCE_ARROWS[c.verdict] || "";
    span.textContent = c.verdict === "not enough samples" ? "n/a" : sinceText(c) + arrow;
    // rounded to 3 places, so 1 means above 99.9%: never certain
    const sure = !isNum(c.confidence) ? "confidence: not tested"
      : `confidence ${c.confidence >= 0.999 ? "above 99.9%" : fmtPct(c.confidence)}`;
    const judged = c.severity ? `${c.severity} ${c.verdict}` : c.verdict;
    span.title = `Since baseline: ${c.message}\n${judged}; ${sure} (${c.test})`;
    return span;
  }

  /** A change as its figure reads: ms for latency and gap, points for errors, % for calls per minute. */
  function sinceText(c) {
    if (c.metric === "error_rate") return isNum(c.change) ? `${signedOne.format(c.change)} pts` : DASH;
    if (c.metric === "calls_per_minute") return isNum(c.change_pct) ? `${LiveDashboard.format.signedInt.format(c.change_pct)}%` : DASH;
    return fmtMsSigned(c.change);
  }

  // --- wiring ------------------------------------------------------------------------------

  /** Another release or environment chosen: every filterable view is asked again at once, and
   * the baseline's note says whether its changes are shown. */
  function filterChanged() {
    if (baseline.answer) {
      baseline.drawn = "";
      showBaseline(baseline.answer);
    }
    requestPoll();
  }

  function wire() {
    $("start-btn").addEventListener("click", () => control("start"));
    $("stop-btn").addEventListener("click", () => control("stop"));
    $("baseline-btn").addEventListener("click", toggleBaseline);
    filter.wire({ api, onChange: filterChanged });
    for (const id of ["filter-service", "filter-status", "filter-component"]) {
      $(id).addEventListener("change", () => state.data && renderEvents());
    }
    const limit = $("event-limit");
    limit.value = String(state.eventLimit);
    limit.addEventListener("change", () => {
      const value = Number(limit.value);
      state.eventLimit = Number.isInteger(value) && value >= 1 && value <= 1000 ? value : state.eventLimit;
      limit.value = String(state.eventLimit);
      if (state.data) renderEvents();
      requestPoll();
    });
    $("hide-self").addEventListener("change", (ev) => {
      state.hideSelf = ev.target.checked;
      if (state.data) renderEvents();
      requestPoll();
    });
    const pause = $("pause-btn");
    pause.addEventListener("click", () => {
      state.paused = !state.paused;
      state.pausedAt = state.paused ? clock.format(new Date()) : null;
      pause.textContent = state.paused ? "Resume" : "Pause";
      pause.setAttribute("aria-pressed", String(state.paused));
      pause.classList.toggle("btn-active", state.paused);
      if (state.data) renderEvents();
    });
    setText("api-base", config.api);
    setText("refresh-seconds", upTo2.format(config.refreshMs / 1000));
    if (config.problems.length) {
      setText("banner-config", config.problems.join(" "));
      $("banner-config").hidden = false;
    }
    document.querySelectorAll(".table-scroll").forEach(markOverflow);
    setInterval(tickUptime, 1000);
  }

  LiveDashboard.alertCard = alertCard; // for dashboard-endpoint.js
  LiveDashboard.api = api; // for dashboard-endpoint.js: the same base URL, token and errors
  wire();
  charts = makeCharts();
  poll();
  openStream();
  startBrowserLogger();
  pollHistory();
  pollBaseline();
})();