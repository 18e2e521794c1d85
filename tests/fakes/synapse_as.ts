/**
 * A fake Synapse as seen by its application service (app-service.md §1), on 127.0.0.1:0:
 *
 * - `GET …/io.element.msc4502/rooms/{roomId}/is_joined?mxid=|server_name=` from scripted
 *   memberships (`403` without the scope, `404 M_UNRECOGNIZED` with MSC4502 off);
 * - `GET …/org.matrix.msc4140/delayed_events/{id}?user_id=` from scripted delayed events (the
 *   owner's only; `404 M_NOT_FOUND` otherwise), and `POST …/{id}/restart|send` recorded with
 *   their query and `Authorization` (answers scriptable through `delayed`);
 * - `POST …/io.element.msc4512/appservice/fed_proxy` answered by a script standing in for the
 *   remote server (`200 {status, content}`), or a Synapse-side refusal;
 * - `POST /_matrix/client/v1/appservice/{id}/ping`, which calls the service's ping like Synapse,
 *   and `GET /_matrix/client/v3/account/whoami`.
 *
 * Every call must carry the as_token (`401 M_UNKNOWN_TOKEN` otherwise). `asClient` sends
 * requests to the service the way Synapse's proxy forwards them (hs_token and identity header).
 *
 * @module
 */
import { FakeDelayedEvents } from "./delayed_events.ts";

/** A remote server's answer to a relayed request, or a Synapse-side refusal of `fed_proxy`. */
export type RelayScript = (req: { destination: string; path: string; body: unknown }) =>
  | { status: number; content: unknown }
  | { synapseStatus: number; errcode: string }
  | Promise<{ status: number; content: unknown }>;

/** One recorded call. */
export interface AsCall {
  method: string;
  path: string;
  query: URLSearchParams;
  authorization: string | null;
  body: string;
}

/** The fake. */
export interface FakeSynapseAs {
  readonly url: string;
  readonly serverName: string;
  readonly asToken: string;
  readonly hsToken: string;
  /** `roomId|@user:server` and `roomId|server:<name>` entries are joined. */
  readonly joined: Set<string>;
  /** Pending delayed events by ID. */
  readonly delayedEvents: Map<string, { roomId: string; delayMs: number; owner: string }>;
  /** Restart/send answers and records. */
  readonly delayed: FakeDelayedEvents;
  readonly calls: AsCall[];
  settings: { scope: boolean; msc4502: boolean; msc4512: boolean; isJoinedDelayMs: number };
  relay: RelayScript;
  /** The service's base URL, for the ping. */
  serviceUrl: string | undefined;
  join(roomId: string, who: string): void;
  count(pathPart: string): number;
  close(): Promise<void>;
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json" },
  });
}

const IS_JOINED = /^\/_matrix\/client\/unstable\/io\.element\.msc4502\/rooms\/([^/]+)\/is_joined$/;
const DELAYED = /^\/_matrix\/client\/unstable\/org\.matrix\.msc4140\/delayed_events\/([^/]+)$/;
const PING = /^\/_matrix\/client\/v1\/appservice\/([^/]+)\/ping$/;

/** Starts the fake. */
export function startFakeSynapseAs(
  options: { serverName?: string; asToken?: string; hsToken?: string; id?: string } = {},
): FakeSynapseAs {
  const serverName = options.serverName ?? "hs.test";
  const asToken = options.asToken ?? "as-token-secret-value";
  const hsToken = options.hsToken ?? "hs-token-secret-value";
  const id = options.id ?? "lk-jwt-service";
  const delayed = new FakeDelayedEvents();
  const fake: FakeSynapseAs = {
    url: "",
    serverName,
    asToken,
    hsToken,
    joined: new Set(),
    delayedEvents: new Map(),
    delayed,
    calls: [],
    settings: { scope: true, msc4502: true, msc4512: true, isJoinedDelayMs: 0 },
    relay: () => ({ status: 404, content: { errcode: "M_UNRECOGNIZED", error: "Unrecognized" } }),
    serviceUrl: undefined,
    join(roomId, who) {
      this.joined.add(`${roomId}|${who}`);
    },
    count(pathPart) {
      return this.calls.filter((c) => c.path.includes(pathPart)).length;
    },
    close: () => Promise.resolve(),
  };

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const body = req.method === "GET" ? "" : await req.text();
    const call = {
      method: req.method,
      path: url.pathname,
      query: url.searchParams,
      authorization: req.headers.get("authorization"),
      body,
    };
    fake.calls.push(call);
    if (call.authorization !== `Bearer ${asToken}`) {
      return json(401, { errcode: "M_UNKNOWN_TOKEN", error: "Unknown token" });
    }
    const path = url.pathname;
    let m = IS_JOINED.exec(path);
    if (m && req.method === "GET") {
      if (!fake.settings.msc4502) return json(404, { errcode: "M_UNRECOGNIZED", error: "x" });
      if (!fake.settings.scope) {
        return json(403, { errcode: "M_FORBIDDEN", error: "Missing scope" });
      }
      if (fake.settings.isJoinedDelayMs > 0) {
        await new Promise((r) => setTimeout(r, fake.settings.isJoinedDelayMs));
      }
      const room = decodeURIComponent(m[1]!);
      const mxid = url.searchParams.get("mxid");
      const server = url.searchParams.get("server_name");
      const key = mxid !== null ? `${room}|${mxid}` : `${room}|server:${server}`;
      return json(200, { joined: fake.joined.has(key) });
    }
    m = DELAYED.exec(path);
    if (m && req.method === "GET") {
      const delayId = decodeURIComponent(m[1]!);
      const ev = fake.delayedEvents.get(delayId);
      const user = url.searchParams.get("user_id");
      if (!ev || ev.owner !== user) {
        return json(404, { errcode: "M_NOT_FOUND", error: "Delayed event not found" });
      }
      return json(200, {
        delay_id: delayId,
        room_id: ev.roomId,
        type: "org.matrix.msc3401.call.member",
        state_key: "_member",
        delay_ms: ev.delayMs,
        delayed_since_ts: 1,
        content: {},
      });
    }
    const scripted = await delayed.handle(
      new Request(req.url, { method: req.method, headers: req.headers, body: body || undefined }),
    );
    if (scripted) return scripted;
    if (path === "/_matrix/client/unstable/io.element.msc4512/appservice/fed_proxy") {
      if (!fake.settings.msc4512) return json(404, { errcode: "M_UNRECOGNIZED", error: "x" });
      const doc = JSON.parse(body) as { destination: string; path: string; body: unknown };
      const answer = await fake.relay({
        destination: doc.destination,
        path: doc.path,
        body: doc.body,
      });
      if ("synapseStatus" in answer) {
        return json(answer.synapseStatus, { errcode: answer.errcode, error: "refused" });
      }
      return json(200, { status: answer.status, content: answer.content });
    }
    if (path === "/_matrix/client/v3/account/whoami") {
      return json(200, { user_id: `@_lk_jwt_service:${serverName}` });
    }
    m = PING.exec(path);
    if (m && req.method === "POST") {
      if (decodeURIComponent(m[1]!) !== id) return json(403, { errcode: "M_FORBIDDEN" });
      if (!fake.serviceUrl) {
        return json(400, { errcode: "M_URL_NOT_SET", error: "no url" });
      }
      const started = performance.now();
      const res = await fetch(`${fake.serviceUrl}/_matrix/app/v1/ping`, {
        method: "POST",
        headers: { "Authorization": `Bearer ${hsToken}`, "Content-Type": "application/json" },
        body: JSON.stringify({ transaction_id: JSON.parse(body || "{}").transaction_id ?? null }),
      });
      const text = await res.text();
      if (!res.ok) {
        return json(502, {
          errcode: "M_BAD_STATUS",
          error: `HTTP ${res.status}`,
          status: res.status,
          body: text,
        });
      }
      return json(200, { duration_ms: Math.round(performance.now() - started) });
    }
    return json(404, { errcode: "M_UNRECOGNIZED", error: "Unrecognized request" });
  }

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handle);
  Object.assign(fake, {
    url: `http://127.0.0.1:${server.addr.port}`,
    close: () => server.shutdown(),
  });
  return fake;
}

/** Sends a request to the service the way Synapse's MSC4512 proxy forwards it. */
export async function asClient(
  serviceUrl: string,
  options: {
    path: string;
    body?: unknown;
    hsToken: string | null;
    user?: string;
    origin?: string;
    method?: string;
  },
): Promise<{ status: number; body: Record<string, unknown>; text: string }> {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (options.hsToken !== null) headers.Authorization = `Bearer ${options.hsToken}`;
  if (options.user) headers["X-Matrix-User-Identifier"] = options.user;
  if (options.origin) headers["X-Matrix-Origin"] = options.origin;
  const res = await fetch(`${serviceUrl}${options.path}`, {
    method: options.method ?? "POST",
    headers,
    body: options.body === undefined
      ? undefined
      : typeof options.body === "string"
      ? options.body
      : JSON.stringify(options.body),
  });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = text === "" ? {} : JSON.parse(text);
  } catch {
    body = {};
  }
  return { status: res.status, body, text };
}
