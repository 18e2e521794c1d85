/**
 * One connection to Redis on node-redis 6 (deno-stack.md §5), either straight to a server from
 * `LIVEKIT_REDIS_URL` (delegation.md §10.3) or to the master that Redis Sentinel names
 * (replicas.md R8: `LIVEKIT_REDIS_SENTINELS` + `LIVEKIT_REDIS_SENTINEL_MASTER`, with password,
 * database and TLS from `LIVEKIT_REDIS_URL` and `LIVEKIT_REDIS_PASSWORD`).
 *
 * Either way: RESP2 (only `AUTH` and `SELECT` at connection setup, no `HELLO`/`CLIENT SETINFO`),
 * offline queue disabled (commands fail at once while disconnected instead of being replayed
 * late), an explicit deadline on every command, automatic reconnection 1 s doubling to 30 s.
 * With Sentinel, node-redis's Sentinel client asks the Sentinels for the master, follows
 * `+switch-master` announcements and re-asks when the master stops answering or answers
 * `READONLY`; when it gives up (no Sentinel answers for a while) this module starts it again
 * with the same backoff, so the service never stops trying.
 *
 * node-redis reads `REDIS_DEBUG_MAINTENANCE` from the environment; the service runs with
 * `--ignore-env`, so that read yields undefined. Nothing is read at import time.
 *
 * @module
 */
import { createClient, createSentinel } from "redis";
import { isIP } from "node:net";
import { rootCertificates } from "node:tls";
import type { Clock, Timer } from "../clock.ts";
import { describeError, type Logger } from "../log.ts";
import type { RedisEndpoint, RedisTarget } from "../config/redis_url.ts";
import type { RedisSentinelSettings } from "../config/replicas.ts";

export type { RedisEndpoint } from "../config/redis_url.ts";

/** Deadline of one command (a slow Redis must not hold a job or a request for long). */
export const REDIS_COMMAND_TIMEOUT_MS = 5_000;
/** Connection attempts: first retry after 1 s, doubling, at most 30 s apart (§10.3). */
export const RECONNECT_FIRST_MS = 1_000;
export const RECONNECT_MAX_MS = 30_000;
/** TCP/TLS connect deadline of one attempt. */
const CONNECT_TIMEOUT_MS = 5_000;
/** Topology re-discoveries the Sentinel client makes before its `connect()` gives up. */
const SENTINEL_REDISCOVERS = 4;

/** The part of node-redis's client (or Sentinel client) this module uses. */
interface Commander {
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  sendCommand(args: string[], options?: { abortSignal?: AbortSignal }): Promise<unknown>;
  on(event: string, listener: (arg: unknown) => void): unknown;
  close(): Promise<void>;
  destroy(): unknown;
}

/** Options of {@linkcode RedisConnection}. */
export interface RedisConnectionOptions {
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

const reconnectStrategy = (retries: number) =>
  Math.min(RECONNECT_FIRST_MS * 2 ** Math.min(retries, 10), RECONNECT_MAX_MS);

function tlsOptions(options: RedisConnectionOptions, host?: string) {
  return {
    tls: true as const,
    // SNI carries names only; for an IP literal the certificate is checked against the IP.
    ...(host !== undefined && isIP(host) === 0 ? { servername: host } : {}),
    ca: trustRoots(options.caCerts ?? [], options.log),
    rejectUnauthorized: !options.skipVerifyTls,
  };
}

function directClient(target: RedisTarget, options: RedisConnectionOptions): Commander {
  const common = { reconnectStrategy, connectTimeout: CONNECT_TIMEOUT_MS };
  const socket = target.transport === "unix"
    ? { path: target.path, tls: false as const, ...common }
    : target.transport === "tls"
    ? {
      host: target.host,
      port: target.port,
      ...tlsOptions(options, target.host),
      ...common,
    }
    : { host: target.host, port: target.port, ...common };
  return createClient({
    socket,
    username: target.username,
    password: target.password,
    database: target.database,
    RESP: 2,
    disableOfflineQueue: true,
    disableClientInfo: true,
    maintNotifications: "disabled",
  }) as unknown as Commander;
}

function sentinelClient(
  target: RedisTarget,
  sentinel: RedisSentinelSettings,
  options: RedisConnectionOptions,
): Commander {
  const tls = target.transport === "tls" ? tlsOptions(options) : {};
  const client = createSentinel({
    name: sentinel.master,
    sentinelRootNodes: sentinel.nodes.map((n) => ({ host: n.host, port: n.port })),
    nodeClientOptions: {
      username: target.username,
      password: target.password,
      database: target.database,
      RESP: 2,
      disableOfflineQueue: true,
      disableClientInfo: true,
      maintNotifications: "disabled",
      socket: { ...tls, connectTimeout: CONNECT_TIMEOUT_MS, reconnectStrategy },
    },
    sentinelClientOptions: {
      RESP: 2,
      disableClientInfo: true,
      maintNotifications: "disabled",
      socket: { ...tls, connectTimeout: CONNECT_TIMEOUT_MS },
    },
    // One connection to the master: commands of this connection reach Redis in issue order.
    masterPoolSize: 1,
    maxCommandRediscovers: SENTINEL_REDISCOVERS,
    passthroughClientErrorEvents: true,
  } as never) as unknown as {
    readonly isReady: boolean;
    connect(): Promise<unknown>;
    sendCommand(
      readonly: boolean,
      args: string[],
      options?: { abortSignal?: AbortSignal },
    ): Promise<unknown>;
    on(event: string, listener: (arg: unknown) => void): unknown;
    close(): Promise<void>;
    destroy(): Promise<void>;
  };
  return {
    get isReady() {
      return client.isReady;
    },
    connect: () => client.connect(),
    sendCommand: (args, o) => client.sendCommand(false, args, o),
    on: (event, listener) => client.on(event, listener),
    close: () => client.close(),
    destroy: () => client.destroy(),
  };
}

/** One Redis connection (or one Sentinel-managed connection to the master). */
export class RedisConnection {
  readonly endpoint: RedisEndpoint;
  readonly #opts: RedisConnectionOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  #client: Commander;
  #lastError: unknown;
  #lost = false;
  #closed = false;
  #restarts = 0;
  #restartTimer: Timer | undefined;
  #readyWaiters: ((ok: boolean) => void)[] = [];

  constructor(endpoint: RedisEndpoint, options: RedisConnectionOptions) {
    this.endpoint = endpoint;
    this.#opts = options;
    this.#clock = options.clock;
    this.#log = options.log;
    this.#timeoutMs = options.commandTimeoutMs ?? REDIS_COMMAND_TIMEOUT_MS;
    this.#client = this.#create();
  }

  /** Another connection to the same endpoint (e.g. for blocking reads), not yet connected. */
  duplicate(options: Partial<RedisConnectionOptions> = {}): RedisConnection {
    return new RedisConnection(this.endpoint, { ...this.#opts, onReady: undefined, ...options });
  }

  #create(): Commander {
    const { target, sentinel } = this.endpoint;
    const client = sentinel
      ? sentinelClient(target, sentinel, this.#opts)
      : directClient(target, this.#opts);
    client.on("error", (err) => {
      if (client !== this.#client) return;
      this.#lastError = err;
      this.#markLost(err);
    });
    client.on("reconnecting", () => {
      if (client === this.#client) this.#markLost(this.#lastError);
    });
    client.on("ready", () => {
      if (client !== this.#client || this.#closed) return;
      if (this.#lost) this.#log.info("Redis connection ready", { redis: this.endpoint.display });
      this.#lost = false;
      this.#restarts = 0;
      for (const w of this.#readyWaiters.splice(0)) w(true);
      this.#opts.onReady?.();
    });
    return client;
  }

  #markLost(err: unknown): void {
    if (this.#lost || this.#closed) return;
    this.#lost = true;
    this.#log.warn("Redis connection problem; reconnecting in the background", {
      redis: this.endpoint.display,
      err: describeError(err),
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
    const client = this.#client;
    client.connect().catch((err) => {
      if (client !== this.#client || this.#closed) return;
      this.#lastError = err;
      this.#markLost(err);
      // A direct client keeps reconnecting by itself; a Sentinel client that gave up (no
      // Sentinel or master answered) is built again after the same backoff.
      if (!this.endpoint.sentinel) return;
      const wait = reconnectStrategy(this.#restarts++);
      this.#restartTimer = this.#clock.setTimer(wait, () => {
        this.#restartTimer = undefined;
        if (this.#closed) return;
        void Promise.resolve(client.destroy()).catch(() => {});
        this.#client = this.#create();
        this.connect();
      });
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

  /**
   * Sends one command; rejects on error replies, when not connected, and after the deadline
   * (default 5 s).
   */
  async command(args: string[], timeoutMs = this.#timeoutMs): Promise<unknown> {
    if (this.#closed) throw new Error("Redis connection closed");
    const abort = new AbortController();
    let timer: { cancel(): void } | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = this.#clock.setTimer(timeoutMs, () => {
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

  /** Closes the connection (pending commands get at most 1 s); later commands reject. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#restartTimer?.cancel();
    for (const w of this.#readyWaiters.splice(0)) w(false);
    const client = this.#client;
    if (client.isReady) {
      let timer: { cancel(): void } | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = this.#clock.setTimer(1_000, resolve);
      });
      await Promise.race([client.close().catch(() => {}), deadline]);
      timer?.cancel();
    }
    try {
      await Promise.resolve(client.destroy()).catch(() => {});
    } catch {
      // already closed
    }
  }
}
