// The page of tests/test_frontend_network_browser.py: every shape of fetch and XMLHttpRequest a
// page makes, each run in turn; `runShapes()` returns what the page saw of each (status, type,
// body text, error name, XHR events). Served with and without the browser logger: the two
// results must be the same.
const API = "/api/shape/";
const other = `http://localhost:${location.port}${API}`; // another origin: the same server

/** What the page sees of a fetch: its response (and body text) or the error it rejects with. */
async function fetched(input, init) {
  try {
    const response = await fetch(input, init);
    const { status, statusText, type, redirected, ok } = response;
    return { status, statusText, type, redirected, ok, text: await response.text() };
  } catch (error) {
    return { error: error.name };
  }
}

/** What the page sees of an XHR: the events it fires, in order, and its status and text. */
function xhr(method, path, { body = null, setup = () => {}, timeout = 0, absolute = false } = {}) {
  return new Promise((resolve) => {
    const request = new XMLHttpRequest();
    const fired = [];
    for (const type of ["load", "error", "abort", "timeout", "loadend"]) {
      request.addEventListener(type, () => fired.push(type));
    }
    request.addEventListener("loadend", () =>
      resolve({ fired, status: request.status, text: request.responseText }),
    );
    request.open(method, absolute ? path : API + path);
    request.timeout = timeout;
    setup(request);
    request.send(body);
  });
}

const bytes = new TextEncoder().encode("bytes \u00e9\u00e8");
const form = () => {
  const data = new FormData();
  data.append("name", "value");
  data.append("file", new Blob(["file body"], { type: "text/plain" }), "a.txt");
  return data;
};

const SHAPES = {
  get: () => fetched(API + "get"),
  "init inherited from a prototype": () =>
    fetched(API + "inherited", Object.create({ method: "POST", body: "x" })),
  "Request object": () =>
    fetched(
      new Request(API + "request", {
        method: "PUT",
        headers: { "X-Page": "1", "Content-Type": "application/json" },
        body: '{"a":1}',
        credentials: "omit",
        cache: "no-store",
        referrerPolicy: "no-referrer",
        keepalive: true,
      }),
    ),
  "Request and init": () =>
    fetched(new Request(API + "request-init", { method: "POST", body: "a" }), {
      headers: { "X-Init": "2" },
    }),
  "Request with an integrity that fails": () =>
    fetched(new Request(API + "integrity", { integrity: "sha256-" + "A".repeat(43) + "=" })),
  "Request with redirect error": () =>
    fetched(new Request(API + "redirect", { redirect: "error" })),
  "body string, own content type": () =>
    fetched(API + "body-text", {
      method: "POST",
      headers: { "Content-Type": "text/csv" },
      body: "a,b",
    }),
  "body URLSearchParams": () =>
    fetched(API + "body-params", { method: "POST", body: new URLSearchParams("a=1&b=2") }),
  "body FormData": () => fetched(API + "body-form", { method: "POST", body: form() }),
  "body Blob": () =>
    fetched(API + "body-blob", {
      method: "POST",
      body: new Blob(["blob"], { type: "application/x-blob" }),
    }),
  "body ArrayBuffer": () => fetched(API + "body-buffer", { method: "POST", body: bytes.buffer }),
  "body Uint8Array": () => fetched(API + "body-bytes", { method: "POST", body: bytes }),
  "body DataView": () =>
    fetched(API + "body-view", { method: "POST", body: new DataView(bytes.buffer, 2) }),
  "body ReadableStream": () =>
    fetched(API + "body-stream", {
      method: "POST",
      duplex: "half",
      body: new Blob(["streamed"]).stream(),
    }),
  "page's own traceparent": () =>
    fetched(API + "own-trace", {
      headers: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
    }),
  "redirect followed": () => fetched(API + "redirect"),
  "redirect manual": () => fetched(API + "redirect", { redirect: "manual" }),
  "status 500": () => fetched(API + "fail?status=500"),
  "status 404": () => fetched(API + "missing?status=404"),
  "no-cors to another origin": () => fetched(other + "opaque", { mode: "no-cors" }),
  "abort mid-body": async () => {
    const controller = new AbortController();
    const response = await fetch(API + "slow?shape=fetch-abort", { signal: controller.signal });
    const reader = response.body.getReader();
    const first = await reader.read();
    controller.abort();
    try {
      await reader.read();
      return { status: response.status, first: first.value.length > 0, rest: "read" };
    } catch (error) {
      return { status: response.status, first: first.value.length > 0, rest: error.name };
    }
  },
  "stream cancelled by the page": async () => {
    const response = await fetch(API + "stream");
    const reader = response.body.getReader();
    const { value } = await reader.read();
    await reader.cancel();
    return { status: response.status, got: value.length > 0 };
  },
  "XHR GET": () => xhr("GET", "xhr-get"),
  "XHR POST": () =>
    xhr("POST", "xhr-post", {
      body: "p=1",
      setup: (r) => r.setRequestHeader("Content-Type", "application/x-www-form-urlencoded"),
    }),
  "XHR 500": () => xhr("GET", "xhr-fail?status=500"),
  "XHR to another origin": () => xhr("GET", other + "xhr-cors", { absolute: true }),
  "XHR reused": () =>
    new Promise((resolve) => {
      const request = new XMLHttpRequest();
      const seen = [];
      const next = (n) => {
        request.open("GET", `${API}xhr-reused/${n}`);
        request.send();
      };
      request.addEventListener("loadend", () => {
        seen.push([request.status, request.responseText]);
        if (seen.length < 2) setTimeout(() => next(2), 0);
        else resolve(seen);
      });
      next(1);
    }),
  "XHR reopened in its own loadend": () =>
    new Promise((resolve) => {
      const request = new XMLHttpRequest();
      const seen = [];
      request.onloadend = () => {
        seen.push([request.status, request.responseText]);
        if (seen.length > 1) return resolve(seen);
        request.open("GET", `${API}xhr-again/2`);
        request.send();
      };
      request.open("GET", `${API}xhr-again/1`);
      request.send();
    }),
  "XHR aborted": () =>
    xhr("GET", "slow?shape=xhr-abort", {
      setup: (r) => r.addEventListener("readystatechange", () => r.readyState === 2 && r.abort()),
    }),
  "XHR timeout": () => xhr("GET", "slow?shape=xhr-timeout", { timeout: 300 }),
};

/** Runs every shape in turn; what the page saw of each, by name. */
window.runShapes = async () => {
  const seen = {};
  for (const [name, shape] of Object.entries(SHAPES)) seen[name] = await shape();
  return seen;
};
