/**
 * The `Deno.HttpClient`s behind the outbound client (openid-and-discovery.md §8.6 "Pooling").
 *
 * Three kinds: one plain client for operator-configured destinations, one per upstream proxy,
 * and one per pinned target (scheme, checked address, port, TLS name), each holding its own
 * keep-alive connections through the pinning proxy. Pinned clients idle for longer than
 * `idleMs` are closed by a sweep timer (which runs only while such clients exist); their pins
 * are released with them. `close()` closes everything.
 *
 * @module
 */
import type { Clock, Timer } from "../clock.ts";
import type { Pin, PinProxy } from "./pin_proxy.ts";

/** A client plus its bookkeeping. */
export interface PooledClient {
  readonly key: string;
  readonly client: Deno.HttpClient;
  readonly pin: Pin | undefined;
  active: number;
  lastUsed: number;
}

/** Options of {@linkcode ClientPool}. */
export interface ClientPoolOptions {
  caCerts: readonly string[];
  clock: Clock;
  /** Starts (once) and returns the pinning proxy. */
  pinProxy: () => PinProxy;
  /** Idle time after which a pinned or proxy client is closed, default 2 min. */
  idleMs?: number;
  /** Bound on pinned clients; idle ones are evicted first, default 512. */
  maxClients?: number;
}

/** Idle keep-alive sockets are closed by the HTTP client after this long. */
const SOCKET_IDLE_MS = 90_000;

/** Owns every HTTP client of the outbound layer. */
export class ClientPool {
  readonly #opts: ClientPoolOptions;
  readonly #idleMs: number;
  readonly #max: number;
  readonly #clients = new Map<string, PooledClient>();
  #plain: PooledClient | undefined;
  #sweep: Timer | undefined;
  #closed = false;

  constructor(opts: ClientPoolOptions) {
    this.#opts = opts;
    this.#idleMs = opts.idleMs ?? 120_000;
    this.#max = opts.maxClients ?? 512;
  }

  /** Number of pinned and proxy clients currently open. */
  get size(): number {
    return this.#clients.size;
  }

  /** The plain client (no proxy, no pinning) for operator-configured destinations. */
  plain(): PooledClient {
    this.#assertOpen();
    this.#plain ??= this.#wrap("plain", undefined, {
      caCerts: [...this.#opts.caCerts],
      poolIdleTimeout: SOCKET_IDLE_MS,
    });
    return this.#plain;
  }

  /** The client that sends through the upstream proxy `proxyUrl`. */
  upstream(proxyUrl: string): PooledClient {
    return this.#get(`proxy|${proxyUrl}`, () => ({
      pin: undefined,
      options: {
        caCerts: [...this.#opts.caCerts],
        proxy: { url: proxyUrl },
        poolIdleTimeout: SOCKET_IDLE_MS,
      },
    }));
  }

  /** The client pinned to (address, port) for URLs of `scheme` whose host is `host`. */
  pinned(scheme: "http:" | "https:", address: string, port: number, host: string): PooledClient {
    const key = `pin|${scheme}|${address}|${port}|${host.toLowerCase()}`;
    return this.#get(key, () => {
      const proxy = this.#opts.pinProxy();
      const pin = proxy.register({ address, port, host });
      return {
        pin,
        options: {
          caCerts: [...this.#opts.caCerts],
          proxy: { url: proxy.url, basicAuth: pin.basicAuth },
          poolIdleTimeout: SOCKET_IDLE_MS,
          // Plain-http tunnels carry one request each (the proxy rewrites one request head).
          ...(scheme === "http:" ? { poolMaxIdlePerHost: 0 } : {}),
        },
      };
    });
  }

  /** Marks a request as running on `entry`. */
  acquire(entry: PooledClient): void {
    entry.active++;
    entry.lastUsed = this.#opts.clock.monotonic();
  }

  /** Marks a request on `entry` as finished (body read or cancelled). */
  release(entry: PooledClient): void {
    entry.active = Math.max(0, entry.active - 1);
    entry.lastUsed = this.#opts.clock.monotonic();
  }

  /** Closes idle clients now (also run by the sweep timer). */
  sweepIdle(): void {
    const now = this.#opts.clock.monotonic();
    for (const entry of [...this.#clients.values()]) {
      if (entry.active === 0 && now - entry.lastUsed >= this.#idleMs) this.#drop(entry);
    }
  }

  /** Closes every client and releases every pin. */
  close(): void {
    this.#closed = true;
    this.#sweep?.cancel();
    this.#sweep = undefined;
    for (const entry of [...this.#clients.values()]) this.#drop(entry);
    if (this.#plain) this.#plain.client.close();
    this.#plain = undefined;
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error("Cannot send request: outbound client is closed");
  }

  #wrap(key: string, pin: Pin | undefined, options: Deno.CreateHttpClientOptions): PooledClient {
    return {
      key,
      client: Deno.createHttpClient(options),
      pin,
      active: 0,
      lastUsed: this.#opts.clock.monotonic(),
    };
  }

  #get(
    key: string,
    make: () => { pin: Pin | undefined; options: Deno.CreateHttpClientOptions },
  ): PooledClient {
    this.#assertOpen();
    const existing = this.#clients.get(key);
    if (existing) {
      this.#clients.delete(key);
      this.#clients.set(key, existing);
      return existing;
    }
    if (this.#clients.size >= this.#max) this.#evictOne();
    const { pin, options } = make();
    const entry = this.#wrap(key, pin, options);
    this.#clients.set(key, entry);
    this.#armSweep();
    return entry;
  }

  #evictOne(): void {
    for (const entry of this.#clients.values()) {
      if (entry.active === 0) {
        this.#drop(entry);
        return;
      }
    }
  }

  #drop(entry: PooledClient): void {
    this.#clients.delete(entry.key);
    try {
      entry.client.close();
    } catch {
      // Already closed.
    }
    if (entry.pin) this.#opts.pinProxy().release(entry.pin);
  }

  #armSweep(): void {
    if (this.#sweep || this.#closed) return;
    this.#sweep = this.#opts.clock.setTimer(this.#idleMs, () => {
      this.#sweep = undefined;
      this.sweepIdle();
      if (this.#clients.size > 0) this.#armSweep();
    });
  }
}
