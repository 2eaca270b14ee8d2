// Builds the browser logger (frontend_logging_config.ts) into static/ with its loader
// (frontend/loader.ts), the npm package of the logger into dist/live-monitor-browser/, and
// copies the dashboard's Chart.js UMD build to static/, so the monitor can serve all without a CDN.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const staticDir = join(root, "static");
/** The npm package: its name, and the folder `npm pack` is run in. */
export const PACKAGE_NAME = "live-monitor-browser";
export const packageDir = join(root, "dist", PACKAGE_NAME);
/** The bundle's URL in the README's snippet; a page puts its monitor's there. */
export const README_BUNDLE_URL = "http://localhost:5001/static/live-monitor.js";
// The options benchmarks/bench_browser.py builds the logger (and the libraries it is compared
// with) with, so that its figure is the size of these files. es2022: web-vitals 6 supports
// only browsers of the last 30 months (Baseline Widely Available), which all have ES2022, and
// at es2020 esbuild would rewrite its class fields into helper calls.
const common = {
  entryPoints: [join(root, "frontend_logging_config.ts")],
  bundle: true,
  minify: true,
  // The .map files are written but not linked from the bundles: pages do not download the
  // comment, and the bundles are byte for byte what the benchmark measures.
  sourcemap: "external",
  target: ["es2022"],
  platform: "browser",
  legalComments: "none",
  logLevel: "warning",
};

/**
 * The loader (frontend/loader.ts) minified around `call`, the line that installs it. ES2017:
 * the loader runs inline in every page, where a syntax error of an older browser would be the
 * page's error; the bundle it loads may then fail on its own, silently.
 */
async function loader(call) {
  const result = await build({
    stdin: {
      contents: `import { installLoader } from "./frontend/loader";\n${call}`,
      resolveDir: root,
      loader: "ts",
    },
    bundle: true,
    minify: true,
    write: false,
    format: "iife",
    target: ["es2017"],
    platform: "browser",
    legalComments: "none",
    logLevel: "warning",
  });
  return result.outputFiles[0].text.trim();
}

/** The README's inline snippet: the loader with the bundle's URL written in. */
export function loaderSnippet(bundleUrl = README_BUNDLE_URL) {
  return loader(`installLoader(window, document, ${JSON.stringify(bundleUrl)});`);
}

/**
 * static/live-monitor-loader.js, for a page whose Content-Security-Policy allows no inline
 * script: loads the bundle its `data-bundle` attribute names (default: live-monitor.js beside
 * the loader's own URL).
 */
const LOADER_FILE_CALL = `const s = document.currentScript;
if (s) installLoader(window, document, s.getAttribute("data-bundle") || new URL("live-monitor.js", s.src).href);`;

/** Relative imports of the emitted .d.ts files get their ".js", as node16 resolution wants. */
function withJsExtensions(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) withJsExtensions(path);
    else if (entry.name.endsWith(".d.ts")) {
      const text = readFileSync(path, "utf8");
      writeFileSync(path, text.replace(/(from "\.{1,2}\/[^"]+?)(?<!\.js)"/g, '$1.js"'));
    }
  }
}

/**
 * dist/live-monitor-browser: the logger as an ES module for apps with a bundler (`import {
 * initLiveMonitor } from "live-monitor-browser"`), with its types. It sets no global and
 * leaves web-vitals to the app's bundler (a dependency), so importing it has no side effect.
 */
async function buildPackage() {
  const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  rmSync(packageDir, { recursive: true, force: true });
  await build({
    ...common,
    // Readable, but with the global's code (dead here) left out.
    minify: false,
    minifySyntax: true,
    sourcemap: true,
    format: "esm",
    external: ["web-vitals"],
    define: { LIVE_MONITOR_GLOBAL: "false" },
    outfile: join(packageDir, "index.js"),
  });
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
  execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.package.json")], {
    stdio: "inherit",
  });
  withJsExtensions(join(packageDir, "types"));
  const types = "./types/frontend_logging_config.d.ts";
  const pkg = {
    name: PACKAGE_NAME,
    version: manifest.version,
    description: "Browser logger of the Live Execution Monitor, for apps with a bundler",
    license: manifest.license,
    type: "module",
    exports: { ".": { types, default: "./index.js" }, "./package.json": "./package.json" },
    module: "./index.js",
    types,
    sideEffects: false,
    files: ["index.js", "index.js.map", "types"],
    dependencies: { "web-vitals": `^${manifest.dependencies["web-vitals"]}` },
  };
  writeFileSync(join(packageDir, "package.json"), JSON.stringify(pkg, null, 2) + "\n");
  writeFileSync(
    join(packageDir, "README.md"),
    `# ${PACKAGE_NAME}\n\n${pkg.description}: \`import { initLiveMonitor } from "${PACKAGE_NAME}"\`,\n` +
      'then `initLiveMonitor({ endpoint: "http://localhost:5001" })`. Built from the Live Execution\n' +
      "Monitor's `frontend_logging_config.ts`; its README has the options.\n",
  );
}

async function main() {
  const iife = join(staticDir, "live-monitor.js");
  // No globalName: the bundle sets window.LiveMonitor itself (an export wrapper would add bytes).
  await build({ ...common, format: "iife", outfile: iife });
  await build({ ...common, format: "esm", outfile: join(staticDir, "live-monitor.mjs") });
  writeFileSync(join(staticDir, "live-monitor-loader.js"), (await loader(LOADER_FILE_CALL)) + "\n");
  await buildPackage();
  const require = createRequire(import.meta.url);
  // chart.js's "exports" hide package.json; its main entry lives in dist/ beside the UMD build.
  const chartDist = dirname(require.resolve("chart.js"));
  mkdirSync(join(staticDir, "vendor"), { recursive: true });
  copyFileSync(join(chartDist, "chart.umd.js"), join(staticDir, "vendor", "chart.umd.js"));
  console.log(
    "built static/live-monitor.js, .mjs, static/live-monitor-loader.js, " +
      `dist/${PACKAGE_NAME}/, static/vendor/chart.umd.js`,
  );
}

// Run as a script (npm run build); imported by the tests for loaderSnippet().
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main().catch((error) => {
    console.error(`build failed: ${error.message}`);
    process.exit(1);
  });
}
