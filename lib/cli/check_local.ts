/**
 * `check-config`: Redis and the listen addresses (configuration.md §1, §7 steps 4–5;
 * delegation.md §10.3). Redis is probed with the service's own connection code and a `PING`;
 * a listen address by binding it once and closing it again. An address already in use passes
 * when a running instance of this service holds it (its `/healthz`, or `/metrics` for the
 * metrics listener, answers `200`): that is the case when check-config runs inside the
 * service's own container to diagnose it.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { BindAddress } from "../config/parse.ts";
import { silentLogger } from "../log.ts";
import { RedisBackend } from "../store/redis.ts";
import { type RedisEndpoint, redisEndpoint } from "../config/redis_url.ts";
import type { RedisSentinelSettings } from "../config/replicas.ts";
import type { Secret } from "../ids.ts";
import { type Check, type CheckResult, errorMessage, fail, pass } from "./check_result.ts";
import { explainPermissionError } from "./permissions_report.ts";
import { localUrl } from "./healthcheck.ts";

/** How long the listen check waits for a running instance to answer its probe. */
const PROBE_TIMEOUT_MS = 3_000;

/** How long the Redis check waits for a connection before it sends `PING`. */
const REDIS_CONNECT_MS = 5_000;

/** How often the Redis check looks whether the first connection attempt has failed. */
const REDIS_POLL_MS = 100;

/**
 * Waits until the connection is ready, or gives up at the first connection error (the client
 * would keep retrying in the background), after {@linkcode REDIS_CONNECT_MS} or on abort.
 */
async function waitConnected(
  backend: RedisBackend,
  options: { clock: Clock; signal: AbortSignal },
): Promise<boolean> {
  for (let waited = 0; waited < REDIS_CONNECT_MS; waited += REDIS_POLL_MS) {
    if (await backend.waitReady(REDIS_POLL_MS)) return true;
    if (backend.lastError !== undefined || options.signal.aborted) return false;
  }
  return false;
}

/** Options of {@linkcode redisCheck}. */
export interface RedisCheckOptions {
  /** `LIVEKIT_REDIS_URL` (revealed only to connect; never printed). */
  url: Secret<"redis_url"> | undefined;
  /** `LIVEKIT_REDIS_PASSWORD`. */
  password?: Secret<"redis_password">;
  /** `LIVEKIT_REDIS_SENTINELS` + `LIVEKIT_REDIS_SENTINEL_MASTER`. */
  sentinel?: RedisSentinelSettings;
  clock: Clock;
  caCerts: readonly string[];
  skipVerifyTls: boolean;
}

function redisFix(cause: string, display: string): string {
  if (/NOAUTH|WRONGPASS|invalid password|AUTH/i.test(cause)) {
    return "put the Redis user and password into LIVEKIT_REDIS_URL " +
      "(redis://[user]:<password>@host:port/db; percent-encode special characters)";
  }
  if (/certificate|\btls\b|\bssl\b|handshake/i.test(cause)) {
    return "trust the Redis server certificate with SSL_CERT_FILE=<ca.pem>, or use redis:// " +
      "when the server does not speak TLS";
  }
  if (/ENOTFOUND|EAI_|getaddrinfo|lookup/i.test(cause)) {
    return `the host of ${display} does not resolve from here: fix DNS or LIVEKIT_REDIS_URL`;
  }
  if (/DB index|SELECT/i.test(cause)) {
    return "use a database number the server has (redis://host:port/0)";
  }
  return `start Redis or make ${display} reachable from this host (firewall, bind address), ` +
    "or correct LIVEKIT_REDIS_URL";
}

/** The Redis check (only when `LIVEKIT_REDIS_URL` or `LIVEKIT_REDIS_SENTINELS` is set). */
export function redisCheck(options: RedisCheckOptions): Check {
  let endpoint: RedisEndpoint | undefined;
  try {
    endpoint = redisEndpoint({
      redisUrl: options.url,
      redisPassword: options.password,
      redisSentinel: options.sentinel,
    });
    if (!endpoint) throw new TypeError("not set");
  } catch (err) {
    // The configuration accepted it, but the connection code cannot use it.
    const result = fail(
      "Redis",
      `LIVEKIT_REDIS_URL is not usable: ${errorMessage(err)}`,
      "use redis://[user:password@]host[:port][/db], rediss://… or unix:///path/to/socket[?db=N] " +
        "with a database number below 2^31",
    );
    return { what: "Redis", timeoutFix: "", run: () => Promise.resolve(result) };
  }
  const target = endpoint;
  const what = `Redis ${target.display}`;
  return {
    what,
    timeoutFix: redisFix("", target.display),
    async run(signal): Promise<CheckResult> {
      const backend = new RedisBackend(target, {
        clock: options.clock,
        log: silentLogger,
        caCerts: options.caCerts,
        skipVerifyTls: options.skipVerifyTls,
      });
      const closed = new Promise<void>((resolve) => {
        signal.addEventListener("abort", () => void backend.close().then(resolve), { once: true });
      });
      try {
        backend.connect();
        const ready = await waitConnected(backend, { clock: options.clock, signal });
        if (!ready) {
          const cause = backend.lastError === undefined
            ? `no connection within ${REDIS_CONNECT_MS / 1000} s`
            : errorMessage(backend.lastError);
          const permission = explainPermissionError(backend.lastError);
          if (permission) return fail(what, "refused by the process permissions", permission);
          return fail(what, `cannot connect: ${cause}`, redisFix(cause, target.display));
        }
        try {
          await backend.ping();
        } catch (err) {
          const cause = errorMessage(err);
          return fail(what, `PING failed: ${cause}`, redisFix(cause, target.display));
        }
        return pass(`${what}: answered PING`);
      } finally {
        await backend.close();
        if (signal.aborted) await closed;
      }
    },
  };
}

function hostnameFor(bind: BindAddress): string {
  return bind.host === "" ? "::" : bind.host;
}

function bindFix(err: unknown, ctx: { variable: string; port: number }): string {
  const permission = explainPermissionError(err, { purpose: "listen" });
  if (permission) return permission;
  if (err instanceof Deno.errors.AddrInUse) {
    return `another process listens on port ${ctx.port} (find it with ` +
      `\`ss -ltnp 'sport = :${ctx.port}'\`): stop it or choose another ${ctx.variable}`;
  }
  if (err instanceof Deno.errors.PermissionDenied) {
    return "ports below 1024 need root or CAP_NET_BIND_SERVICE: listen on a port >= 1024 " +
      `(e.g. ${ctx.variable}=:8080) behind the reverse proxy`;
  }
  if (err instanceof Deno.errors.AddrNotAvailable) {
    return `the address is not one of this host's: use :${ctx.port} (all interfaces) or an ` +
      `address the host has in ${ctx.variable}`;
  }
  return `choose an address this host can listen on in ${ctx.variable} (e.g. :${ctx.port})`;
}

/** Path that answers `200` on a running instance, per listener. */
const PROBE_PATHS = { LIVEKIT_JWT_BIND: "/healthz", LIVEKIT_METRICS_BIND: "/metrics" } as const;

/** Asks whatever holds the address whether it is a healthy instance of this service. */
async function probeRunningInstance(
  url: string,
  signal: AbortSignal,
): Promise<{ ok: true } | { ok: false; reason: string }> {
  const timeout = AbortSignal.timeout(PROBE_TIMEOUT_MS);
  try {
    const res = await fetch(url, {
      signal: AbortSignal.any([signal, timeout]),
      redirect: "manual",
    });
    await res.body?.cancel();
    return res.status === 200 ? { ok: true } : { ok: false, reason: `answered ${res.status}` };
  } catch (err) {
    return { ok: false, reason: explainPermissionError(err) ?? errorMessage(err) };
  }
}

function listenOnce(bind: BindAddress): void {
  let listener: Deno.Listener;
  try {
    listener = Deno.listen({ hostname: hostnameFor(bind), port: bind.port });
  } catch (err) {
    // No IPv6 on this host: the service then listens on all IPv4 interfaces instead.
    if (bind.host !== "" || !(err instanceof Deno.errors.AddrNotAvailable)) throw err;
    listener = Deno.listen({ hostname: "0.0.0.0", port: bind.port });
  }
  listener.close();
}

/**
 * A listen-address check (configuration.md §7 step 4): binds once and closes again; when the
 * address is in use, passes if a running instance of this service answers there.
 */
export function bindCheck(
  variable: "LIVEKIT_JWT_BIND" | "LIVEKIT_METRICS_BIND",
  bind: BindAddress & { text: string },
): Check {
  const what = `${variable} ${JSON.stringify(bind.text)}`;
  return {
    what,
    timeoutFix: `choose an address this host can listen on in ${variable}`,
    async run(signal): Promise<CheckResult> {
      try {
        listenOnce(bind);
        return pass(`${what}: address is free`);
      } catch (err) {
        const fix = bindFix(err, { variable, port: bind.port });
        if (!(err instanceof Deno.errors.AddrInUse)) {
          return fail(what, `cannot listen: ${errorMessage(err)}`, fix);
        }
        const url = localUrl(bind, PROBE_PATHS[variable]);
        const probe = await probeRunningInstance(url, signal);
        if (probe.ok) {
          return pass(
            `${what}: in use by a running instance of this service (GET ${url} answered 200)`,
          );
        }
        return fail(
          what,
          `cannot listen: ${
            errorMessage(err)
          }; not a running instance of this service (GET ${url} ${probe.reason})`,
          fix,
        );
      }
    },
  };
}
