/**
 * The Redis {@linkcode HashBackend} (delegation.md §10.1, §10.3) on node-redis 6 (deno-stack.md
 * §5): RESP2 (so only `AUTH` and `SELECT` at connection setup, no `HELLO`/`CLIENT SETINFO`),
 * offline queue disabled (commands fail at once while disconnected instead of being replayed
 * late), an explicit deadline on every command, automatic reconnection 1 s doubling to 30 s.
 *
 * node-redis reads `REDIS_DEBUG_MAINTENANCE` from the environment; the service runs with
 * `--ignore-env`, so that read yields undefined. Nothing is read at import time.
 *
 * @module
 */
import { createClient } from "redis";
import { isIP } from "node:net";
import { rootCertificates } from "node:tls";
import type { Clock } from "../clock.ts";
import { describeError, type Logger } from "../log.ts";
import type { HashBackend } from "./backend.ts";
import { JOBS_HASH } from "./codec.ts";
import type { RedisTarget } from "../config/redis_url.ts";

/** Deadline of one command (a slow Redis must not hold a job or a request for long). */
export const REDIS_COMMAND_TIMEOUT_MS = 5_000;
/** Connection attempts: first retry after 1 s, doubling, at most 30 s apart (§10.3). */
export const RECONNECT_FIRST_MS = 1_000;
export const RECONNECT_MAX_MS = 30_000;
/** TCP/TLS connect deadline of one attempt. */
const CONNECT_TIMEOUT_MS = 5_000;

/** The part of the node-redis client this module uses. */
interface RedisClientLike {
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  sendCommand(args: string[], options?: { abortSignal?: AbortSignal }): Promise<unknown>;
  on(event: string, listener: (arg: unknown) => void): unknown;
  close(): Promise<void>;
  destroy(): void;
}

/** Options of {@linkcode RedisBackend}. */
export interface RedisBackendOptions {
  clock: Clock;
  log: Logger;
  /** Extra trust roots (`SSL_CERT_FILE`) added to the default list for `rediss://`. */
  caCerts?: readonly string[];
  /** `LIVEKIT_INSECURE_SKIP_VERIFY_TLS` (D11): also applies to Redis TLS. */
  skipVerifyTls?: boolean;
  /** Called each time the connection becomes ready (first connect and reconnects). */
  onReady?: () => void;
  commandTimeoutMs?: number;
}

/** Well-known locations of the system CA bundle (Debian/Ubuntu/Alpine, RHEL/Fedora). */
const CA_BUNDLES = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"];

/**
 * Trust roots for `rediss://`: the default list plus `SSL_CERT_FILE`. `node:tls` exposes the
 * default list only with `--allow-sys`; without it the system bundle file is read instead (needs
 * read permission on it), and failing both only the configured extra roots are used.
 */
function trustRoots(extra: readonly string[], log: Logger): string[] {
  try {
    return [...rootCertificates, ...extra];
  } catch {
    // NotCapable: no sys permission.
  }
  for (const path of CA_BUNDLES) {
    try {
      return [Deno.readTextFileSync(path), ...extra];
    } catch {
      // not there or not readable
    }
  }
  log.warn(
    "Redis TLS: default CA list not available (grant --allow-sys or read access to the system CA bundle); using SSL_CERT_FILE only",
  );
  return [...extra];
}

/** A command that did not answer within its deadline. */
export class RedisTimeoutError extends Error {
  constructor(command: string) {
    super(`Redis ${command} timed out`);
    this.name = "RedisTimeoutError";
  }
}

/** One Redis connection for the jobs hash. */
export class RedisBackend implements HashBackend {
  readonly target: RedisTarget;
  readonly #client: RedisClientLike;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  #lastError: unknown;
  #lost = false;
  #closed = false;
  #readyWaiters: ((ok: boolean) => void)[] = [];

  constructor(target: RedisTarget, options: RedisBackendOptions) {
    this.target = target;
    this.#clock = options.clock;
    this.#log = options.log;
    this.#timeoutMs = options.commandTimeoutMs ?? REDIS_COMMAND_TIMEOUT_MS;
    const reconnectStrategy = (retries: number) =>
      Math.min(RECONNECT_FIRST_MS * 2 ** Math.min(retries, 10), RECONNECT_MAX_MS);
    const socket = target.transport === "unix"
      ? {
        path: target.path,
        tls: false as const,
        reconnectStrategy,
        connectTimeout: CONNECT_TIMEOUT_MS,
      }
      : target.transport === "tls"
      ? {
        host: target.host,
        port: target.port,
        tls: true as const,
        // SNI carries names only; for an IP literal the certificate is checked against the IP.
        ...(isIP(target.host) === 0 ? { servername: target.host } : {}),
        ca: trustRoots(options.caCerts ?? [], options.log),
        rejectUnauthorized: !options.skipVerifyTls,
        reconnectStrategy,
        connectTimeout: CONNECT_TIMEOUT_MS,
      }
      : {
        host: target.host,
        port: target.port,
        reconnectStrategy,
        connectTimeout: CONNECT_TIMEOUT_MS,
      };
    this.#client = createClient({
      socket,
      username: target.username,
      password: target.password,
      database: target.database,
      RESP: 2,
      disableOfflineQueue: true,
      disableClientInfo: true,
      maintNotifications: "disabled",
    }) as unknown as RedisClientLike;
    this.#client.on("error", (err) => {
      this.#lastError = err;
      if (!this.#lost && !this.#closed) {
        this.#lost = true;
        this.#log.warn("Redis connection problem; reconnecting in the background", {
          redis: target.display,
          err: describeError(err),
        });
      }
    });
    this.#client.on("ready", () => {
      if (this.#lost) this.#log.info("Redis connection ready", { redis: target.display });
      this.#lost = false;
      for (const w of this.#readyWaiters.splice(0)) w(true);
      options.onReady?.();
    });
  }

  /** Whether commands can be sent now. */
  get ready(): boolean {
    return !this.#closed && this.#client.isReady;
  }

  /** The last connection error, for the startup message. */
  get lastError(): unknown {
    return this.#lastError;
  }

  /** Starts connecting (and reconnecting) in the background. */
  connect(): void {
    this.#client.connect().catch((err) => {
      this.#lastError = err;
    });
  }

  /** Resolves true once ready, false after `timeoutMs`. */
  waitReady(timeoutMs: number): Promise<boolean> {
    if (this.ready) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = (ok: boolean) => {
        timer.cancel();
        resolve(ok);
      };
      const timer = this.#clock.setTimer(timeoutMs, () => {
        this.#readyWaiters = this.#readyWaiters.filter((w) => w !== waiter);
        resolve(false);
      });
      this.#readyWaiters.push(waiter);
    });
  }

  async #command(args: string[]): Promise<unknown> {
    if (this.#closed) throw new Error("Redis store closed");
    const abort = new AbortController();
    let timer: { cancel(): void } | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = this.#clock.setTimer(this.#timeoutMs, () => {
        abort.abort();
        reject(new RedisTimeoutError(args[0] ?? "command"));
      });
    });
    const sent = this.#client.sendCommand(args, { abortSignal: abort.signal });
    sent.catch(() => {});
    try {
      return await Promise.race([sent, deadline]);
    } finally {
      timer?.cancel();
    }
  }

  async set(field: string, value: string): Promise<void> {
    await this.#command(["HSET", JOBS_HASH, field, value]);
  }

  async delete(field: string): Promise<void> {
    await this.#command(["HDEL", JOBS_HASH, field]);
  }

  async getAll(): Promise<Map<string, string>> {
    const reply = await this.#command(["HGETALL", JOBS_HASH]);
    const out = new Map<string, string>();
    if (Array.isArray(reply)) {
      for (let i = 0; i + 1 < reply.length; i += 2) {
        out.set(String(reply[i]), String(reply[i + 1]));
      }
    } else if (reply && typeof reply === "object") {
      for (const [k, v] of Object.entries(reply)) out.set(k, String(v));
    }
    return out;
  }

  async ping(): Promise<void> {
    const reply = await this.#command(["PING"]);
    if (reply !== "PONG") throw new Error(`unexpected PING reply ${String(reply)}`);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of this.#readyWaiters.splice(0)) w(false);
    if (this.#client.isReady) {
      let timer: { cancel(): void } | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = this.#clock.setTimer(1_000, resolve);
      });
      await Promise.race([this.#client.close().catch(() => {}), deadline]);
      timer?.cancel();
    }
    try {
      this.#client.destroy();
    } catch {
      // already closed
    }
  }
}
