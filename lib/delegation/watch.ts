/**
 * Delegation metrics and the two operational warnings that tell an admin what is misconfigured:
 *
 * - jobs exist but no SFU webhook arrived for 10 minutes: the SFU's `webhook` section probably
 *   does not point at `/sfu_webhook` (warned at most once per hour);
 * - a homeserver answers delayed-event restarts with 429: its `rc_delayed_event_mgmt` limit is too
 *   low for the delegated participants, whose restarts all come from this service's one address
 *   (clients-and-deployments.md §5; warned at most once per 10 minutes per homeserver).
 *
 * @module
 */
import type { Clock, Timer } from "../clock.ts";
import type { Logger } from "../log.ts";
import type { ServiceMetrics } from "../metrics/metrics.ts";
import type { CallOutcome } from "./classify.ts";

/** No webhook for this long while jobs exist → warning. */
export const WEBHOOK_SILENCE_MS = 10 * 60_000;
/** The webhook warning repeats at most this often. */
export const WEBHOOK_WARN_EVERY_MS = 60 * 60_000;
/** The rate-limit warning repeats at most this often per homeserver. */
export const RATE_LIMIT_WARN_EVERY_MS = 10 * 60_000;
const CHECK_EVERY_MS = 60_000;
const RATE_WINDOW_MS = 60_000;

/** Verdicts of webhook deliveries, for the `webhooks` counter. */
export type WebhookVerdict =
  | "accepted"
  | "ignored"
  | "duplicate"
  | "unauthorized"
  | "bad_body"
  | "unavailable";

/** Options of {@linkcode DelegationWatch}. */
export interface DelegationWatchOptions {
  clock: Clock;
  log: Logger;
  metrics?: ServiceMetrics;
  /** Live delegation jobs right now. */
  jobCount: () => number;
}

/** Collects delegation events for metrics and operational warnings. */
export class DelegationWatch {
  readonly #opts: DelegationWatchOptions;
  #lastWebhook: number;
  #lastSilenceWarning = -Infinity;
  readonly #lastRateWarning = new Map<string, number>();
  /** Monotonic times of recent restart attempts (for the restarts-per-second figure). */
  #restartTimes: number[] = [];
  #timer: Timer | undefined;

  constructor(options: DelegationWatchOptions) {
    this.#opts = options;
    this.#lastWebhook = options.clock.monotonic();
  }

  /** Starts the periodic webhook-silence check. */
  start(): void {
    const tick = () => {
      this.checkWebhookSilence();
      this.#timer = this.#opts.clock.setTimer(CHECK_EVERY_MS, tick);
    };
    this.#timer = this.#opts.clock.setTimer(CHECK_EVERY_MS, tick);
  }

  stop(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  /** Warns when jobs exist and webhooks have been silent for too long. */
  checkWebhookSilence(): void {
    const now = this.#opts.clock.monotonic();
    const jobs = this.#opts.jobCount();
    if (jobs === 0 || now - this.#lastWebhook < WEBHOOK_SILENCE_MS) return;
    if (now - this.#lastSilenceWarning < WEBHOOK_WARN_EVERY_MS) return;
    this.#lastSilenceWarning = now;
    this.#opts.log.warn(
      "No SFU webhook received for 10 minutes while delegation jobs exist: the SFU's webhook section probably does not point at /sfu_webhook (webhook.api_key must equal LIVEKIT_KEY, urls must reach this service); leave events are only detected by polling meanwhile",
      { jobs, silent_minutes: Math.floor((now - this.#lastWebhook) / 60_000) },
    );
  }

  /** A webhook request was answered. */
  webhook(event: string, verdict: WebhookVerdict): void {
    if (verdict !== "unauthorized") this.#lastWebhook = this.#opts.clock.monotonic();
    this.#opts.metrics?.webhooks.inc({ event: event === "" ? "unknown" : event, verdict });
  }

  /** One delayed-event attempt finished. */
  callOutcome(
    call: { action: "restart" | "send"; serverName: string },
    outcome: CallOutcome,
  ): void {
    const counter = call.action === "restart"
      ? this.#opts.metrics?.restarts
      : this.#opts.metrics?.sends;
    counter?.inc({ outcome: outcome.kind });
    if (call.action !== "restart") return;
    const now = this.#opts.clock.monotonic();
    this.#restartTimes.push(now);
    while ((this.#restartTimes[0] ?? now) < now - RATE_WINDOW_MS) this.#restartTimes.shift();
    if (outcome.kind === "rate_limited") this.#warnRateLimited(call.serverName, now);
  }

  /** A retry is about to wait. */
  retry(action: string): void {
    this.#opts.metrics?.retries.inc({ action });
  }

  /** A Redis operation failed. */
  storeError(op: string): void {
    this.#opts.metrics?.redisErrors.inc({ op });
  }

  #warnRateLimited(serverName: string, now: number): void {
    const last = this.#lastRateWarning.get(serverName) ?? -Infinity;
    if (now - last < RATE_LIMIT_WARN_EVERY_MS) return;
    this.#lastRateWarning.set(serverName, now);
    if (this.#lastRateWarning.size > 1000) this.#lastRateWarning.clear();
    const perSecond = Math.round((this.#restartTimes.length / (RATE_WINDOW_MS / 1000)) * 100) /
      100;
    const suggested = Math.max(1, Math.ceil(perSecond * 2));
    this.#opts.log.warn(
      "Homeserver rate-limits delayed-event restarts (429): its rc_delayed_event_mgmt limit is too low for the delegated participants, whose restarts all come from this service's address",
      {
        server_name: serverName,
        delegated_jobs: this.#opts.jobCount(),
        restarts_per_second: perSecond,
        suggested_per_second: suggested,
        suggested_burst_count: suggested * 5,
      },
    );
  }
}
