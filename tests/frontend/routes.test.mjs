// Route keys must match the Python side exactly, or frontend and backend events never meet.
import assert from "node:assert/strict";
import { test } from "node:test";
import { endpointKey, normalizeRoute, outgoingKey } from "../../static/live-monitor.mjs";
import { outgoingFixture, routeFixture } from "./fake_browser.mjs";

test("normalizeRoute agrees with the shared route_keys.json table", () => {
  const pairs = routeFixture();
  assert.ok(pairs.length > 0, "fixture is empty");
  for (const [input, expected] of pairs) {
    assert.equal(normalizeRoute(input), expected, `normalizeRoute(${JSON.stringify(input)})`);
  }
});

test("outgoingKey agrees with the shared outgoing_keys.json table", () => {
  const rows = outgoingFixture();
  assert.ok(rows.length > 0, "fixture is empty");
  for (const [method, url, expected] of rows) {
    assert.equal(outgoingKey(method, url), expected, `outgoingKey(${method}, ${url})`);
  }
});

test("endpointKey upper-cases the method and normalises the path", () => {
  assert.equal(endpointKey("get", "/api/orders/42?x=1"), "GET /api/orders/:id");
});
