/**
 * The MSC4140 delayed-event management calls (delegation.md §4): URL building with the
 * `delay_id` percent-encoded as exactly one path segment, the request itself (unauthenticated
 * `POST {}` through the guarded outbound client, 5 s, 64 KiB, same-host 307/308 only) and the
 * bookkeeping of in-flight calls so shutdown can let them finish (delegation.md §12).
 *
 * The `delay_id` is a bearer capability: neither it nor a URL containing it is ever logged;
 * {@linkcode delayHash} gives the short hash used in log lines instead (§11).
 *
 * @module
 */
import type { DelegationWatch } from "./watch.ts";
import { createHash } from "node:crypto";
import type { Clock } from "../clock.ts";
import type { DelayId, Secret, ServerName, UserId } from "../ids.ts";
import { USER_AGENT } from "../version.ts";
import type { Logger } from "../log.ts";
import { type CallOutcome, classifyResponse, type DelayedEventAction } from "./classify.ts";
import type { CsApiBase, Outbound, RedirectPolicy } from "./ports.ts";
import { type Attempt, retry, type RetryResult } from "./retry.ts";

/** Per-attempt deadline (delegation.md §4). */
export const DELAYED_EVENT_TIMEOUT_MS = 5_000;
/** Response bodies are read up to this size (openid-and-discovery.md §8.5). */
export const DELAYED_EVENT_MAX_BODY = 64 * 1024;
/** Same-host 307/308 only, at most 3 hops (openid-and-discovery.md §8.4). */
export const DELAYED_EVENT_REDIRECTS: RedirectPolicy = {
  maxHops: 3,
  httpsOnly: false,
  sameHostOnly: true,
  statuses: [307, 308],
};

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
const HEX = "0123456789ABCDEF";
const encoder = new TextEncoder();

/**
 * Percent-encodes every UTF-8 byte except the unreserved set `A–Z a–z 0–9 - . _ ~`, with
 * uppercase hex, so the value is exactly one path segment (`syd_a/../b?c` →
 * `syd_a%2F..%2Fb%3Fc`).
 */
export function encodeDelayIdSegment(delayId: string): string {
  let out = "";
  for (const byte of encoder.encode(delayId)) {
    const ch = String.fromCharCode(byte);
    out += byte < 0x80 && UNRESERVED.test(ch) ? ch : `%${HEX[byte >> 4]}${HEX[byte & 15]}`;
  }
  return out;
}

/** The first 12 hex digits of SHA-256(delay_id), the only form of a `delay_id` in logs. */
export function delayHash(delayId: string): string {
  return createHash("sha256").update(delayId).digest("hex").slice(0, 12);
}

const PATH = "/_matrix/client/unstable/org.matrix.msc4140/delayed_events/";

/** `<base>/_matrix/client/unstable/org.matrix.msc4140/delayed_events/<id>/<action>`. */
export function delayedEventUrl(
  baseUrl: string,
  options: { delayId: string; action: DelayedEventAction },
): string {
  const base = baseUrl.endsWith("/") ? baseUrl.slice(0, -1) : baseUrl;
  return `${base}${PATH}${encodeDelayIdSegment(options.delayId)}/${options.action}`;
}

/** One delayed-event call. */
export interface DelayedEventCall {
  base: CsApiBase;
  serverName: ServerName;
  delayId: DelayId;
  action: DelayedEventAction;
  /**
   * App-service jobs: act as this user (`?user_id=` and the as_token, app-service.md §5.3)
   * instead of the unauthenticated call.
   */
  actAs?: { user: UserId; token: Secret<"as_token"> } | undefined;
}

/** Makes the calls and tracks the ones in flight. */
export class DelayedEventClient {
  readonly #outbound: Outbound;
  readonly #clock: Clock;
  readonly #inFlight = new Set<Promise<unknown>>();
  /** Encoded path segments per `delay_id` (each job restarts every 0.8·T). */
  readonly #segments = new WeakMap<DelayId, string>();

  /** Sees every outcome and retry (metrics, operational warnings). */
  readonly watch: DelegationWatch | undefined;

  constructor(options: { outbound: Outbound; clock: Clock; watch?: DelegationWatch }) {
    this.#outbound = options.outbound;
    this.#clock = options.clock;
    this.watch = options.watch;
  }

  /** Number of POSTs currently in flight. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /**
   * POSTs `{}` to the action URL and classifies the answer. Never throws: transport failures
   * (including SSRF-guard denials and too-large bodies) are transient outcomes. The request is
   * deliberately not tied to the job's cancellation: a POST in flight may finish (§4).
   */
  call(call: DelayedEventCall): Promise<CallOutcome> {
    const p = this.#call(call).then((outcome) => {
      this.watch?.callOutcome(call, outcome);
      return outcome;
    });
    this.#inFlight.add(p);
    p.finally(() => this.#inFlight.delete(p));
    return p;
  }

  async #call(call: DelayedEventCall): Promise<CallOutcome> {
    try {
      let segment = this.#segments.get(call.delayId);
      if (segment === undefined) {
        segment = encodeDelayIdSegment(call.delayId.reveal());
        this.#segments.set(call.delayId, segment);
      }
      const base = call.base.baseUrl.endsWith("/")
        ? call.base.baseUrl.slice(0, -1)
        : call.base.baseUrl;
      const actAs = call.actAs;
      const query = actAs ? `?user_id=${encodeURIComponent(actAs.user)}` : "";
      const headers: Record<string, string> = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
      };
      if (actAs) headers["Authorization"] = `Bearer ${actAs.token.reveal()}`;
      const res = await this.#outbound.request({
        url: `${base}${PATH}${segment}/${call.action}${query}`,
        method: "POST",
        body: "{}",
        headers,
        timeoutMs: DELAYED_EVENT_TIMEOUT_MS,
        maxBodyBytes: DELAYED_EVENT_MAX_BODY,
        redirect: DELAYED_EVENT_REDIRECTS,
        guard: call.base.guarded ? { serverName: call.serverName } : undefined,
      });
      return classifyResponse(call.action, res, this.#clock.now());
    } catch (err) {
      return { kind: "transient", detail: transportDetail(err) };
    }
  }

  /** Waits until the calls in flight now have finished, at most `timeoutMs`. */
  async drain(timeoutMs: number): Promise<void> {
    if (this.#inFlight.size === 0) return;
    let timer: { cancel(): void } | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = this.#clock.setTimer(timeoutMs, resolve);
    });
    await Promise.race([Promise.allSettled([...this.#inFlight]), deadline]);
    timer?.cancel();
  }
}

/** A log-safe description of a transport failure (never the URL: it contains the delay id). */
function transportDetail(err: unknown): string {
  if (err instanceof Error) {
    const kind = (err as { kind?: unknown }).kind;
    return typeof kind === "string" ? `transport error (${kind})` : `transport error (${err.name})`;
  }
  return "transport error";
}

/** Options of {@linkcode callWithRetry}. */
export interface RetriedCall extends DelayedEventCall {
  clock: Clock;
  log: Logger;
  budgetMs: number;
  signal: AbortSignal;
  /** Called right before each attempt is sent (the restart deadline uses the send time). */
  onAttempt?: () => void;
}

/**
 * One delayed-event action under the retry policy of delegation.md §5: success, not-found and
 * `M_UNRECOGNIZED` are final; 429 hints replace the next wait; everything else is retried until
 * the budget is used up or the signal aborts.
 */
export function callWithRetry(
  calls: DelayedEventClient,
  call: RetriedCall,
): Promise<RetryResult<CallOutcome>> {
  const { clock, log } = call;
  return retry(async (): Promise<Attempt<CallOutcome>> => {
    call.onAttempt?.();
    const outcome = await calls.call(call);
    switch (outcome.kind) {
      case "success":
      case "not_found":
      case "unrecognized":
        return { kind: "final", value: outcome };
      case "rate_limited":
        log.debug("Delayed-event call rate limited", {
          action: call.action,
          retry_after_ms: outcome.retryAfterMs,
        });
        calls.watch?.retry(call.action);
        return { kind: "retry", value: outcome, hintMs: outcome.retryAfterMs };
      default:
        log.debug("Delayed-event call failed", {
          action: call.action,
          base: call.base.baseUrl,
          detail: outcome.detail,
        });
        calls.watch?.retry(call.action);
        return { kind: "retry", value: outcome };
    }
  }, { clock, budgetMs: call.budgetMs, signal: call.signal });
}

/** A log-safe one-line description of an outcome. */
export function describeOutcome(outcome: CallOutcome | undefined): string {
  if (!outcome) return "none";
  switch (outcome.kind) {
    case "transient":
      return outcome.detail;
    case "rate_limited":
      return `rate limited (${outcome.retryAfterMs} ms)`;
    default:
      return `${outcome.kind} (${outcome.status})`;
  }
}

/** Logs why a restart cycle failed; returns true when the event is gone (not found). */
export function logRestartFailure(
  log: Logger,
  options: { base: CsApiBase; result: RetryResult<CallOutcome> },
): boolean {
  const { base, result } = options;
  const outcome = result.value;
  if (result.end === "final" && outcome?.kind === "unrecognized") {
    log.error(
      "Homeserver does not support MSC4140 delayed-event management; aborting the job",
      { base: base.baseUrl, action: "restart", status: outcome.status },
    );
    return true;
  }
  if (result.end === "final" && outcome?.kind === "not_found") {
    log.info("Delayed event no longer exists on the homeserver; aborting the job", {
      base: base.baseUrl,
      status: outcome.status,
    });
    return true;
  }
  log.warn("Restarting the delayed event failed until its deadline; aborting the job", {
    base: base.baseUrl,
    attempts: result.attempts,
    last: describeOutcome(outcome),
  });
  return false;
}

/** Logs the result of a send (INFO sent, ERROR unsupported, WARN gave up). */
export function logSendResult(
  log: Logger,
  options: { base: CsApiBase; result: RetryResult<CallOutcome> },
): void {
  const { base, result } = options;
  const outcome = result.value;
  if (outcome?.kind === "success") {
    log.info(
      outcome.alreadyFinal
        ? "Delayed event was already sent or cancelled"
        : "Delayed leave event sent",
      { base: base.baseUrl, status: outcome.status },
    );
  } else if (outcome?.kind === "unrecognized") {
    log.error(
      "Homeserver does not support MSC4140 delayed-event management; delayed event not sent",
      { base: base.baseUrl, action: "send", status: outcome.status },
    );
  } else {
    log.warn("Sending the delayed event failed; giving up", {
      base: base.baseUrl,
      attempts: result.attempts,
      last: describeOutcome(outcome),
    });
  }
}
