/*
 * Live Execution Monitor dashboard, part 2 of 3: the Chart.js charts (durations, success
 * rates, activity, system resources, I/O), made once and updated on every poll.
 *
 * Classic script (ES modules do not load from file://): it reads window.LiveDashboard.format
 * (dashboard-format.js, loaded first) and publishes window.LiveDashboard.charts. Chart.js
 * itself (static/vendor/chart.umd.js) is looked up only when the charts are made, so a
 * missing bundle leaves a note in each chart box instead of breaking the page.
 */
(() => {
  "use strict";

  const LiveDashboard = (window.LiveDashboard = window.LiveDashboard || {});
  if (!LiveDashboard.format) return; // dashboard.js says on the page what did not load
  const { $, el, setText, isNum, one, upTo2, timeOf, fmtCount, fmtMs, fmtPct, fmtBytesRate, fmtBytesRateAxis } =
    LiveDashboard.format;

  const MAX_POINTS = 300; // per chart series, so memory stays flat over hours
  // The page's palette in JavaScript, as dashboard.css's :root has it in CSS (a test checks the
  // two and the HTML report's agree). The sides are the Okabe-Ito colour-blind-safe pair, server
  // sky blue and browser orange, the gap between them bluish green; the error red and the other
  // series keep clear of those three, so nothing else on the page looks like a side.
  const COLORS = {
    backend: "#56b4e9",
    frontend: "#e69f00",
    gap: "#009e73",
    error: "#ff5370",
    empty: "rgba(148, 163, 184, 0.18)",
    cpu: "#fde047",
    memory: "#c084fc",
    diskRead: "#a78bfa",
    diskWrite: "#f472b6",
    netSent: "#34d399",
    netRecv: "#fde047",
  };

  // Monotone smoothing: a curve through few samples never swings past them (a plain tension
  // curve through 4, 0, 5 events dipped below the values it joins).
  function lineDataset(label, color, extra = {}) {
    return { label, data: [], borderColor: color, backgroundColor: `${color}22`, borderWidth: 2, pointRadius: 0, cubicInterpolationMode: "monotone", ...extra };
  }

  /** Makes every chart on the page; null (and a note in each chart box) without Chart.js. */
  function makeCharts() {
    let ioTicks = fmtBytesRate; // the I/O axis's labeller: Chart.js labels ticks in order, from 0
    const Chart = window.Chart;
    if (typeof Chart !== "function") {
      document.querySelectorAll(".chart-box").forEach((box) => {
        box.replaceChildren(el("p", "empty", "Charts unavailable: static/vendor/chart.umd.js is missing (run npm ci && npm run build)."));
      });
      return null;
    }
    Chart.defaults.color = "#94a3b8";
    Chart.defaults.borderColor = "rgba(148, 163, 184, 0.12)";
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.animation = false;
    Chart.defaults.maintainAspectRatio = false;
    Chart.defaults.plugins.legend.labels.boxWidth = 12;
    const timeAxis = { ticks: { maxTicksLimit: 6, maxRotation: 0, autoSkip: true }, grid: { display: false } };
    const msTooltip = { callbacks: { label: (c) => `${c.dataset.label}: ${fmtMs(c.parsed.y)}` } };
    const doughnut = (id) => new Chart($(id), {
      type: "doughnut",
      data: { labels: ["Success", "Error"], datasets: [{ data: [0, 0], backgroundColor: [COLORS.backend, COLORS.error], borderWidth: 0 }] },
      options: { cutout: "68%", plugins: { legend: { display: false }, tooltip: { callbacks: { label: (c) => `${c.label}: ${fmtCount(c.parsed)}` } } } },
    });
    const made = {
      performance: new Chart($("chart-performance"), {
        type: "bar",
        data: {
          labels: ["Average", "Median (p50)", "p95"],
          datasets: [
            { label: "Backend", data: [null, null, null], backgroundColor: COLORS.backend, borderRadius: 4 },
            { label: "Frontend", data: [null, null, null], backgroundColor: COLORS.frontend, borderRadius: 4 },
          ],
        },
        options: { plugins: { tooltip: msTooltip }, scales: { y: { beginAtZero: true, ticks: { callback: (v) => fmtMs(v) } }, x: { grid: { display: false } } } },
      }),
      successBackend: doughnut("chart-success-backend"),
      successFrontend: doughnut("chart-success-frontend"),
      activity: new Chart($("chart-activity"), {
        type: "line",
        data: { labels: [], datasets: [lineDataset("Backend", COLORS.backend, { fill: true }), lineDataset("Frontend", COLORS.frontend, { fill: true })] },
        options: { interaction: { mode: "index", intersect: false }, scales: { x: timeAxis, y: { beginAtZero: true, ticks: { precision: 0 } } } },
      }),
      system: new Chart($("chart-system"), {
        type: "line",
        data: { labels: [], datasets: [lineDataset("CPU %", COLORS.cpu), lineDataset("Memory %", COLORS.memory)] },
        options: {
          interaction: { mode: "index", intersect: false },
          plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${one.format(c.parsed.y)}%` } } },
          scales: { x: timeAxis, y: { min: 0, max: 100, ticks: { callback: (v) => `${v}%` } } },
        },
      }),
      io: new Chart($("chart-io"), {
        type: "line",
        data: {
          labels: [],
          datasets: [
            lineDataset("Disk read", COLORS.diskRead), lineDataset("Disk write", COLORS.diskWrite),
            lineDataset("Net sent", COLORS.netSent), lineDataset("Net received", COLORS.netRecv),
          ],
        },
        options: {
          interaction: { mode: "index", intersect: false },
          plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${fmtBytesRate(c.parsed.y)}` } } },
          // Whole bytes per step: an idle machine's 0 to 1 B/s axis reads "0 B/s, 1 B/s" instead of
          // ten ticks 0.1 B/s apart.
          scales: {
            x: timeAxis,
            y: {
              beginAtZero: true,
              ticks: {
                precision: 0,
                callback: (v, i, ticks) => {
                  if (i === 0) ioTicks = fmtBytesRateAxis(ticks.map((t) => t.value)); // once per layout
                  return ioTicks(v);
                },
              },
            },
          },
        },
      }),
    };
    made.successFrontend.data.datasets[0].backgroundColor = [COLORS.frontend, COLORS.error];
    return made;
  }

  const num = (v) => (isNum(v) ? v : null);

  // The signature each chart last drew: a poll that brings nothing new costs no redraw.
  const drawn = new WeakMap();

  /** Fills and redraws `chart` unless it already shows what `signature` stands for. */
  function redraw(chart, signature, fill) {
    if (drawn.get(chart) === signature) return;
    fill();
    chart.update("none");
    drawn.set(chart, signature);
  }

  /** Tells two histories apart cheaply: points are appended and never edited, so the length,
   * both ends' timestamps and the newest point's drawn fields change whenever the points do. */
  function historyKey(points, fields) {
    if (!points.length) return "[]";
    const last = points[points.length - 1];
    return JSON.stringify([points.length, points[0].timestamp, last.timestamp, fields.map((f) => num(last[f]))]);
  }

  function setSuccess(chart, side, id) {
    const total = side.window_events || 0;
    const errors = Math.min(side.error_count || 0, total);
    redraw(chart, `${total}/${errors}`, () => {
      const dataset = chart.data.datasets[0];
      dataset.data = total ? [total - errors, errors] : [1, 0];
      const base = id === "success-backend" ? COLORS.backend : COLORS.frontend;
      dataset.backgroundColor = total ? [base, COLORS.error] : [COLORS.empty, COLORS.empty];
      chart.options.plugins.tooltip.enabled = Boolean(total);
    });
    setText(id, total ? fmtPct(side.success_rate) : "no events");
  }

  const SYSTEM = ["cpu_percent", "memory_percent"];
  const IO = ["disk_read_bytes_per_s", "disk_write_bytes_per_s", "net_sent_bytes_per_s", "net_recv_bytes_per_s"];

  /** Shows one /data answer in the charts made by makeCharts, redrawing only the charts whose
   * figures changed since their last draw; no-op when there are no charts. */
  function updateCharts(charts, data) {
    if (!charts) return;
    const be = data.backend || {};
    const fe = data.frontend || {};
    const durations = (side) => [num(side.avg_duration_ms), num(side.p50_duration_ms), num(side.p95_duration_ms)];
    const perf = [durations(be), durations(fe)];
    redraw(charts.performance, JSON.stringify(perf), () => {
      perf.forEach((values, i) => (charts.performance.data.datasets[i].data = values));
    });
    setSuccess(charts.successBackend, be, "success-backend");
    setSuccess(charts.successFrontend, fe, "success-frontend");

    const activity = (data.activity_history || []).slice(-MAX_POINTS);
    redraw(charts.activity, historyKey(activity, ["backend", "frontend"]), () => {
      charts.activity.data.labels = activity.map((p) => timeOf(p.timestamp));
      charts.activity.data.datasets[0].data = activity.map((p) => num(p.backend) ?? 0);
      charts.activity.data.datasets[1].data = activity.map((p) => num(p.frontend) ?? 0);
    });
    if (activity.length > 1) {
      const step = (activity[activity.length - 1].timestamp - activity[0].timestamp) / (activity.length - 1);
      setText("activity-note", `events per ${upTo2.format(Math.max(step, 0.01))} s sample`);
    }

    const system = (data.system_history || []).slice(-MAX_POINTS);
    let labels = null;
    const timeLabels = () => (labels = labels || system.map((s) => timeOf(s.timestamp)));
    for (const [chart, fields] of [[charts.system, SYSTEM], [charts.io, IO]]) {
      redraw(chart, historyKey(system, fields), () => {
        chart.data.labels = timeLabels();
        fields.forEach((field, i) => (chart.data.datasets[i].data = system.map((s) => num(s[field]))));
      });
    }
    const now = data.system;
    if (now) {
      setText("system-now", `now CPU ${one.format(now.cpu_percent)}% · memory ${one.format(now.memory_percent)}%`);
      setText("io-now", `disk ${fmtBytesRate(now.disk_read_bytes_per_s + now.disk_write_bytes_per_s)} · net ${fmtBytesRate(now.net_sent_bytes_per_s + now.net_recv_bytes_per_s)}`);
    } else {
      setText("system-now", "sampled while monitoring");
      setText("io-now", "sampled while monitoring");
    }
  }

  LiveDashboard.charts = Object.freeze({ MAX_POINTS, COLORS, makeCharts, updateCharts });
})();
