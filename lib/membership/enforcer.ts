/**
 * Membership enforcement (app-service.md §8; MSC4195 "Kicking users from the SFU on room
 * leave/ban"): participants whose user is no longer joined to the Matrix room are removed from
 * the LiveKit room, because a LiveKit token cannot be revoked on a self-hosted SFU.
 *
 * Three triggers, one rule ("the homeserver says the user is not joined → RemoveParticipant"):
 *
 * - **join**: the SFU's `participant_joined` webhook → `is_joined(mxid)` (fresh) → remove. This is
 *   what stops a kicked user from coming back with the token they still hold.
 * - **push**: an `m.room.member` event in a homeserver transaction whose `membership` is not
 *   `join`, for a tracked user → confirmed with a fresh `is_joined` (the event may be stale: the
 *   user may have re-joined since) → every connected identity of that user in that room removed.
 *   A local user's leave also asks `is_joined(server_name=own)`: `false` (the homeserver has left
 *   the room) → `DeleteRoom` for the LiveKit rooms of that Matrix room.
 * - **sweep**: every `LIVEKIT_MEMBERSHIP_CHECK_INTERVAL_SECONDS`, each Matrix room with connected
 *   participants: the server check, then each connected user (bounded concurrency). The
 *   backstop when the registration has no `url` or transactions were lost.
 *
 * Participants still waiting to connect are never removed. Every homeserver failure fails open
 * (nobody is removed because the homeserver did not answer) and is logged and counted. SFU
 * actions are retried with bounded jittered backoff; "not found" is success. Removing a
 * participant makes the SFU send `participant_left` (reason `PARTICIPANT_REMOVED`), which is what
 * makes a delegation job of that participant send its leave event (delegation.md §8).
 *
 * Transactions are answered at once: {@linkcode MembershipEnforcer.handleEvents} only schedules
 * the work. Every background task is owned here and stopped by {@linkcode
 * MembershipEnforcer.shutdown}.
 *
 * @module
 */
import type { Clock, Timer } from "../clock.ts";
import { describeError, type Logger } from "../log.ts";
import type { ServiceMetrics } from "../metrics/metrics.ts";
import type { HomeserverClient, JoinedQuery } from "../appservice/homeserver.ts";
import type {
  IssuedToken,
  MembershipSink,
  TokenTracker,
  TransactionEvent,
} from "../appservice/ports.ts";
import { type CheckSource, type SfuActions, SfuRemovals } from "./removals.ts";
import type { ParticipantStore } from "./store.ts";
import { type TrackedParticipant, TrackedParticipants } from "./tracked.ts";
import { Semaphore } from "../semaphore.ts";

export type { CheckSource, SfuActions } from "./removals.ts";

/** Concurrent `is_joined` checks of one sweep (and of all pushes together). */
export const CHECK_CONCURRENCY = 8;
/** How long shutdown waits for running removals. */
const SHUTDOWN_WAIT_MS = 2_000;

/** A participant event of the SFU webhook, as far as enforcement needs it. */
export interface SfuParticipantEvent {
  event: string;
  room: string;
  identity: string;
}

/** Options of {@linkcode MembershipEnforcer}. */
export interface MembershipOptions {
  /** `LIVEKIT_HS_SERVER_NAME`. */
  serverName: string;
  homeserver: Pick<HomeserverClient, "isJoined">;
  sfu: SfuActions;
  clock: Clock;
  log: Logger;
  metrics?: Pick<
    ServiceMetrics,
    | "membershipChecks"
    | "membershipRemovals"
    | "membershipRoomsDeleted"
    | "membershipFailures"
    | "membershipTracked"
  >;
  /** Redis persistence (`lk-jwt:participants`); undefined = memory only. */
  store?: ParticipantStore;
  /**
   * Several replicas write the hash: read it at every sweep, not only at start, so entries of
   * tokens issued elsewhere are enforced here too.
   */
  sharedStore?: boolean;
  /** Sweep period in ms; 0 = no sweep. */
  intervalMs: number;
  /** Validity of issued tokens (`LIVEKIT_JWT_VALIDITY_SECONDS`) in ms. */
  tokenValidityMs: number;
  concurrency?: number;
  maxTracked?: number;
}

function serverOf(user: string): string {
  return user.slice(user.indexOf(":") + 1);
}

/** The enforcement engine; see the module documentation. */
export class MembershipEnforcer implements MembershipSink, TokenTracker {
  readonly #o: MembershipOptions;
  readonly #tracked: TrackedParticipants;
  readonly #slots: Semaphore;
  readonly #stop = new AbortController();
  readonly #tasks = new Set<Promise<void>>();
  readonly #removals: SfuRemovals;
  #timer: Timer | undefined;
  /** Whether the stored entries were read once. */
  #loaded = false;
  #sweeping: Promise<void> | undefined;

  constructor(options: MembershipOptions) {
    this.#o = options;
    this.#tracked = new TrackedParticipants(options.maxTracked);
    this.#slots = new Semaphore(Math.max(1, options.concurrency ?? CHECK_CONCURRENCY));
    this.#removals = new SfuRemovals({
      sfu: options.sfu,
      clock: options.clock,
      log: options.log,
      metrics: options.metrics,
      signal: this.#stop.signal,
    });
    const gauge = options.metrics?.membershipTracked;
    if (gauge) {
      gauge.collect = (g) => {
        for (const [state, n] of Object.entries(this.#tracked.counts())) g.set({ state }, n);
      };
    }
  }

  /** The tracked participants (tests, status). */
  get tracked(): TrackedParticipants {
    return this.#tracked;
  }

  /** Loads the stored entries (in the background) and starts the sweep timer. */
  start(): Promise<void> {
    const loaded = this.#merge("start");
    this.#track(loaded);
    this.#schedule();
    return loaded;
  }

  /** Stops the sweep and every background task (bounded), then flushes the store. */
  async shutdown(): Promise<void> {
    this.#timer?.cancel();
    this.#stop.abort(new DOMException("shutting down", "AbortError"));
    let timer: Timer | undefined;
    await Promise.race([
      Promise.allSettled([...this.#tasks]),
      new Promise<void>((resolve) => timer = this.#o.clock.setTimer(SHUTDOWN_WAIT_MS, resolve)),
    ]);
    timer?.cancel();
    await this.#o.store?.flush();
  }

  /** Resolves when every background task scheduled so far has finished (tests). */
  async idle(): Promise<void> {
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }

  // --- tracking -----------------------------------------------------------------------------

  tokenIssued(token: IssuedToken): void {
    const entry: TrackedParticipant = {
      roomId: token.roomId,
      user: token.user,
      room: token.room,
      identity: token.identity,
      state: "waiting",
      expiresAt: this.#o.clock.now() + this.#o.tokenValidityMs,
    };
    for (const dropped of this.#tracked.put(entry)) this.#o.store?.forget(dropped);
    this.#o.store?.save(this.#tracked.get(entry.room, entry.identity) ?? entry);
  }

  /** An SFU webhook event (after verification and de-duplication). */
  webhook(event: SfuParticipantEvent): void {
    if (event.room === "" || event.identity === "") return;
    if (event.event === "participant_joined") {
      const p = this.#tracked.setState(event.room, event.identity, "connected");
      if (!p) return;
      this.#o.store?.save(p);
      this.#track(this.#checkOnJoin(p));
    } else if (
      event.event === "participant_left" || event.event === "participant_connection_aborted"
    ) {
      this.#leftSfu(event.room, event.identity);
    }
  }

  /** Back to waiting until the token expires (a rejoin is checked again), or forgotten. */
  #leftSfu(room: string, identity: string): void {
    const p = this.#tracked.get(room, identity);
    if (!p) return;
    if (p.expiresAt <= this.#o.clock.now()) {
      this.#tracked.delete(room, identity);
      this.#o.store?.forget(p);
      return;
    }
    p.state = "waiting";
    this.#o.store?.save(p);
  }

  // --- triggers -----------------------------------------------------------------------------

  /** Schedules the leaves of a transaction and returns at once (app-service.md §5.4). */
  handleEvents(events: readonly TransactionEvent[]): Promise<void> {
    const leaves = new Map<string, Set<string>>();
    for (const ev of events) {
      if (ev.type !== "m.room.member" || ev.stateKey === undefined) continue;
      if (ev.membership === undefined || ev.membership === "join") continue;
      if (this.#tracked.inRoom(ev.roomId).length === 0) continue;
      let users = leaves.get(ev.roomId);
      if (!users) leaves.set(ev.roomId, users = new Set());
      users.add(ev.stateKey);
    }
    for (const [roomId, users] of leaves) this.#track(this.#onLeaves(roomId, [...users]));
    return Promise.resolve();
  }

  async #onLeaves(roomId: string, users: string[]): Promise<void> {
    // A local user's leave may have been the homeserver's last: then the whole room goes.
    if (users.some((user) => serverOf(user) === this.#o.serverName)) {
      if (await this.#checkServer(roomId, "push")) return;
    }
    await Promise.all(users.map(async (user) => {
      if (!this.#connectedOf(roomId, user).length) return;
      const joined = await this.#check(roomId, { mxid: user }, "push");
      if (joined === false) await this.#removeUser(roomId, user, "push");
    }));
  }

  async #checkOnJoin(p: TrackedParticipant): Promise<void> {
    const joined = await this.#check(p.roomId, { mxid: p.user }, "join");
    if (joined === false) await this.#remove(p, "join");
  }

  /** One sweep over every Matrix room with connected participants. */
  sweep(): Promise<void> {
    this.#sweeping ??= (async () => {
      try {
        this.#forgetExpired();
        // A single instance reads the hash again only while the read at start has not succeeded.
        if (this.#o.sharedStore || !this.#loaded) await this.#merge("sweep");
        await Promise.all(this.#tracked.roomIds().map((roomId) => this.#sweepRoom(roomId)));
      } finally {
        this.#sweeping = undefined;
      }
    })();
    return this.#sweeping;
  }

  async #sweepRoom(roomId: string): Promise<void> {
    const connected = this.#tracked.inRoom(roomId).filter((p) => p.state === "connected");
    if (connected.length === 0) return;
    if (await this.#checkServer(roomId, "sweep")) return;
    const users = new Set(connected.map((p) => p.user));
    await Promise.all([...users].map(async (user) => {
      const joined = await this.#check(roomId, { mxid: user }, "sweep");
      if (joined === false) await this.#removeUser(roomId, user, "sweep");
    }));
  }

  #schedule(): void {
    if (this.#o.intervalMs <= 0 || this.#stop.signal.aborted) return;
    this.#timer = this.#o.clock.setTimer(this.#o.intervalMs, () => {
      const run = this.sweep().catch((err) => {
        this.#o.log.error("Membership sweep failed", { err: describeError(err) });
      }).finally(() => this.#schedule());
      this.#track(run);
    });
  }

  // --- checks and actions -------------------------------------------------------------------

  /** `is_joined`, or undefined when the homeserver could not answer (fail open). */
  async #check(
    roomId: string,
    who: JoinedQuery,
    source: CheckSource,
  ): Promise<boolean | undefined> {
    const m = this.#o.metrics;
    try {
      // Enforcement looks for changes: never a cached answer or an earlier question's.
      const signal = this.#stop.signal;
      const joined = await this.#slots.run(
        () => this.#o.homeserver.isJoined(roomId, who, signal, { fresh: true }),
        signal,
      );
      m?.membershipChecks.inc({ source, result: joined ? "joined" : "not_joined" });
      return joined;
    } catch (err) {
      if (this.#stop.signal.aborted) return undefined;
      m?.membershipChecks.inc({ source, result: "error" });
      m?.membershipFailures.inc({ op: "is_joined" });
      this.#o.log.warn("Membership check failed; nobody removed", {
        room_id: roomId,
        subject: "mxid" in who ? who.mxid : `server ${who.serverName}`,
        source,
        err: describeError(err),
      });
      return undefined;
    }
  }

  /**
   * The server check: when the homeserver has no joined member left, the LiveKit rooms of this
   * Matrix room are deleted. Resolves true when they were.
   */
  async #checkServer(roomId: string, reason: "push" | "sweep"): Promise<boolean> {
    const joined = await this.#check(roomId, { serverName: this.#o.serverName }, reason);
    if (joined !== false) return false;
    const connected = this.#tracked.inRoom(roomId).filter((p) => p.state === "connected");
    const rooms = new Set(connected.map((p) => p.room));
    if (rooms.size === 0) return false;
    this.#o.log.info("Homeserver left the room; deleting its LiveKit rooms", {
      room_id: roomId,
      rooms: rooms.size,
      reason,
    });
    await Promise.all([...rooms].map(async (room) => {
      if (!(await this.#removals.room(room, reason))) return;
      for (const p of connected) if (p.room === room) this.#leftSfu(p.room, p.identity);
    }));
    return true;
  }

  #connectedOf(roomId: string, user: string): TrackedParticipant[] {
    return this.#tracked.inRoom(roomId).filter((p) => p.user === user && p.state === "connected");
  }

  async #removeUser(roomId: string, user: string, reason: CheckSource): Promise<void> {
    await Promise.all(this.#connectedOf(roomId, user).map((p) => this.#remove(p, reason)));
  }

  async #remove(p: TrackedParticipant, reason: CheckSource): Promise<void> {
    if (await this.#removals.participant(p, reason)) this.#leftSfu(p.room, p.identity);
  }

  // --- housekeeping -------------------------------------------------------------------------

  #forgetExpired(): void {
    for (const p of this.#tracked.expired(this.#o.clock.now())) {
      this.#tracked.delete(p.room, p.identity);
      this.#o.store?.forget(p);
    }
  }

  /**
   * Adds the stored entries this instance does not know (written before a restart, or by
   * another replica). Known entries keep their in-memory state, which is the newer one here.
   */
  async #merge(when: "start" | "sweep"): Promise<void> {
    const store = this.#o.store;
    if (!store) return;
    let stored: TrackedParticipant[];
    try {
      stored = await store.loadAll();
      this.#loaded = true;
    } catch (err) {
      this.#o.metrics?.membershipFailures.inc({ op: "redis" });
      this.#o.log.warn("Could not read tracked participants from Redis", {
        when,
        err: describeError(err),
      });
      return;
    }
    const now = this.#o.clock.now();
    let added = 0;
    for (const p of stored) {
      if (this.#tracked.get(p.room, p.identity)) continue;
      if (p.state === "waiting" && p.expiresAt <= now) {
        store.forget(p);
        continue;
      }
      for (const dropped of this.#tracked.put(p)) store.forget(dropped);
      added++;
    }
    if (when === "start" || added > 0) {
      this.#o.log.info("Tracked participants loaded from Redis", { when, added });
    }
  }

  #track(task: Promise<void>): void {
    const owned = task.catch((err) => {
      this.#o.log.error("Membership task failed", { err: describeError(err) });
    });
    this.#tasks.add(owned);
    owned.finally(() => this.#tasks.delete(owned));
  }
}
