/**
 * Keep-alive HTTP/1.1 connections of the outbound client (openid-and-discovery.md §8.2, §8.5,
 * §8.6; delegation.md §4).
 *
 * Owns: one pool of connections per target (scheme, dialed address or host name, port, TLS
 * name, proxy: the key of §8.6; dialing is lib/net/dial.ts), at most `maxPerTarget`
 * connections and `maxConnecting` connects in progress per target (further requests wait
 * within their own deadline for a connection to come free or a connect slot: a burst of
 * requests to one homeserver then reuses a few connections instead of opening one each, which
 * matters for TLS at about 170 KiB per connection), idle connections closed after `idleMs`,
 * and one transparent retry on a fresh connection when a reused keep-alive connection turns
 * out to be closed before any byte of the response arrived (the server dropped it while idle).
 *
 * A request's deadline ends whatever step it is in: a pending connect is abandoned, a pending
 * exchange has its connection closed. Connections that saw a failure are never reused.
 *
 * @module
 */
import type { Clock, Timer } from "../clock.ts";
import type { RequestDeadline } from "./deadline.ts";
import { type Connector, type DialOptions, type DialTarget, dialTarget } from "./dial.ts";
import { Http1Connection, type Http1Response } from "./http1.ts";
import { OutboundError } from "./outbound_error.ts";

/** Where a request goes. */
export type Http1Target = DialTarget;

/** Options of {@linkcode Http1Pool}. */
export interface Http1PoolOptions {
  clock: Clock;
  /** Extra trust roots (PEM), in addition to the default store. */
  caCerts: readonly string[];
  /** Replaces `Deno.connect` (test seam). */
  connect?: Connector;
  /** Maps a checked (address, port) onto the socket actually dialed (test seam). */
  dial?: (host: string, port: number) => { hostname: string; port: number };
  /** Per-address connect timeout, default 5 s (§8.5). */
  connectTimeoutMs?: number;
  /** Idle connections are closed after this long, default 60 s. */
  idleMs?: number;
  /** Connections per target, default 16. */
  maxPerTarget?: number;
  /** Connects in progress per target, default 4. */
  maxConnecting?: number;
}

/** One exchange to run. */
export interface Http1Exchange {
  /** The request as text (see `requestText`). */
  text: string;
  method: string;
  url: URL;
  maxBodyBytes: number;
}

/** Failures that happened after the response started (no other address is tried then). */
const inResponse = new WeakSet<object>();

/** Whether `err` came from a response that had already started arriving. */
export function failedInResponse(err: unknown): boolean {
  return typeof err === "object" && err !== null && inResponse.has(err);
}

interface Waiter {
  resolve: (conn: Http1Connection | undefined) => void;
  reject: (err: unknown) => void;
}

interface Slot {
  key: string;
  target: Http1Target;
  idle: Http1Connection[];
  open: Set<Http1Connection>;
  /** Connects in progress (they count towards the cap). */
  connecting: number;
  waiters: Waiter[];
}

/** Keep-alive connections per target, with caps, idle expiry and stale-connection retry. */
export class Http1Pool {
  readonly #clock: Clock;
  readonly #dialOptions: DialOptions;
  readonly #idleMs: number;
  readonly #max: number;
  readonly #maxConnecting: number;
  readonly #slots = new Map<string, Slot>();
  #sweep: Timer | undefined;
  #closed = false;

  constructor(options: Http1PoolOptions) {
    this.#clock = options.clock;
    this.#dialOptions = {
      clock: options.clock,
      caCerts: [...options.caCerts],
      connect: options.connect ?? ((o) => Deno.connect(o)),
      dial: options.dial,
      connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
    };
    this.#idleMs = options.idleMs ?? 60_000;
    this.#max = Math.max(1, options.maxPerTarget ?? 16);
    this.#maxConnecting = Math.max(1, options.maxConnecting ?? 4);
  }

  /** Open connections (busy and idle) over all targets. */
  get openConnections(): number {
    let n = 0;
    for (const slot of this.#slots.values()) n += slot.open.size;
    return n;
  }

  /** Idle connections over all targets. */
  get idleConnections(): number {
    let n = 0;
    for (const slot of this.#slots.values()) n += slot.idle.length;
    return n;
  }

  /**
   * Runs one exchange on a connection to `target`; a reused connection that was closed before
   * the response started is replaced once. Connect failures are `OutboundError`s (`connect` or
   * `timeout`); other failures are thrown as they are, for the caller to classify.
   */
  async request(
    target: Http1Target,
    exchange: Http1Exchange,
    deadline: RequestDeadline,
  ): Promise<Http1Response> {
    const slot = this.#slot(target);
    for (let attempt = 0;; attempt++) {
      const conn = await this.#acquire(slot, exchange.url, deadline);
      const reused = conn.exchanges > 0;
      deadline.onEnd(() => conn.close());
      let res: Http1Response;
      try {
        res = await conn.exchange(exchange.text, exchange);
      } catch (err) {
        deadline.onEnd(undefined);
        this.#discard(slot, conn);
        if (conn.responseStarted) {
          if (typeof err === "object" && err !== null) inResponse.add(err);
        } else if (reused && !deadline.ended && attempt === 0) continue;
        throw err;
      }
      deadline.onEnd(undefined);
      if (res.reusable && !deadline.ended) this.#release(slot, conn);
      else this.#discard(slot, conn);
      return res;
    }
  }

  /**
   * Closes connections that have been idle for `idleMs` and forgets targets without any
   * connection (also run by the sweep timer).
   */
  sweepIdle(): void {
    const now = this.#clock.monotonic();
    for (const slot of [...this.#slots.values()]) {
      const expired = slot.idle.filter((c) => now - c.idleSince >= this.#idleMs);
      for (const conn of expired) this.#discard(slot, conn);
      if (slot.open.size === 0 && slot.connecting === 0 && slot.waiters.length === 0) {
        this.#slots.delete(slot.key);
      }
    }
  }

  /** Closes every connection; requests waiting for one fail. */
  close(): void {
    this.#closed = true;
    this.#sweep?.cancel();
    this.#sweep = undefined;
    for (const slot of this.#slots.values()) {
      for (const conn of slot.open) conn.close();
      for (const w of slot.waiters) w.reject(new Error("outbound client is closed"));
      slot.waiters = [];
      slot.idle = [];
      slot.open.clear();
    }
    this.#slots.clear();
  }

  #slot(target: Http1Target): Slot {
    const key = `${target.scheme}|${target.hostname}|${target.port}|${target.tlsName}|${
      target.pinned ? "pin" : "name"
    }|${target.proxy?.label ?? ""}`;
    let slot = this.#slots.get(key);
    if (!slot) {
      slot = { key, target, idle: [], open: new Set(), connecting: 0, waiters: [] };
      this.#slots.set(key, slot);
      this.#armSweep();
    }
    return slot;
  }

  async #acquire(slot: Slot, url: URL, deadline: RequestDeadline): Promise<Http1Connection> {
    if (this.#closed) throw new OutboundError("aborted", "outbound client is closed");
    const idle = slot.idle.pop();
    if (idle) return idle;
    if (this.#mayConnect(slot)) return await this.#open(slot, url, deadline);
    const handed = await new Promise<Http1Connection | undefined>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject };
      slot.waiters.push(waiter);
      deadline.onEnd(() => {
        slot.waiters = slot.waiters.filter((w) => w !== waiter);
        reject(new Error("request ended while waiting for a connection"));
      });
    }).finally(() => deadline.onEnd(undefined));
    return handed ?? await this.#open(slot, url, deadline);
  }

  async #open(slot: Slot, url: URL, deadline: RequestDeadline): Promise<Http1Connection> {
    slot.connecting++;
    let conn: Http1Connection;
    try {
      conn = new Http1Connection(
        await dialTarget(this.#dialOptions, slot.target, { url, deadline }),
      );
    } catch (err) {
      slot.connecting--;
      this.#wakeOne(slot);
      throw err;
    }
    slot.connecting--;
    if (this.#closed) {
      conn.close();
      throw new OutboundError("aborted", "outbound client is closed");
    }
    slot.open.add(conn);
    return conn;
  }

  #release(slot: Slot, conn: Http1Connection): void {
    const waiter = slot.waiters.shift();
    if (waiter) return waiter.resolve(conn);
    conn.idleSince = this.#clock.monotonic();
    slot.idle.push(conn);
    this.#armSweep();
  }

  #discard(slot: Slot, conn: Http1Connection): void {
    conn.close();
    slot.open.delete(conn);
    const at = slot.idle.indexOf(conn);
    if (at >= 0) slot.idle.splice(at, 1);
    this.#wakeOne(slot);
  }

  #mayConnect(slot: Slot): boolean {
    return slot.open.size + slot.connecting < this.#max && slot.connecting < this.#maxConnecting;
  }

  /**
   * A connect failed or a connection closed: the first waiter may open a new connection (a
   * finished connect serves the request that started it, then goes to the next waiter).
   */
  #wakeOne(slot: Slot): void {
    if (this.#mayConnect(slot)) slot.waiters.shift()?.resolve(undefined);
  }

  #armSweep(): void {
    if (this.#sweep || this.#closed) return;
    this.#sweep = this.#clock.setTimer(this.#idleMs, () => {
      this.#sweep = undefined;
      this.sweepIdle();
      if (this.#slots.size > 0) this.#armSweep();
    });
  }
}
