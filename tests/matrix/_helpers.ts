/**
 * A scripted {@linkcode Outbound} for discovery tests that do not need sockets.
 *
 * @module
 */
import {
  type Outbound,
  OutboundError,
  type OutboundFailure,
  type OutboundRequest,
  type OutboundResponse,
} from "../../lib/net/outbound.ts";

/** What the scripted outbound answers: a response, or a failure kind. */
export type Scripted =
  | { status: number; body?: unknown; headers?: Record<string, string> }
  | { fail: OutboundFailure };

/** A fake outbound that answers from a handler and records requests. */
export interface FakeOutbound extends Outbound {
  requests: OutboundRequest[];
  /** Requests whose URL path is `path`. */
  count(path: string): number;
}

/** Builds a response object (`body` strings raw, other values as JSON). */
export function response(
  status: number,
  body?: unknown,
  headers: Record<string, string> = {},
  url = "https://x/",
): OutboundResponse {
  const text = body === undefined ? "" : typeof body === "string" ? body : JSON.stringify(body);
  return { status, headers: new Headers(headers), body: new TextEncoder().encode(text), url };
}

/** Creates the fake; `handler` may be async (e.g. to block until the test releases it). */
export function fakeOutbound(
  handler: (req: OutboundRequest) => Scripted | Promise<Scripted>,
): FakeOutbound {
  const requests: OutboundRequest[] = [];
  return {
    requests,
    count: (path) => requests.filter((r) => new URL(r.url).pathname === path).length,
    async request(req) {
      requests.push(req);
      const s = await handler(req);
      if ("fail" in s) throw new OutboundError(s.fail, `scripted ${s.fail}`);
      return response(s.status, s.body, s.headers, req.url);
    },
    close: () => Promise.resolve(),
  };
}
