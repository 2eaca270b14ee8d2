// The npm package of the logger (dist/live-monitor-browser, made by npm run build): `npm pack`
// ships what an app needs and nothing else, and a small app that installs the tarball is
// type-checked by tsc and bundled by esbuild as a user's would be, then runs (fake browser).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";
import { packageDir, PACKAGE_NAME } from "../../scripts/build-frontend.mjs";
import { MONITOR, installBrowser } from "./fake_browser.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
const TSC = join(root, "node_modules", "typescript", "bin", "tsc");
const SHIPPED = [
  "README.md",
  "index.js",
  "index.js.map",
  "package.json",
  "types/frontend/capture.d.ts",
  "types/frontend/loader.d.ts",
  "types/frontend/network.d.ts",
  "types/frontend/routes.d.ts",
  "types/frontend/transport.d.ts",
  "types/frontend/types.d.ts",
  "types/frontend/util.d.ts",
  "types/frontend_logging_config.d.ts",
];
// The consumer app: the README's call from a bundled app, and a misuse its types must refuse.
const APP = `import { initLiveMonitor, type LiveMonitorOptions } from "${PACKAGE_NAME}";

const options: LiveMonitorOptions = {
  endpoint: "${MONITOR}",
  flushIntervalMs: 60_000,
  capture: { webVitals: false, pageLoad: false },
};
export const monitor = initLiveMonitor(options);
monitor.record("checkout", "pay", { duration_ms: 12 });
monitor.trackComponent("Cart").render(() => "drawn");
// @ts-expect-error sampleRate is a number
export const wrong = (): unknown => initLiveMonitor({ sampleRate: "all" });
`;
let app;

const npm = (...args) => execFileSync("npm", args, { cwd: packageDir, encoding: "utf8" });

/** tsc on the app, with the module resolution of a bundler or of node. */
function typecheck(resolution) {
  const module = resolution === "bundler" ? "esnext" : resolution;
  const config = {
    compilerOptions: {
      strict: true,
      noEmit: true,
      target: "es2022",
      module,
      moduleResolution: resolution,
      lib: ["es2022", "dom"],
      types: [],
    },
    files: ["app.ts"],
  };
  writeFileSync(join(app, `tsconfig.${resolution}.json`), JSON.stringify(config));
  try {
    execFileSync(process.execPath, [TSC, "-p", `tsconfig.${resolution}.json`], {
      cwd: app,
      encoding: "utf8",
    });
  } catch (error) {
    throw new Error(`tsc (${resolution}) refused the app:\n${error.stdout}`);
  }
}

/** The app bundled by esbuild from its own node_modules (web-vitals: the repo's copy). */
async function bundle(entry, out) {
  await build({
    entryPoints: [join(app, entry)],
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: ["es2022"],
    nodePaths: [join(root, "node_modules")],
    outfile: join(app, out),
    logLevel: "warning",
  });
  return readFileSync(join(app, out), "utf8");
}

before(() => {
  app = mkdtempSync(join(tmpdir(), "live-monitor-app-"));
  const [packed] = JSON.parse(npm("pack", "--json", "--pack-destination", app));
  const installed = join(app, "node_modules", PACKAGE_NAME);
  mkdirSync(installed, { recursive: true });
  execFileSync("tar", [
    "-xzf",
    join(app, packed.filename),
    "-C",
    installed,
    "--strip-components=1",
  ]);
  writeFileSync(join(app, "package.json"), '{"name": "shop", "private": true, "type": "module"}');
  writeFileSync(join(app, "app.ts"), APP);
});

after(() => rmSync(app, { recursive: true, force: true }));

test("npm pack ships the module, its map and its types, and a package.json that says so", () => {
  const [dry] = JSON.parse(npm("pack", "--dry-run", "--json"));
  assert.deepEqual(dry.files.map((f) => f.path).sort(), SHIPPED);
  const manifest = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8"));
  assert.equal(manifest.name, PACKAGE_NAME);
  assert.equal(manifest.sideEffects, false);
  assert.deepEqual(Object.keys(manifest.dependencies), ["web-vitals"]);
  assert.deepEqual(manifest.exports["."], {
    types: "./types/frontend_logging_config.d.ts",
    default: "./index.js",
  });
});

// Types that resolved to `any` would leave the app's @ts-expect-error unused: an error too.
test("its types check a TypeScript app, for a bundler's resolution and for node's", () => {
  typecheck("bundler");
  typecheck("node16");
});

test("an app bundled with esbuild runs the logger, which sets no global", async () => {
  await bundle("app.ts", "app.mjs");
  const env = installBrowser();
  try {
    const { monitor } = await import(pathToFileURL(join(app, "app.mjs")).href);
    await monitor.flush();
    const events = await env.events();
    assert.deepEqual(
      events.map((e) => [e.component, e.action]),
      [
        ["checkout", "pay"],
        ["Cart", "mount"],
      ],
    );
    assert.equal(globalThis.LiveMonitor, undefined);
    monitor.stop();
  } finally {
    env.uninstall();
  }
});

test("an app that imports one helper gets only that helper (no side effects on import)", async () => {
  writeFileSync(
    join(app, "helper.ts"),
    `import { normalizeRoute } from "${PACKAGE_NAME}";\nexport const key = normalizeRoute("/api/orders/42");\n`,
  );
  const code = await bundle("helper.ts", "helper.mjs");
  assert.ok(!code.includes("/api/live-execution/events"), "the logger came along");
  assert.ok(code.length < 4000, `${code.length} bytes for one helper`);
});
