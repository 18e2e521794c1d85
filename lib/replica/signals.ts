/**
 * Signal streams (replicas.md §3 "Signals", R4): a webhook signal for a job another replica
 * drives is appended to that replica's stream `lk-jwt:signals:<id>`; each replica reads its own
 * stream with a blocking `XREAD` on a connection of its own, hands the signals to its jobs and
 * then deletes them (`XDEL`), so whatever is still in a stream was not processed yet: a replica
 * that takes over jobs of a dead one receives those entries with its claim.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import { describeError, type Logger } from "../log.ts";
import type { JobSignal } from "../delegation/state_machine.ts";
import { streamKey } from "./keys.ts";
import type { RedisCommand } from "./scripts.ts";

/** How long one blocking read waits for new entries. */
export const READ_BLOCK_MS = 2_000;
/** Entries read at once. */
const READ_COUNT = 200;
/** Pause after a failed read (Redis away), at most. */
const READ_RETRY_MAX_MS = 5_000;

/** A stream entry's signal name for "a newer registration of this key lives elsewhere". */
export const REPLACED = "replaced";

/** The webhook signals that travel between replicas. */
const FORWARDABLE: ReadonlySet<string> = new Set<JobSignal>([
  "ParticipantConnected",
  "ParticipantDisconnectedIntentionally",
  "ParticipantConnectionAborted",
  "ParticipantMaybeGone",
]);

/** One stream entry. */
export interface SignalEntry {
  /** Stream id `<ms>-<seq>`; the milliseconds are Redis time of the append. */
  id: string;
  /** The job's Redis field. */
  field: string;
  /** A {@linkcode JobSignal} of a webhook, or {@linkcode REPLACED}. */
  signal: JobSignal | typeof REPLACED;
  /** Wall-clock time (ms) at which the forwarding replica received the webhook. */
  sentAtMs: number | undefined;
}

/** Milliseconds part of a stream id. */
export function entryTime(id: string): number {
  return Number(id.slice(0, id.indexOf("-")));
}

/**
 * Parses stream entries `[[id, [k, v, …]], …]` (`XRANGE`, each stream of `XREAD`). Entries with
 * an unknown signal are skipped.
 */
export function parseEntries(raw: unknown): SignalEntry[] {
  const out: SignalEntry[] = [];
  if (!Array.isArray(raw)) return out;
  for (const e of raw) {
    if (!Array.isArray(e) || typeof e[0] !== "string" || !Array.isArray(e[1])) continue;
    const kv = e[1] as unknown[];
    const fields = new Map<string, string>();
    for (let i = 0; i + 1 < kv.length; i += 2) fields.set(String(kv[i]), String(kv[i + 1]));
    const field = fields.get("f");
    const signal = fields.get("s") ?? "";
    if (field === undefined || (signal !== REPLACED && !FORWARDABLE.has(signal))) continue;
    const t = Number(fields.get("t"));
    out.push({
      id: e[0],
      field,
      signal: signal as SignalEntry["signal"],
      sentAtMs: Number.isFinite(t) ? t : undefined,
    });
  }
  return out;
}

/** Options of {@linkcode SignalReader}. */
export interface SignalReaderOptions {
  /** This replica's id. */
  id: string;
  /** The blocking connection (nothing else is sent on it). */
  blocking: RedisCommand;
  /** The shared connection (deletes processed entries). */
  command: RedisCommand;
  clock: Clock;
  log: Logger;
  /** Processes one entry; entries are handed over one at a time in stream order. */
  handle: (entry: SignalEntry) => Promise<void> | void;
}

/** Reads this replica's stream until stopped. */
export class SignalReader {
  readonly #opts: SignalReaderOptions;
  readonly #abort = new AbortController();
  #running: Promise<void> | undefined;

  constructor(options: SignalReaderOptions) {
    this.#opts = options;
  }

  /** Starts the read loop (from the first entry still in the stream). */
  start(): void {
    this.#running ??= this.#loop();
  }

  /** Stops reading; resolves when the loop ended (the caller closes the blocking connection). */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#running;
  }

  async #loop(): Promise<void> {
    const { clock, log, blocking, command } = this.#opts;
    const key = streamKey(this.#opts.id);
    const signal = this.#abort.signal;
    let lastId = "0-0";
    let failures = 0;
    while (!signal.aborted) {
      let reply: unknown;
      try {
        reply = await blocking(
          [
            "XREAD",
            "COUNT",
            String(READ_COUNT),
            "BLOCK",
            String(READ_BLOCK_MS),
            "STREAMS",
            key,
            lastId,
          ],
          READ_BLOCK_MS + 5_000,
        );
        failures = 0;
      } catch (err) {
        if (signal.aborted) break;
        if (failures++ === 0) {
          log.warn("Could not read forwarded signals from Redis; retrying", {
            err: describeError(err),
          });
        }
        const wait = Math.min(READ_RETRY_MAX_MS, 250 * 2 ** Math.min(failures, 5));
        await clock.sleep(wait * (0.5 + clock.random()), signal).catch(() => {});
        continue;
      }
      if (!Array.isArray(reply)) continue;
      const ids: string[] = [];
      for (const stream of reply) {
        if (!Array.isArray(stream)) continue;
        const raw = stream[1];
        if (Array.isArray(raw)) {
          for (const e of raw) if (Array.isArray(e) && typeof e[0] === "string") ids.push(e[0]);
        }
        for (const entry of parseEntries(raw)) {
          if (signal.aborted) return;
          try {
            await this.#opts.handle(entry);
          } catch (err) {
            log.error("Could not process a forwarded signal", { err: describeError(err) });
          }
        }
      }
      if (ids.length === 0) continue;
      lastId = ids[ids.length - 1]!;
      // Processed: gone from the stream, so a taker-over never replays them. A failed delete
      // only means they may be seen once more (signals are idempotent).
      command(["XDEL", key, ...ids]).catch(() => {});
    }
  }
}
