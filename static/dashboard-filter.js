/*
 * Live Execution Monitor dashboard, the release and environment filter: two selects in the top
 * bar list the releases and environments the stored events carry (GET /labels), and the choice
 * is kept in the address (#release=web%401.4.2&environment=production, beside #endpoint=…; a
 * hand-typed #release=web@1.4.2 reads the same), so a filtered view can be shared and survives
 * a reload.
 *
 * The views the monitor can filter (/data: figures, endpoints, differences, recent events; the
 * endpoint drill-down) are asked with ?release= and ?environment=; a note under the top bar says
 * what the answer was computed from (its `filter`). The views the monitor cannot filter (system
 * samples, the activity chart, the difference history, the pinned baseline's changes) carry an
 * "all releases" tag while a filter is on, so filtered and unfiltered figures are never mixed
 * without a word.
 *
 * Classic script loaded after dashboard-format.js and before dashboard.js, which reads the
 * filter before its first poll. It also holds the address's hash parameters for
 * dashboard-endpoint.js (LiveDashboard.address). Text from the API reaches the page through
 * textContent only.
 */
(() => {
  "use strict";

  const LiveDashboard = (window.LiveDashboard = window.LiveDashboard || {});
  if (!LiveDashboard.format) return; // dashboard.js says what did not load
  const { $, el, int } = LiveDashboard.format;

  const NAMES = ["release", "environment"];
  const ORDER = ["release", "environment", "endpoint"]; // the hash's parameters, in this order
  const TITLES = { release: "All releases", environment: "All environments" };
  const LABELS_EVERY_MS = 15000; // new releases appear slowly; the list costs a pass over the store

  // --- the address: #name=value&name=value ---------------------------------------------------

  /** The hash's parameters. Values are percent-decoded as the old #endpoint= was ("+" stays a
   * plus: a release may be "1.0.0+build5"); a value that does not decode is left out. */
  function hashParams() {
    const params = new Map();
    for (const part of location.hash.replace(/^#/, "").split("&")) {
      const at = part.indexOf("=");
      if (at <= 0) continue;
      try {
        params.set(decodeURIComponent(part.slice(0, at)), decodeURIComponent(part.slice(at + 1)));
      } catch {
        // a broken escape: that parameter is ignored, the others stand
      }
    }
    return params;
  }


  /** The hash with `changes` made (a null or empty value removes its parameter): "" for none. */
  function hashWith(changes) {
    const params = hashParams();
    for (const [name, value] of Object.entries(changes)) {
      if (value === null || value === undefined || value === "") params.delete(name);
      else params.set(name, String(value));
    }
    const rank = (name) => (ORDER.includes(name) ? ORDER.indexOf(name) : ORDER.length);
    const names = [...params.keys()].sort((a, b) => rank(a) - rank(b));
    const text = names.map((name) => `${encodeURIComponent(name)}=${encodeURIComponent(params.get(name))}`).join("&");
    return text ? `#${text}` : "";
  }

  LiveDashboard.address = Object.freeze({
    get: (name) => hashParams().get(name) ?? null,
    hashWith,
  });

  // --- the filter ------------------------------------------------------------------------------

  const state = { chosen: read(), labels: { releases: [], environments: [] }, drawn: "", api: null, onChange: null };

  /** The filter the address names: {release, environment}, each a value or null. */
  function read() {
    const params = hashParams();
    return Object.fromEntries(NAMES.map((name) => [name, params.get(name) || null]));
  }

  const active = () => NAMES.some((name) => state.chosen[name] !== null);
  const same = (a, b) => NAMES.every((name) => (a[name] ?? null) === (b[name] ?? null));

  /** Adds ?release= and ?environment= to `query` (URLSearchParams) for the filter chosen. */
  function addTo(query) {
    for (const name of NAMES) if (state.chosen[name] !== null) query.set(name, state.chosen[name]);
    return query;
  }

  /** "?release=…&environment=…" for a path without a query, "" when unfiltered. */
  function suffix() {
    const query = addTo(new URLSearchParams()).toString();
    return query ? `?${query}` : "";
  }

  /** A copy of the filter now chosen, to check an answer against when it arrives. */
  const snapshot = () => ({ ...state.chosen });

  /** True when an answer asked with `asked` is still of the filter chosen: an answer of the
   * previous filter that arrives after a change is dropped, never drawn as the new one's. */
  const current = (asked) => same(asked, state.chosen);

  /** A new filter: into the address (no new history entry), the selects, the tags, and every
   * filterable view asked again. */
  function choose(chosen) {
    if (same(chosen, state.chosen)) return;
    state.chosen = { ...chosen };
    history.replaceState(null, "", location.pathname + location.search + hashWith(state.chosen));
    changed();
  }

  function changed() {
    drawSelects();
    showNote(null);
    markUnfiltered();
    if (state.onChange) state.onChange();
    window.dispatchEvent(new CustomEvent("live-dashboard-filter", { detail: snapshot() }));
  }

  /** The address changed by hand or by Back: follow it. */
  function follow() {
    const chosen = read();
    if (same(chosen, state.chosen)) return;
    state.chosen = chosen;
    changed();
  }

  // --- drawing ---------------------------------------------------------------------------------

  /** The selects' options: "All …", then the values seen, the latest first; a value chosen that no
   * stored event carries (a shared link to an evicted release) stays, marked so. */
  function drawSelects() {
    const drawing = JSON.stringify([state.labels, state.chosen]);
    if (drawing === state.drawn) return;
    let skipped = false;
    for (const name of NAMES) {
      const select = $(`filter-${name}`);
      if (document.activeElement === select && select.options.length > 1) {
        skipped = true; // an open list stays put until it loses the focus
        continue;
      }
      const seen = state.labels[`${name}s`] || [];
      const options = [option("", TITLES[name])];
      const chosen = state.chosen[name];
      if (chosen !== null && !seen.some((l) => l.value === chosen)) options.push(option(chosen, `${chosen} (no stored events)`));
      for (const label of seen) options.push(option(label.value, `${label.value} (${int.format(label.events)} events)`));
      select.replaceChildren(...options);
      select.value = chosen ?? "";
    }
    state.drawn = skipped ? "" : drawing;
  }

  function option(value, text) {
    const node = el("option", "", text);
    node.value = value;
    return node;
  }

  /** The note under the top bar from an answer's `filter` (null: the figures are on their way). */
  function showNote(note) {
    const box = $("filter-note");
    box.hidden = !active();
    if (!active()) return;
    const named = NAMES.filter((name) => state.chosen[name] !== null).map((name) => `${name} ${state.chosen[name]}`).join(", ");
    let text = `${named}: `;
    if (!note) text += "loading…";
    else {
      text += `${int.format(note.matched_backend)} backend / ${int.format(note.matched_frontend)} frontend events matched` +
        ` (of ${int.format(note.scanned)} stored)`;
      text += note.covers_window
        ? "."
        : "; window partly evicted: the figures cover only the events still stored (raise --max-events).";
    }
    $("filter-note").dataset.covers = note ? String(Boolean(note.covers_window)) : "";
    $("filter-note-text").textContent = text;
  }

  /** Views the monitor does not filter say so while a filter is on. */
  function markUnfiltered() {
    document.querySelectorAll("[data-unfiltered]").forEach((tag) => (tag.hidden = !active()));
  }

  // --- the values seen -------------------------------------------------------------------------

  async function pollLabels() {
    try {
      const answer = await state.api("/labels");
      state.labels = {
        releases: Array.isArray(answer && answer.releases) ? answer.releases : [],
        environments: Array.isArray(answer && answer.environments) ? answer.environments : [],
      };
      drawSelects();
    } catch {
      // The main poll tells why the monitor cannot be reached; the lists keep what they held.
    }
    setTimeout(pollLabels, LABELS_EVERY_MS);
  }

  /** Called by dashboard.js once its API call exists: `onChange` asks the views again. */
  function wire({ api, onChange }) {
    state.api = api;
    state.onChange = onChange;
    for (const name of NAMES) {
      const select = $(`filter-${name}`);
      select.addEventListener("change", () => choose({ ...state.chosen, [name]: select.value || null }));
      select.addEventListener("blur", drawSelects); // what arrived while it was open
    }
    $("filter-clear").addEventListener("click", () => choose({ release: null, environment: null }));
    window.addEventListener("hashchange", follow);
    drawSelects();
    showNote(null);
    markUnfiltered();
    pollLabels();
  }

  LiveDashboard.filter = Object.freeze({ active, addTo, suffix, snapshot, current, showNote, wire });
})();
