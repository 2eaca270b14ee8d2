/*
 * Live Execution Monitor dashboard, part 1 of 3: number, time and text formatting, the DOM
 * helpers every other part writes text and table rows through, and markOverflow, which watches
 * a scroll box (scroll, resize and content observers) to fade its edge while rows are hidden below.
 *
 * Classic script (ES modules do not load from file://): it publishes its helpers as
 * window.LiveDashboard.format and nothing else. Load order in the page:
 * dashboard-format.js, dashboard-charts.js, dashboard.js.
 *
 * Text reaches the page through textContent only (el, setText), never through HTML parsing,
 * so an event named "<img onerror=…>" is just text.
 */
(() => {
  "use strict";

  const LiveDashboard = (window.LiveDashboard = window.LiveDashboard || {});

  const nf = (min, max, extra = {}) =>
    new Intl.NumberFormat(undefined, { minimumFractionDigits: min, maximumFractionDigits: max, ...extra });
  const int = nf(0, 0);
  const one = nf(1, 1);
  const two = nf(2, 2);
  const upTo1 = nf(0, 1);
  const upTo2 = nf(0, 2);
  const signedInt = nf(0, 0, { signDisplay: "exceptZero" });
  const signedOne = nf(1, 1, { signDisplay: "exceptZero" });
  const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  const DASH = "–";

  const isNum = (v) => typeof v === "number" && Number.isFinite(v);
  const fmtCount = (v) => (isNum(v) ? int.format(v) : DASH);
  const msFormat = (v) => (Math.abs(v) >= 100 ? int : Math.abs(v) >= 10 ? one : upTo2);
  const fmtMs = (v) => (isNum(v) ? `${msFormat(v).format(v)} ms` : DASH);
  const fmtMsSigned = (v) => (isNum(v) ? `${(Math.abs(v) >= 100 ? signedInt : signedOne).format(v)} ms` : DASH);
  const fmtPct = (rate) => (isNum(rate) ? `${one.format(rate * 100)}%` : DASH);
  const fmtPerMin = (v) => (isNum(v) ? `${one.format(v)}/min` : DASH);
  const fmtRatio = (v) => (isNum(v) ? `${two.format(v)}×` : DASH);

  const RATE_UNITS = ["B/s", "kB/s", "MB/s", "GB/s"];
  const fixed = [int, one, two, nf(3, 3)]; // by decimals

  /** Bytes per second in SI units (kB = 1000 B), so chart ticks land on round numbers; a
   * decimal under 10 B/s, where whole bytes would round a trickle to "0 B/s". */
  function fmtBytesRate(v) {
    if (!isNum(v)) return DASH;
    let value = v;
    let unit = 0;
    while (Math.abs(value) >= 1000 && unit < RATE_UNITS.length - 1) {
      value /= 1000;
      unit += 1;
    }
    const whole = Math.abs(value) >= (unit === 0 ? 10 : 100);
    return `${(whole ? int : upTo1).format(value)} ${RATE_UNITS[unit]}`;
  }

  /** The tick labeller of a byte-rate axis whose tick values are `ticks`, worked out once per
   * axis: the whole axis in the unit of its largest tick, with just enough decimals that
   * neighbouring ticks never read the same (1 B/s steps give "0 B/s, 1 B/s", 0.2 MB/s steps
   * "0.0 MB/s, 0.2 MB/s"). */
  function fmtBytesRateAxis(ticks) {
    const values = ticks.filter(isNum);
    const top = Math.max(0, ...values.map(Math.abs));
    let unit = 0;
    while (top >= 1000 ** (unit + 1) && unit < RATE_UNITS.length - 1) unit += 1;
    const scale = 1000 ** unit;
    let step = Infinity;
    for (let i = 1; i < values.length; i += 1) {
      const gap = Math.abs(values[i] - values[i - 1]);
      if (gap > 0) step = Math.min(step, gap);
    }
    // The 1e-6 keeps float noise (a 0.1 step stored as 0.09999999) from asking for a digit more.
    const digits = Number.isFinite(step) ? Math.ceil(-Math.log10(step / scale) - 1e-6) : 0;
    const format = fixed[Math.min(Math.max(digits, 0), fixed.length - 1)];
    return (v) => (isNum(v) ? `${format.format(v / scale)} ${RATE_UNITS[unit]}` : DASH);
  }

  /** Seconds as m:ss, or h:mm:ss from an hour on. */
  function fmtElapsed(seconds) {
    if (!isNum(seconds) || seconds < 0) return DASH;
    const total = Math.floor(seconds);
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = String(total % 60).padStart(2, "0");
    return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  /** Wall-clock time of an epoch-seconds number or an ISO string; the raw value if unparsable. */
  function timeOf(value) {
    const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    return Number.isNaN(date.getTime()) ? String(value) : clock.format(date);
  }

  // --- difference and event text -----------------------------------------------------------

  const TYPE_LABELS = {
    activity: "Activity level difference",
    performance: "Performance difference",
    error_rate: "Error rate difference",
    pattern: "Execution pattern difference",
  };

  const times = (x) => (x >= 10 ? int : two).format(x);

  /** One sentence on the service-wide picture, like the README's "Performance Ratio" line: the
   * same API calls seen from both sides when both have timed ones (what the "Execution
   * differences" card compares too), else every timed event of each side. */
  function verdict(be, fe) {
    const b = be.api_calls && be.api_calls.avg_duration_ms;
    const f = fe.api_calls && fe.api_calls.avg_duration_ms;
    if (isNum(b) && isNum(f) && b > 0 && f > 0) {
      if (Math.abs(f / b - 1) < 0.05) {
        return "The browser waits about as long as the server works on the same API calls, on average.";
      }
      return f > b
        ? `The browser waits ${times(f / b)}× as long as the server works on the same API calls, on average.`
        : `The server works ${times(b / f)}× as long as the browser waits on the same API calls, on average.`;
    }
    return operationsVerdict(be.avg_duration_ms, fe.avg_duration_ms);
  }

  /** The sentence over every timed event of each side, when API calls cannot be compared. */
  function operationsVerdict(b, f) {
    if (!isNum(b) || !isNum(f) || b <= 0 || f <= 0) {
      return "Timed events from both sides are needed to compare execution times.";
    }
    if (Math.abs(b / f - 1) < 0.05) return "Backend and frontend operations take about as long on average.";
    return b > f
      ? `Backend operations take ${times(b / f)}× as long as frontend ones on average.`
      : `Frontend operations take ${times(f / b)}× as long as backend ones on average.`;
  }

  const FIGURES = {
    avg_ms: ["avg", fmtMs],
    p50_ms: ["p50", fmtMs],
    p95_ms: ["p95", fmtMs],
    gap_p50_ms: ["gap p50", fmtMsSigned],
    gap_p95_ms: ["gap p95", fmtMsSigned],
    slow_calls: ["slow calls", fmtCount],
    sampled_events: ["sampled", fmtCount],
    network_gap_ms: ["usual network gap", fmtMs],
    events: ["events", fmtCount],
    count: ["events", fmtCount],
    events_per_minute: ["", fmtPerMin],
    error_rate: ["errors", fmtPct],
    success_rate: ["success", fmtPct],
    endpoints: ["endpoints", fmtCount],
    calls: ["API calls", fmtCount],
    unmatched_calls: ["unmatched calls", fmtCount],
    unmatched_endpoints: ["never seen by the backend:", (v) => (Array.isArray(v) ? v.join(", ") : String(v))],
  };

  /** A difference's per-side figures as one line, known keys with their units. */
  function figuresText(figures) {
    if (!figures || typeof figures !== "object") return DASH;
    const parts = [];
    for (const [key, value] of Object.entries(figures)) {
      if (value === null || value === undefined || key === "basis") continue;
      const known = FIGURES[key];
      if (known) parts.push(known[0] ? `${known[0]} ${known[1](value)}` : known[1](value));
      else parts.push(`${key} ${typeof value === "object" ? JSON.stringify(value) : String(value)}`);
    }
    return parts.length ? parts.join(" · ") : DASH;
  }

  /** What a difference rests on and how sure it is, worded as the report's "Samples:" line
   * (live_monitor/tools/render.py ``evidence``): a test runs both on the same difference. */
  function evidenceText(d) {
    const samples = (d && d.samples) || {};
    const counts = ["backend", "frontend"].map((s) => `${isNum(samples[s]) ? int.format(samples[s]) : "n/a"} ${s}`);
    const sure = d && isNum(d.confidence) ? `${Math.floor(d.confidence * 1000) / 10}% sure it is not chance` : "not tested";
    return `Samples: ${counts.join(", ")}; ${sure}`;
  }

  // The kinds of work each side's events are counted by (results.Work): API calls are compared,
  // the rest only reported. A test checks these keys against the Python list.
  const WORK_LABELS = {
    api_calls: "API calls (compared)",
    pages_and_assets: "Pages and static files",
    dependencies: "Outgoing calls (dependencies)",
    other: "Clicks, vitals, page loads, other",
  };

  /** difference_pct means points for error rates and a share of calls for patterns. */
  function pctLabel(type, value) {
    if (type === "error_rate") return `${one.format(value)} pts apart`;
    if (type === "pattern") return `${one.format(value)}% of calls`;
    return `${one.format(value)}% apart`;
  }

  /** An event's details as key=value pairs, cut to fit one table cell. */
  function detailsText(details) {
    if (!details || typeof details !== "object") return "";
    const parts = [];
    for (const [key, value] of Object.entries(details)) {
      if (value === null || value === undefined || key === "sampled") continue;
      parts.push(`${key}=${typeof value === "object" ? JSON.stringify(value) : String(value)}`);
    }
    const text = parts.join(" ");
    return text.length > 140 ? `${text.slice(0, 139)}…` : text;
  }

  // --- DOM output --------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /** A table row: nodes as they are, any other value as a right-aligned number cell. */
  function row(cells, className) {
    const tr = el("tr", className);
    for (const cell of cells) {
      const td = typeof cell === "object" && cell !== null ? cell : el("td", "num", cell);
      tr.appendChild(td);
    }
    return tr;
  }

  /** A muted header row across `columns` over the rows that follow, saying what they cover. */
  function groupRow(columns, text, title) {
    const th = el("th");
    Object.assign(th, { colSpan: columns, scope: "rowgroup", title });
    th.appendChild(el("span", "muted", text));
    return row([th]);
  }

  function setText(id, text) {
    const node = $(id);
    if (node.textContent !== text) node.textContent = text;
  }

  /** Keeps class "more-below" on the parent of scroll box `box` while rows are hidden below its
   * bottom edge (the CSS fades that edge), as it scrolls, resizes or its rows change: headless
   * and overlay scrollbars are invisible, and a half-cut row alone does not say "scroll". */
  function markOverflow(box) {
    const frame = box.parentElement;
    const update = () =>
      frame.classList.toggle("more-below", box.scrollTop + box.clientHeight < box.scrollHeight - 2);
    const resized = () => {
      // The box has no border: what offset* adds to client* is its scrollbars (0 when they overlay).
      frame.style.setProperty("--scrollbar-right", `${box.offsetWidth - box.clientWidth}px`);
      frame.style.setProperty("--scrollbar-bottom", `${box.offsetHeight - box.clientHeight}px`);
      update();
    };
    box.addEventListener("scroll", update, { passive: true });
    // A scrollbar that appears or goes shrinks or grows the content box: the ResizeObserver sees
    // it, so new rows (every poll) need only the cheaper update.
    new ResizeObserver(resized).observe(box);
    new MutationObserver(update).observe(box, { childList: true, subtree: true });
    resized();
  }

  LiveDashboard.format = Object.freeze({
    int, one, two, upTo1, upTo2, signedInt, signedOne, clock, DASH,
    isNum, fmtCount, fmtMs, fmtMsSigned, fmtPct, fmtPerMin, fmtRatio, fmtBytesRate, fmtBytesRateAxis, fmtElapsed,
    timeOf,
    TYPE_LABELS, WORK_LABELS, verdict, figuresText, evidenceText, pctLabel, detailsText,
    $, el, row, groupRow, setText, markOverflow,
  });
})();
