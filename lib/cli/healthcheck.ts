/**
 * `lk-jwt-service healthcheck` (configuration.md §8): probes `GET /healthz` of the local
 * service at the address derived from `LIVEKIT_JWT_BIND` / `LIVEKIT_JWT_PORT` / `LK_JWT_PORT`,
 * with a 3 s timeout; exit status 0 on `200`, otherwise the reason on stderr and 1.
 *
 * Also an entry of its own: the launcher runs this file directly (not the whole service), with
 * only the three variables and the one `host:port` granted, because container healthchecks run
 * it every few seconds.
 *
 * @module
 */
import { type Clock, systemClock } from "../clock.ts";
import { parseBind, parsePort, quote } from "../config/parse.ts";
import { explainPermissionError } from "./permissions_report.ts";

/** Probe timeout (configuration.md §8). */
export const HEALTHCHECK_TIMEOUT_MS = 3_000;

/** The probe URL, or why none can be derived. */
export type HealthcheckTarget = { ok: true; url: string } | { ok: false; error: string };

/**
 * Derives the probe URL per the configuration.md §8 table: the first of `LIVEKIT_JWT_BIND`,
 * `LIVEKIT_JWT_PORT`, `LK_JWT_PORT` that is set, else `:8080`; host empty or `0.0.0.0` →
 * `127.0.0.1`, `::` → `::1`, anything else as is.
 */
export function healthcheckTarget(env: (name: string) => string | undefined): HealthcheckTarget {
  const bindText = env("LIVEKIT_JWT_BIND") ?? "";
  let host = "";
  let port = 8080;
  if (bindText !== "") {
    const bind = parseBind(bindText);
    if (!bind) {
      return { ok: false, error: `LIVEKIT_JWT_BIND must be host:port, got ${quote(bindText)}` };
    }
    host = bind.host;
    port = bind.port;
  } else {
    for (const name of ["LIVEKIT_JWT_PORT", "LK_JWT_PORT"]) {
      const text = env(name) ?? "";
      if (text === "") continue;
      const parsed = parsePort(text);
      if (parsed === undefined) {
        return { ok: false, error: `${name} must be a port number, got ${quote(text)}` };
      }
      port = parsed;
      break;
    }
  }
  return { ok: true, url: localUrl({ host, port }, "/healthz") };
}

/**
 * The URL at which a process listening on `bind` is reached from this host (configuration.md
 * §8): host empty or `0.0.0.0` → `127.0.0.1`, `::` → `::1`, anything else as is.
 */
export function localUrl(bind: { host: string; port: number }, path: string): string {
  let host = bind.host;
  if (host === "" || host === "0.0.0.0") host = "127.0.0.1";
  else if (host === "::") host = "::1";
  const hostPart = host.includes(":") ? `[${host}]` : host;
  return `http://${hostPart}:${bind.port}${path}`;
}

/** Test seams of {@linkcode runHealthcheck}. */
export interface HealthcheckOptions {
  fetch?: typeof fetch;
  clock?: Clock;
  timeoutMs?: number;
  /** Receives the failure reason (one line); defaults to stderr. */
  write?: (line: string) => void;
}

function writeStderr(line: string): void {
  let bytes = new TextEncoder().encode(`${line}\n`);
  while (bytes.length > 0) bytes = bytes.subarray(Deno.stderr.writeSync(bytes));
}

/** The most specific message of an error chain (`fetch failed` hides the real cause). */
function innermostMessage(err: unknown): string {
  let current: unknown = err;
  while (current instanceof Error && current.cause !== undefined) current = current.cause;
  return current instanceof Error ? current.message : String(current);
}

/** Runs the probe; resolves to the process exit status (0 healthy, 1 otherwise). */
export async function runHealthcheck(
  env: (name: string) => string | undefined,
  options: HealthcheckOptions = {},
): Promise<number> {
  const write = options.write ?? writeStderr;
  const target = healthcheckTarget(env);
  if (!target.ok) {
    write(`healthcheck failed: ${target.error}`);
    return 1;
  }
  const clock = options.clock ?? systemClock;
  const timeoutMs = options.timeoutMs ?? HEALTHCHECK_TIMEOUT_MS;
  const controller = new AbortController();
  let timedOut = false;
  const timer = clock.setTimer(timeoutMs, () => {
    timedOut = true;
    controller.abort(new DOMException("healthcheck timed out", "TimeoutError"));
  });
  const doFetch = options.fetch ?? fetch;
  try {
    const response = await doFetch(target.url, {
      signal: controller.signal,
      redirect: "manual",
    });
    await response.body?.cancel();
    if (response.status === 200) return 0;
    write(`healthcheck failed: GET ${target.url} answered ${response.status}`);
    return 1;
  } catch (err) {
    const reason = timedOut
      ? `no answer within ${timeoutMs / 1000} s`
      : explainPermissionError(err) ?? innermostMessage(err);
    write(`healthcheck failed: GET ${target.url}: ${reason}`);
    return 1;
  } finally {
    timer.cancel();
  }
}

if (import.meta.main) {
  Deno.exitCode = await runHealthcheck((name) => Deno.env.get(name));
}
