/**
 * The Redis data format of delegation jobs (delegation.md §10.1), byte-compatible with the
 * reference implementation so a deployment can switch in either direction with its jobs intact
 * (app-service jobs add `Params.AppServiceUser`, app-service.md §5.3, which other readers ignore):
 *
 * - field: compact JSON `[room, identity]`, with `<`, `>`, `&`, U+2028, U+2029 escaped the way
 *   Go's `encoding/json` does (`\u003c` …), everything else as `JSON.stringify`;
 * - value: `{"Params":{"DelayId","DelayTimeout","ServerName","LiveKitRoom","LiveKitIdentity"},
 *   "RestartedAt"}` in exactly this key order, `DelayTimeout` in nanoseconds, `RestartedAt`
 *   RFC 3339 in UTC with up to nine fractional digits (trailing zeros trimmed).
 *
 * Readers accept any JSON string escaping, unknown extra keys, any RFC 3339 offset and 0–9
 * fractional digits.
 *
 * @module
 */

/** The Redis hash holding every job (delegation.md §10.1). */
export const JOBS_HASH = "lk-jwt:jobs";

/** Largest T in milliseconds: T in nanoseconds must fit a signed 64-bit integer (§2). */
export const MAX_DELAY_TIMEOUT_MS = 9_223_372_036_854;

const INT64_MAX = 9_223_372_036_854_775_807n;

/** One persisted job as stored in the hash value. */
export interface StoredJob {
  delayId: string;
  /** T in nanoseconds, exact (may exceed 2^53). */
  delayTimeoutNs: bigint;
  serverName: string;
  room: string;
  identity: string;
  /** `RestartedAt` as milliseconds since the epoch (may carry a sub-millisecond fraction). */
  restartedAtMs: number;
  /** `RestartedAt` text as read, reused verbatim when an entry is moved to another field. */
  restartedAtText: string;
  /** `Params.AppServiceUser`: the user an app-service job acts as (ours; absent otherwise). */
  appServiceUser?: string;
}

const GO_ESCAPES: Record<string, string> = {
  "<": "\\u003c",
  ">": "\\u003e",
  "&": "\\u0026",
  "\u2028": "\\u2028",
  "\u2029": "\\u2029",
};

/**
 * A JSON string literal as Go's `encoding/json` writes it: `JSON.stringify` plus the HTML-safe
 * escapes of `<`, `>`, `&` and the JavaScript line terminators U+2028/U+2029.
 */
export function goJsonString(value: string): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => GO_ESCAPES[c] ?? c);
}

/** The hash field of a job key: `["<room>","<identity>"]` in Go's escaping. */
export function encodeField(room: string, identity: string): string {
  return `[${goJsonString(room)},${goJsonString(identity)}]`;
}

/** Nanoseconds of a whole number of milliseconds, exact. */
export function msToNs(ms: number): bigint {
  return BigInt(ms) * 1_000_000n;
}

/** Milliseconds of a nanosecond count (fractions kept; exact for every realistic T). */
export function nsToMs(ns: bigint): number {
  return Number(ns / 1_000_000n) + Number(ns % 1_000_000n) / 1e6;
}

/** The hash value of a job, keys in the order of delegation.md §10.1. */
export function encodeValue(job: {
  delayId: string;
  delayTimeoutNs: bigint;
  serverName: string;
  room: string;
  identity: string;
  restartedAt: string;
  appServiceUser?: string | undefined;
}): string {
  // App-service jobs carry their user after the reference's keys, which readers that do not
  // know it ignore; standalone jobs stay byte-identical to the reference's format.
  const user = job.appServiceUser === undefined
    ? ""
    : `,"AppServiceUser":${goJsonString(job.appServiceUser)}`;
  return `{"Params":{"DelayId":${goJsonString(job.delayId)},"DelayTimeout":${job.delayTimeoutNs},` +
    `"ServerName":${goJsonString(job.serverName)},"LiveKitRoom":${goJsonString(job.room)},` +
    `"LiveKitIdentity":${goJsonString(job.identity)}${user}},"RestartedAt":${
      goJsonString(job.restartedAt)
    }}`;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

/**
 * RFC 3339 in UTC with `Z` and up to nine fractional digits (microsecond resolution, the
 * precision of a millisecond double), trailing zeros trimmed
 * (`2026-07-23T10:15:30.1234Z`, `2026-07-23T10:15:30Z`).
 */
export function formatRfc3339(ms: number): string {
  // Epoch milliseconds in a double resolve about 0.25 µs today: keep whole microseconds.
  let wholeMs = Math.floor(ms);
  let subMsUs = Math.round((ms - wholeMs) * 1000);
  if (subMsUs === 1000) {
    wholeMs++;
    subMsUs = 0;
  }
  const d = new Date(wholeMs);
  const ns = d.getUTCMilliseconds() * 1_000_000 + subMsUs * 1000;
  const year = d.getUTCFullYear();
  let text = `${pad(year, 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}T` +
    `${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}`;
  if (ns > 0) text += "." + pad(ns, 9).replace(/0+$/, "");
  return text + "Z";
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:Z|([+-])(\d{2}):(\d{2}))$/;

/** Days since 1970-01-01 of a proleptic Gregorian date (valid for years 0–9999). */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function daysInMonth(y: number, m: number): number {
  if (m === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(m) ? 30 : 31;
}

/**
 * Parses an RFC 3339 timestamp (any offset, 0–9 fractional digits) into epoch milliseconds,
 * keeping sub-millisecond digits as a fraction.
 *
 * @returns undefined when the text is not a valid timestamp.
 */
export function parseRfc3339(text: string): number | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo)) return undefined;
  if (h > 23 || mi > 59 || s > 59) return undefined;
  let offsetMin = 0;
  if (m[8] !== undefined) {
    const oh = Number(m[9]);
    const om = Number(m[10]);
    if (oh > 23 || om > 59) return undefined;
    offsetMin = (m[8] === "-" ? -1 : 1) * (oh * 60 + om);
  }
  const fraction = m[7] === undefined ? 0 : Number(`0.${m[7]}`) * 1000;
  const seconds = daysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offsetMin * 60;
  return seconds * 1000 + fraction;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Decodes a hash value. Integers are taken from their source text, so a `DelayTimeout` above
 * 2^53 keeps its exact value.
 *
 * @throws {SyntaxError} when the value is not JSON or not of the format of §10.1 (the caller
 * logs the field name only and leaves the entry alone).
 */
export function decodeValue(raw: string): StoredJob {
  let delayTimeoutText: string | undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw, function (this: unknown, key, value, context?: { source?: string }) {
      if (key === "DelayTimeout" && typeof value === "number" && isRecord(this)) {
        delayTimeoutText = context?.source;
      }
      return value;
    });
  } catch {
    // The engine's message quotes the input, which may contain a delay ID: never pass it on.
    throw new SyntaxError("job value is not valid JSON");
  }
  if (!isRecord(parsed)) throw new SyntaxError("job value is not a JSON object");
  const params = parsed.Params;
  if (!isRecord(params)) throw new SyntaxError("job value has no Params object");
  const strings = ["DelayId", "ServerName", "LiveKitRoom", "LiveKitIdentity"] as const;
  for (const k of strings) {
    if (typeof params[k] !== "string") throw new SyntaxError(`Params.${k} is not a string`);
  }
  const timeout = params.DelayTimeout;
  if (typeof timeout !== "number") throw new SyntaxError("Params.DelayTimeout is not a number");
  const text = delayTimeoutText ?? String(timeout);
  if (!/^-?(0|[1-9][0-9]*)$/.test(text)) {
    throw new SyntaxError("Params.DelayTimeout is not an integer");
  }
  const ns = BigInt(text);
  if (ns > INT64_MAX || ns < -INT64_MAX - 1n) {
    throw new SyntaxError("Params.DelayTimeout does not fit 64 bits");
  }
  const user = params.AppServiceUser;
  if (user !== undefined && typeof user !== "string") {
    throw new SyntaxError("Params.AppServiceUser is not a string");
  }
  const restartedAt = parsed.RestartedAt;
  if (typeof restartedAt !== "string") throw new SyntaxError("RestartedAt is not a string");
  const at = parseRfc3339(restartedAt);
  if (at === undefined) throw new SyntaxError("RestartedAt is not an RFC 3339 timestamp");
  return {
    delayId: params.DelayId as string,
    delayTimeoutNs: ns,
    serverName: params.ServerName as string,
    room: params.LiveKitRoom as string,
    identity: params.LiveKitIdentity as string,
    restartedAtMs: at,
    restartedAtText: restartedAt,
    ...(user === undefined ? {} : { appServiceUser: user }),
  };
}
