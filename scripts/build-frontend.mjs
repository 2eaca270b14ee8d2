// Builds the browser logger (frontend_logging_config.ts) into static/ and copies the
// dashboard's Chart.js UMD build there, so the monitor can serve both without a CDN.
import { copyFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const staticDir = join(root, "static");
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

async function main() {
  const iife = join(staticDir, "live-monitor.js");
  // No globalName: the bundle sets window.LiveMonitor itself (an export wrapper would add bytes).
  await build({ ...common, format: "iife", outfile: iife });
  await build({ ...common, format: "esm", outfile: join(staticDir, "live-monitor.mjs") });
  const require = createRequire(import.meta.url);
  // chart.js's "exports" hide package.json; its main entry lives in dist/ beside the UMD build.
  const chartDist = dirname(require.resolve("chart.js"));
  mkdirSync(join(staticDir, "vendor"), { recursive: true });
  copyFileSync(join(chartDist, "chart.umd.js"), join(staticDir, "vendor", "chart.umd.js"));
  console.log("built static/live-monitor.js, static/live-monitor.mjs, static/vendor/chart.umd.js");
}

main().catch((error) => {
  console.error(`build failed: ${error.message}`);
  process.exit(1);
});
