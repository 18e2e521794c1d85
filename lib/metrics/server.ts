/**
 * The Prometheus listener on `LIVEKIT_METRICS_BIND`, separate from the client-facing port so it
 * can stay internal (like LiveKit's own Prometheus port).
 *
 * @module
 */
import type { BindAddress } from "../config/parse.ts";
import { Errors } from "../http/errors.ts";
import type { Logger } from "../log.ts";
import type { ServiceMetrics } from "./metrics.ts";
import { Registry } from "./registry.ts";

/** Starts `GET /metrics` on the bind address. */
export function startMetricsServer(options: {
  bind: BindAddress & { text: string };
  metrics: ServiceMetrics;
  log: Logger;
  /** Refreshes gauges that are computed on demand. */
  beforeRender?: () => void;
}): Deno.HttpServer<Deno.NetAddr> {
  const { bind, metrics, log } = options;
  const server = Deno.serve({
    hostname: bind.host === "" ? "0.0.0.0" : bind.host,
    port: bind.port,
    onListen: (addr) => log.info("Metrics listening", { address: `${addr.hostname}:${addr.port}` }),
  }, (req) => {
    if (new URL(req.url).pathname !== "/metrics") {
      return new Response("not found\n", { status: 404 });
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      return Errors.methodNotAllowed("GET, HEAD").toResponse();
    }
    options.beforeRender?.();
    return new Response(req.method === "HEAD" ? null : metrics.render(), {
      headers: { "Content-Type": Registry.contentType },
    });
  });
  return server;
}
