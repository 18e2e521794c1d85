/**
 * Our service as a real process in the stack (real-stack.md §7): started through the launcher
 * `bin/lk-jwt-service` with the documented environment, ready when `GET /healthz` answers 200,
 * stopped gracefully or with SIGKILL for the restart scenario.
 *
 * @module
 */
import {
  LIVEKIT_KEY,
  LIVEKIT_SECRET,
  LIVEKIT_WS_URL,
  REDIS_URL,
  SERVER_NAME,
  SERVICE_BIND,
  stackPaths,
} from "./env.ts";
import { waitFor } from "./poll.ts";
import { ManagedProcess } from "./proc.ts";

/** Options of {@linkcode Service.start}. */
export interface ServiceOptions {
  /** Label for the log file. */
  name: string;
  /** `LIVEKIT_FULL_ACCESS_HOMESERVERS`; default the stack's Synapse. */
  fullAccess?: string;
  /** Use the stack's Redis (`LIVEKIT_REDIS_URL`); default false (in-memory jobs). */
  redis?: boolean;
  /** `LIVEKIT_JWT_BIND`; default 127.0.0.1:8080 (the SFU's webhook target). */
  bind?: string;
  /** Extra or overriding environment variables. */
  env?: Record<string, string>;
}

/** Environment of the service in the stack, before per-scenario overrides. */
export function serviceEnv(opts: ServiceOptions): Record<string, string> {
  const paths = stackPaths();
  const env: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/root",
    DENO_DIR: Deno.env.get("DENO_DIR") ?? `${paths.root}/.cache/deno`,
    DENO_NO_UPDATE_CHECK: "1",
    NO_COLOR: "1",
    LIVEKIT_URL: LIVEKIT_WS_URL,
    LIVEKIT_KEY,
    LIVEKIT_SECRET,
    LIVEKIT_JWT_BIND: opts.bind ?? SERVICE_BIND,
    LIVEKIT_FULL_ACCESS_HOMESERVERS: opts.fullAccess ?? SERVER_NAME,
    LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS: "5",
    LIVEKIT_LOG_LEVEL: "debug",
    SSL_CERT_FILE: paths.caFile,
    // Restricted (non-listed) homeservers on loopback must pass the SSRF guard.
    LIVEKIT_OUTBOUND_ALLOW: "127.0.0.1, ::1",
  };
  if (opts.redis) env.LIVEKIT_REDIS_URL = REDIS_URL;
  return { ...env, ...opts.env };
}

/** A running instance of the service. */
export class Service {
  private constructor(readonly baseUrl: string, readonly proc: ManagedProcess) {}

  /** Starts the launcher and waits (up to 30 s) until `/healthz` answers 200. */
  static async start(opts: ServiceOptions): Promise<Service> {
    const paths = stackPaths();
    const proc = new ManagedProcess("sh", {
      args: [`${paths.root}/bin/lk-jwt-service`],
      // The run folder: a developer's .env in the repository must not leak into the scenario.
      cwd: paths.run,
      env: serviceEnv(opts),
      clearEnv: true,
      logFile: `${paths.run}/logs/service-${opts.name}.log`,
    });
    const service = new Service(`http://${opts.bind ?? SERVICE_BIND}`, proc);
    try {
      const outcome = await waitFor(async () => {
        if (proc.exited) return "exited";
        return (await service.healthy()) ? "healthy" : undefined;
      }, { what: `service ${opts.name} /healthz`, timeoutMs: 30_000, intervalMs: 50 });
      if (outcome === "exited") {
        await proc.wait();
        throw new Error(
          `service ${opts.name} exited during start: ${proc.lines.slice(-5).join(" | ")}`,
        );
      }
    } catch (err) {
      await proc.kill();
      throw err;
    }
    return service;
  }

  /** Whether `GET /healthz` answers 200 right now. */
  async healthy(): Promise<boolean> {
    try {
      const res = await fetch(`${this.baseUrl}/healthz`);
      await res.body?.cancel();
      return res.status === 200;
    } catch {
      return false;
    }
  }

  /** POSTs a JSON body to `path` and returns status and parsed body. */
  async post(
    path: string,
    body: unknown,
  ): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }> {
    return await postJson(`${this.baseUrl}${path}`, body);
  }

  /** Graceful stop (SIGTERM). */
  async stop(): Promise<void> {
    await this.proc.stop(10_000);
  }

  /** `kill -9`. */
  async kill(): Promise<void> {
    await this.proc.kill();
  }

  /** Output lines containing `text` (the service logs key=value lines to stderr). */
  logLines(text: string): string[] {
    return this.proc.lines.filter((l) => l.includes(text));
  }
}

/** POSTs JSON like a browser client would and decodes the JSON answer. */
export async function postJson(
  url: string,
  body: unknown,
): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  if (text.trim() !== "") json = JSON.parse(text);
  return { status: res.status, json, headers: res.headers };
}
