"""The dashboard's differences card, comparison table and endpoint rows agree with each other and
with the report: the same differences, each with the report's samples-and-confidence line."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import msgspec
import pytest
from playwright.sync_api import expect

from live_monitor.model.comparator import compare
from live_monitor.model.stats import PairStats
from live_monitor.tools import render
from live_monitor.vocabulary import WORKS
from tests.helpers import ROOT, MonitorProcess, Tab, table_row, verdict_traffic

pytestmark = pytest.mark.timeout(180)
expect.set_options(timeout=15_000)

# Runs dashboard-format.js as the page does and applies its evidenceText to the differences given.
PROBE = """
const vm = require("node:vm");
const fs = require("node:fs");
const context = vm.createContext({ window: {} });
vm.runInContext(fs.readFileSync(process.argv[1], "utf8"), context);
const format = context.window.LiveDashboard.format;
const diffs = JSON.parse(fs.readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify({ work: format.WORK_LABELS, evidence: diffs.map(format.evidenceText) }));
"""


def probe(diffs: list[dict[str, Any]]) -> dict[str, Any]:
    script = ROOT / "static" / "dashboard-format.js"
    out = subprocess.run(
        ["node", "-e", PROBE, str(script)],
        input=json.dumps(diffs),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(out.stdout)


def some_differences() -> list[dict[str, Any]]:
    """Differences with and without a confidence, on thousands of samples."""
    stats = PairStats()
    for i in range(1200):
        stats.backend.add("http", "POST /api/cart", 30.0, i < 70, 0.0)
        stats.frontend.add("api", "POST /api/cart", 60.0, False, 0.0)
    for _ in range(30):
        stats.frontend.add("api", "GET /api/legacy", 40.0, False, 0.0)
    diffs = msgspec.to_builtins(compare(stats))
    assert {d["confidence"] is None for d in diffs} == {True, False}
    return diffs


def test_the_dashboard_labels_every_kind_of_work_and_words_evidence_as_the_report():
    diffs = some_differences()
    found = probe(diffs)
    assert set(found["work"]) == set(WORKS)
    assert found["evidence"] == [render.evidence(d) for d in diffs]
    assert "Samples: 1,200 backend, 1,230 frontend; 100% sure it is not chance" in found["evidence"]


def test_card_table_and_endpoint_rows_agree_with_the_report(tab: Tab, monitor_server: MonitorProcess) -> None:
    page = tab.page
    backend, frontend = verdict_traffic()
    monitor_server.post_events(backend + frontend)
    diffs = monitor_server.get("/differences")["differences"]
    assert diffs
    page.goto(f"{monitor_server.url}/?refresh=0.5")
    cards = page.locator("#alerts .alert")
    expect(cards).to_have_count(len(diffs))
    expect(cards.locator(".alert-evidence")).to_have_text([render.evidence(d) for d in diffs])
    expect(cards.locator(".scope")).to_have_text([d["key"] or "whole service" for d in diffs])
    data = monitor_server.get("/data")
    be, fe = data["backend"], data["frontend"]
    calls = table_row(page, "comparison-table", "API calls in window").locator("td")
    expect(calls).to_have_text([f"{be['api_calls']['count']}", f"{fe['api_calls']['count']}", "–"])
    pages = table_row(page, "comparison-table", "Pages and static files").locator("td")
    expect(pages).to_have_text(["60", "0", "–"])
    expect(page.locator("#comparison-table tbody th", has_text="What the differences compare")).to_have_text(
        "What the differences compare: API calls"
    )
    favicon = page.locator('#endpoint-table tbody tr[data-key="GET /favicon.ico"]')
    expect(favicon.locator(".work-asset")).to_have_text("page/static")
    expect(page.locator('#endpoint-table tbody tr[data-key="GET /api/cart"] .work-asset')).to_have_count(0)
    tab.assert_clean()
