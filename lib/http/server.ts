/**
 * The HTTP listener and its graceful, bounded shutdown (http-api.md §1, delegation.md §12).
 *
 * @module
 */
import type { BindAddress } from "../config/parse.ts";
import type { Logger } from "../log.ts";

/** In-flight requests get this long to finish after a shutdown signal (http-api.md §1). */
export const DRAIN_TIMEOUT_MS = 5_000;

/** A running listener. */
export interface RunningServer {
  readonly addr: Deno.NetAddr;
  /** Stops accepting, waits for in-flight requests up to `DRAIN_TIMEOUT_MS`. */
  drain(): Promise<void>;
  readonly finished: Promise<void>;
}

function hostnameFor(bind: BindAddress): string {
  return bind.host === "" ? "::" : bind.host;
}

/**
 * Checks that the address can be bound, before start-up recovery runs (configuration.md §7
 * step 4: a port in use fails at once).
 *
 * @throws {Error} with the configuration.md text when binding fails.
 */
export function probeBind(bind: BindAddress & { text: string }): void {
  let listener: Deno.Listener | undefined;
  try {
    listener = Deno.listen({ hostname: hostnameFor(bind), port: bind.port });
  } catch (err) {
    if (bind.host === "" && err instanceof Deno.errors.AddrNotAvailable) return;
    const cause = err instanceof Error ? err.message : String(err);
    throw new Error(`failed to bind LIVEKIT_JWT_BIND ${JSON.stringify(bind.text)}: ${cause}`);
  } finally {
    listener?.close();
  }
}

/** Starts `Deno.serve` on the bind address. */
export function startServer(options: {
  /** Undefined: let the platform choose (Deno Deploy). */
  bind: BindAddress | undefined;
  handler: (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => Promise<Response>;
  log: Logger;
}): RunningServer {
  const { bind, handler, log } = options;
  const serveOptions = {
    ...(bind ? { port: bind.port } : {}),
    onListen: () => {},
    onError: (err: unknown) => {
      log.error("unhandled error in request handler", { err: String(err) });
      return new Response('{"errcode":"M_UNKNOWN","error":"Internal Server Error"}\n', {
        status: 500,
        headers: { "Content-Type": "application/json" },
      });
    },
  };
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = bind
      ? Deno.serve({ ...serveOptions, hostname: hostnameFor(bind) }, handler)
      : Deno.serve(serveOptions, handler);
  } catch (err) {
    if (!bind || bind.host !== "" || !(err instanceof Deno.errors.AddrNotAvailable)) throw err;
    // No IPv6 in this container: all IPv4 interfaces instead.
    server = Deno.serve({ ...serveOptions, hostname: "0.0.0.0" }, handler);
  }
  return {
    addr: server.addr,
    finished: server.finished,
    async drain() {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), DRAIN_TIMEOUT_MS);
      });
      const outcome = await Promise.race([server.shutdown().then(() => "done" as const), timeout]);
      clearTimeout(timer);
      if (outcome === "timeout") {
        log.warn("in-flight requests did not finish in time; closing them", {
          timeout_ms: DRAIN_TIMEOUT_MS,
        });
      }
    },
  };
}
