// A web app instrumented with the official OpenTelemetry web SDK, as its users set it up:
// a WebTracerProvider naming the service, a BatchSpanProcessor with the OTLP/HTTP trace
// exporter (JSON or protobuf), and the fetch instrumentation. tests/test_web_otlp_browser.py
// bundles it with esbuild, serves it from one origin and points the exporter at a monitor on
// another, so every export crosses origins (a CORS preflight first).
import { registerInstrumentations } from "@opentelemetry/instrumentation";
import { FetchInstrumentation } from "@opentelemetry/instrumentation-fetch";
import { OTLPTraceExporter as JsonExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as ProtobufExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { WebTracerProvider } from "@opentelemetry/sdk-trace-web";

export interface Options {
  /** The monitor's OTLP traces URL, such as http://127.0.0.1:5001/v1/traces. */
  url: string;
  encoding: "json" | "protobuf";
  serviceName: string;
  /** Headers every export carries, such as the monitor's X-Ingest-Key. */
  headers?: Record<string, string>;
}

/** Counts the spans that ended: the fetch instrumentation ends a span a little after its call
 * resolves (it waits for the resource timing), so the test waits for the count, not a time. */
class EndCounter implements SpanProcessor {
  ended = 0;
  onStart(): void {}
  onEnd(): void {
    this.ended += 1;
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

let provider: WebTracerProvider | undefined;
const counter = new EndCounter();

/** Sets the SDK up the way its README does, exporting to ``options.url``. */
function start(options: Options): void {
  const Exporter = options.encoding === "protobuf" ? ProtobufExporter : JsonExporter;
  // A short timeout: an export the browser refuses (CORS) is retried until it runs out.
  const exporter = new Exporter({
    url: options.url,
    headers: options.headers,
    timeoutMillis: 3000,
  });
  provider = new WebTracerProvider({
    resource: resourceFromAttributes({ "service.name": options.serviceName }),
    spanProcessors: [new BatchSpanProcessor(exporter), counter],
  });
  provider.register();
  registerInstrumentations({ instrumentations: [new FetchInstrumentation()] });
}

/** The page's own API calls, as an app makes them: same origin, so they carry traceparent.
 * Order 0 fails on the server (500); a query string is no part of an endpoint. */
async function callApi(): Promise<number[]> {
  const calls = [
    fetch("/api/orders/1"),
    fetch("/api/orders/2?expand=items"),
    fetch("/api/orders/0"),
    fetch("/api/cart", {
      method: "POST",
      body: "{}",
      headers: { "Content-Type": "application/json" },
    }),
  ];
  return (await Promise.all(calls)).map((response) => response.status);
}

/** Exports every ended span now; "ok", or why the export failed. */
async function flush(): Promise<string> {
  try {
    await provider?.forceFlush();
    return "ok";
  } catch (error) {
    return String(error);
  }
}

declare global {
  interface Window {
    otelWeb: {
      start: typeof start;
      callApi: typeof callApi;
      flush: typeof flush;
      ended: () => number;
    };
  }
}

window.otelWeb = { start, callApi, flush, ended: () => counter.ended };
