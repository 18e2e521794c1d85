/**
 * Classification of delayed-event `restart`/`send` responses (delegation.md §4, first matching
 * row wins) and the retry hints of a `429` (`Retry-After` seconds or HTTP-date, then the JSON
 * body's `retry_after_ms`). Pure functions: the caller passes the wall-clock time.
 *
 * @module
 */

/** The two MSC4140 management actions. */
export type DelayedEventAction = "restart" | "send";

/** What a response means for the retry loop. */
export type CallOutcome =
  /** 2xx, or for `send` a 404/409 ("already sent or cancelled"). */
  | { kind: "success"; status: number; alreadyFinal: boolean }
  /** `restart` answered 404/409: the delayed event is gone. */
  | { kind: "not_found"; status: number }
  /** 404/405 `M_UNRECOGNIZED`: the homeserver does not offer MSC4140 management. */
  | { kind: "unrecognized"; status: number }
  /** 429 with a usable hint: wait at least this long. */
  | { kind: "rate_limited"; status: number; retryAfterMs: number }
  /** Anything else: retry with the policy. `detail` is safe to log. */
  | { kind: "transient"; status?: number; detail: string };

/** The parts of a response the classification looks at. */
export interface ResponseParts {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const IMF_FIXDATE =
  /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const RFC850 =
  /^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\d{2})-([A-Z][a-z]{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const ASCTIME =
  /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([A-Z][a-z]{2}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;

function dateMs(y: number, mon: string, d: number, hms: [number, number, number]) {
  const m = MONTHS.indexOf(mon);
  if (m < 0 || d < 1 || d > 31 || hms[0] > 23 || hms[1] > 59 || hms[2] > 60) return undefined;
  const date = new Date(0);
  date.setUTCFullYear(y, m, d);
  date.setUTCHours(hms[0], hms[1], hms[2], 0);
  return date.getUTCDate() === d ? date.getTime() : undefined;
}

/** Parses an HTTP-date (IMF-fixdate, RFC 850 or asctime form, RFC 9110 §5.6.7). */
export function parseHttpDate(text: string): number | undefined {
  let m = IMF_FIXDATE.exec(text);
  if (m) {
    return dateMs(Number(m[3]), m[2]!, Number(m[1]), [Number(m[4]), Number(m[5]), Number(m[6])]);
  }
  m = RFC850.exec(text);
  if (m) {
    // Two-digit years: RFC 9110 says interpret as within 50 years of now; 19xx/20xx split at 70.
    const yy = Number(m[3]);
    const year = yy >= 70 ? 1900 + yy : 2000 + yy;
    return dateMs(year, m[2]!, Number(m[1]), [Number(m[4]), Number(m[5]), Number(m[6])]);
  }
  m = ASCTIME.exec(text);
  if (m) {
    return dateMs(Number(m[6]), m[1]!, Number(m[2]!.trim()), [
      Number(m[3]),
      Number(m[4]),
      Number(m[5]),
    ]);
  }
  return undefined;
}

/**
 * The wait a `Retry-After` header asks for, in milliseconds (before the 1 s floor): integer
 * seconds (negative → 0) or an HTTP-date relative to `nowMs`.
 *
 * @returns undefined when the header is absent or unusable.
 */
export function retryAfterHeaderMs(value: string | null, nowMs: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^[+-]?\d+$/.test(text)) return Math.max(0, Number(text)) * 1000;
  const at = parseHttpDate(text);
  return at === undefined ? undefined : Math.max(0, at - nowMs);
}

function parseJsonObject(body: Uint8Array): Record<string, unknown> | undefined {
  if (body.byteLength === 0) return undefined;
  try {
    const v: unknown = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
    return typeof v === "object" && v !== null && !Array.isArray(v)
      ? v as Record<string, unknown>
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Classifies one response (delegation.md §4 table; rows checked top to bottom).
 *
 * @example
 * ```ts
 * classifyResponse("send", { status: 404, headers: new Headers(), body: new Uint8Array() }, 0);
 * // → { kind: "success", status: 404, alreadyFinal: true }
 * ```
 */
export function classifyResponse(
  action: DelayedEventAction,
  res: ResponseParts,
  nowMs: number,
): CallOutcome {
  const { status } = res;
  if (status >= 200 && status <= 299) return { kind: "success", status, alreadyFinal: false };
  if (status === 404 || status === 405) {
    const body = parseJsonObject(res.body);
    if (body?.errcode === "M_UNRECOGNIZED") return { kind: "unrecognized", status };
  }
  if (status === 404 || status === 409) {
    return action === "restart"
      ? { kind: "not_found", status }
      : { kind: "success", status, alreadyFinal: true };
  }
  if (status === 429) {
    const header = retryAfterHeaderMs(res.headers.get("retry-after"), nowMs);
    if (header !== undefined) return { kind: "rate_limited", status, retryAfterMs: header };
    const ms = parseJsonObject(res.body)?.retry_after_ms;
    if (typeof ms === "number" && Number.isFinite(ms) && ms > 0) {
      return { kind: "rate_limited", status, retryAfterMs: ms };
    }
    return { kind: "transient", status, detail: "rate limited without a usable hint" };
  }
  if (status >= 500) return { kind: "transient", status, detail: `server error ${status}` };
  return { kind: "transient", status, detail: `unexpected status ${status}` };
}
