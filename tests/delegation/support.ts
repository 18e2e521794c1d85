/**
 * Stand-ins shared by the delegation tests: a small fetch-based {@linkcode Outbound} (same-host
 * 307/308 redirects, body cap, timeout), a controllable participant lookup, a CS API resolver
 * pointing at a fake, a webhook signer, a capturing logger and a polling `waitFor`.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash, createHmac } from "node:crypto";
import { type Config, loadConfig } from "../../lib/config/config.ts";
import type { LiveKitIdentity, LiveKitRoomAlias } from "../../lib/ids.ts";
import type { LogFields, Logger, LogLevel } from "../../lib/log.ts";
import type {
  CsApiBase,
  CsApiResolver,
  Outbound,
  OutboundRequest,
  OutboundResponse,
  ParticipantLookup,
  Presence,
} from "../../lib/delegation/ports.ts";

/** An outbound error with a failure kind, like `lib/net/outbound.ts` throws. */
export class StubOutboundError extends Error {
  readonly kind: string;
  constructor(kind: string, message: string) {
    super(message);
    this.name = "OutboundError";
    this.kind = kind;
  }
}

/** A minimal {@linkcode Outbound} over `fetch` for loopback fakes; records every request. */
export function fetchOutbound(): Outbound & { requests: OutboundRequest[] } {
  const client = Deno.createHttpClient({});
  const requests: OutboundRequest[] = [];
  return {
    requests,
    async request(req: OutboundRequest): Promise<OutboundResponse> {
      requests.push(req);
      let url = req.url;
      for (let hop = 0;; hop++) {
        const signal = AbortSignal.timeout(req.timeoutMs);
        let res: Response;
        try {
          res = await fetch(url, {
            method: req.method ?? "GET",
            headers: req.headers,
            body: req.body,
            redirect: "manual",
            client,
            signal,
          });
        } catch (err) {
          throw new StubOutboundError("connect", String(err));
        }
        const policy = req.redirect;
        const location = res.headers.get("location");
        if (policy && policy.statuses.includes(res.status) && location) {
          await res.body?.cancel();
          const next = new URL(location, url);
          if (hop >= policy.maxHops) throw new StubOutboundError("redirect", "too many hops");
          if (policy.sameHostOnly && next.hostname !== new URL(url).hostname) {
            throw new StubOutboundError("redirect", "cross-host redirect");
          }
          url = next.href;
          continue;
        }
        const reader = res.body?.getReader();
        const chunks: Uint8Array[] = [];
        let total = 0;
        while (reader) {
          const { done, value } = await reader.read();
          if (done) break;
          total += value.byteLength;
          if (total > req.maxBodyBytes) {
            await reader.cancel();
            throw new StubOutboundError("too_large", "response too large");
          }
          chunks.push(value);
        }
        const body = new Uint8Array(total);
        let off = 0;
        for (const c of chunks) {
          body.set(c, off);
          off += c.byteLength;
        }
        return { status: res.status, headers: res.headers, body, url };
      }
    },
    close() {
      client.close();
      return Promise.resolve();
    },
  };
}

/** A participant lookup with per-key presence and a call log. */
export class StubLookup implements ParticipantLookup {
  readonly presence = new Map<string, Presence>();
  readonly calls: { room: string; identity: string }[] = [];
  /** Answer for keys not in {@linkcode presence}. */
  fallback: Presence = "absent";
  /** Optional per-call override (takes precedence). */
  next: Presence[] = [];

  set(room: string, identity: string, p: Presence): void {
    this.presence.set(`${room}/${identity}`, p);
  }

  getParticipant(
    room: LiveKitRoomAlias,
    identity: LiveKitIdentity,
    signal?: AbortSignal,
  ): Promise<Presence> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    this.calls.push({ room, identity });
    const scripted = this.next.shift();
    return Promise.resolve(scripted ?? this.presence.get(`${room}/${identity}`) ?? this.fallback);
  }

  count(room: string, identity: string): number {
    return this.calls.filter((c) => c.room === room && c.identity === identity).length;
  }
}

/** A resolver answering one base URL for every server (or undefined when `base` is unset). */
export class StubCsApi implements CsApiResolver {
  base: CsApiBase | undefined;
  calls = 0;
  constructor(baseUrl?: string) {
    this.base = baseUrl === undefined ? undefined : { baseUrl, guarded: true };
  }
  resolve(): Promise<CsApiBase | undefined> {
    this.calls++;
    return Promise.resolve(this.base);
  }
}

/** One captured log line. */
export interface LogLine {
  level: LogLevel;
  msg: string;
  fields: LogFields;
}

/** A logger that keeps every line (all levels). */
export function captureLogger(lines: LogLine[] = [], base: LogFields = {}): Logger & {
  lines: LogLine[];
} {
  const emit = (level: LogLevel) => (msg: string, fields?: LogFields) =>
    void lines.push({ level, msg, fields: { ...base, ...fields } });
  return {
    lines,
    debug: emit("debug"),
    info: emit("info"),
    warn: emit("warn"),
    error: emit("error"),
    child: (fields) => captureLogger(lines, { ...base, ...fields }),
    enabled: () => true,
  };
}

/** Every captured line rendered as text (for "never logged" assertions). */
export function renderLines(lines: LogLine[]): string {
  return lines.map((l) => `${l.level} ${l.msg} ${JSON.stringify(l.fields)}`).join("\n");
}

/** Polls `cond` in real time until true (fails after `timeoutMs`). */
export async function waitFor(
  cond: () => boolean,
  options: { timeoutMs?: number; what?: string } = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 5_000);
  while (!cond()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${options.what ?? "condition"}`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Test API key and secret. */
export const KEY = "devkey";
export const SECRET = "devsecret";

/** A validated config for delegation tests. */
export function testConfig(env: Record<string, string> = {}): Config {
  const all: Record<string, string> = {
    LIVEKIT_URL: "ws://127.0.0.1:7880",
    LIVEKIT_KEY: KEY,
    LIVEKIT_SECRET: SECRET,
    LIVEKIT_FULL_ACCESS_HOMESERVERS: "example.com",
    ...env,
  };
  return loadConfig({
    env: (name) => all[name],
    readTextFile: () => {
      throw new Error("no files in tests");
    },
  }).config;
}

/** Signs a webhook body with HS256 like LiveKit; `claims` override or remove (undefined) claims. */
export function signWebhook(
  body: string | Uint8Array,
  options: {
    nowSeconds: number;
    key?: string;
    secret?: string;
    claims?: Record<string, unknown>;
    header?: Record<string, unknown>;
  },
): string {
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
  const claims: Record<string, unknown> = {
    iss: options.key ?? KEY,
    nbf: options.nowSeconds,
    iat: options.nowSeconds,
    exp: options.nowSeconds + 300,
    sha256: createHash("sha256").update(bytes).digest("base64"),
    ...options.claims,
  };
  for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
  const header = Buffer.from(JSON.stringify(options.header ?? { alg: "HS256", typ: "JWT" }))
    .toString("base64url");
  const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
  return `${input}.${
    createHmac("sha256", options.secret ?? SECRET).update(input).digest("base64url")
  }`;
}

/** A webhook request for `/sfu_webhook`. */
export function webhookRequest(body: string, token: string | undefined): Request {
  const headers: Record<string, string> = { "Content-Type": "application/webhook+json" };
  if (token !== undefined) headers.Authorization = token;
  return new Request("http://127.0.0.1/sfu_webhook", { method: "POST", body, headers });
}

/** A webhook event body. */
export function eventBody(
  event: string,
  options: { room?: string; identity?: string; reason?: string | number; id?: string },
): string {
  const obj: Record<string, unknown> = { event };
  if (options.room !== undefined) obj.room = { name: options.room };
  if (options.identity !== undefined) {
    const participant: Record<string, unknown> = { identity: options.identity };
    if (options.reason !== undefined) participant.disconnectReason = options.reason;
    obj.participant = participant;
  }
  if (options.id !== undefined) obj.id = options.id;
  return JSON.stringify(obj);
}
