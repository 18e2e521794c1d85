/**
 * A fake MSC4140 delayed-event management endpoint
 * (`…/_matrix/client/unstable/org.matrix.msc4140/delayed_events/<delay_id>/<action>`): records
 * every call per delay ID and answers `200 {}` unless a response was scripted (status, headers
 * such as `Retry-After`, body, artificial delay). {@linkcode FakeDelayedEvents.handle} plugs
 * into another fake's route hook (it returns undefined for paths it does not own);
 * {@linkcode serveDelayedEvents} runs it as its own server on 127.0.0.1:0.
 *
 * @module
 */

/** One recorded call. */
export interface DelayedEventCallRecord {
  /** Decoded `delay_id`. */
  delayId: string;
  /** The path segment exactly as received (percent-encoded). */
  rawSegment: string;
  action: string;
  method: string;
  /** Path before `/_matrix/…` (a CS API path prefix). */
  prefix: string;
  /** The query string as received (`?user_id=…` for app-service jobs), or `""`. */
  query: string;
  headers: Headers;
  body: string;
  /** `performance.now()` when the request arrived. */
  at: number;
}

/** A scripted answer. */
export interface ScriptedResponse {
  status: number;
  body?: string;
  headers?: Record<string, string>;
  /** Wait this long before answering (real time). */
  delayMs?: number;
}

const PATH =
  /^(.*)\/_matrix\/client\/unstable\/org\.matrix\.msc4140\/delayed_events\/([^/]+)\/([a-z]+)$/;

/** The endpoint state. */
export class FakeDelayedEvents {
  readonly calls: DelayedEventCallRecord[] = [];
  readonly #queued = new Map<string, ScriptedResponse[]>();
  readonly #sticky = new Map<string, ScriptedResponse>();

  /** Queues one-shot answers for `(delayId, action)`; `"*"` matches any value. */
  script(delayId: string, action: string, ...responses: ScriptedResponse[]): void {
    const key = `${action} ${delayId}`;
    this.#queued.set(key, [...(this.#queued.get(key) ?? []), ...responses]);
  }

  /** Answers every call for `(delayId, action)` with `response` until changed (undefined clears). */
  always(delayId: string, action: string, response: ScriptedResponse | undefined): void {
    const key = `${action} ${delayId}`;
    if (response) this.#sticky.set(key, response);
    else this.#sticky.delete(key);
  }

  /** Calls for a delay ID (and action). */
  callsFor(delayId: string, action?: string): DelayedEventCallRecord[] {
    return this.calls.filter((c) => c.delayId === delayId && (!action || c.action === action));
  }

  /** Number of calls for a delay ID and action. */
  count(delayId: string, action: string): number {
    return this.callsFor(delayId, action).length;
  }

  #next(delayId: string, action: string): ScriptedResponse | undefined {
    for (const key of [`${action} ${delayId}`, `${action} *`, `* ${delayId}`, `* *`]) {
      const q = this.#queued.get(key);
      if (q && q.length > 0) return q.shift();
    }
    for (const key of [`${action} ${delayId}`, `${action} *`, `* ${delayId}`, `* *`]) {
      const s = this.#sticky.get(key);
      if (s) return s;
    }
    return undefined;
  }

  /** Handles a request if its path is a delayed-event call; otherwise undefined. */
  async handle(req: Request): Promise<Response | undefined> {
    const url = new URL(req.url);
    const m = PATH.exec(url.pathname);
    if (!m) return undefined;
    const [, prefix, segment, action] = m as unknown as [string, string, string, string];
    let delayId: string;
    try {
      delayId = decodeURIComponent(segment);
    } catch {
      delayId = segment;
    }
    const body = await req.text();
    this.calls.push({
      delayId,
      rawSegment: segment,
      action,
      method: req.method,
      prefix,
      query: url.search,
      headers: req.headers,
      body,
      at: performance.now(),
    });
    const scripted = this.#next(delayId, action);
    if (scripted?.delayMs) await new Promise((r) => setTimeout(r, scripted.delayMs));
    const status = scripted?.status ?? 200;
    return new Response(status === 204 ? null : scripted?.body ?? "{}", {
      status,
      headers: { "Content-Type": "application/json", ...scripted?.headers },
    });
  }
}

/** A running {@linkcode FakeDelayedEvents} server. */
export interface DelayedEventsServer {
  readonly fake: FakeDelayedEvents;
  /** `http://127.0.0.1:<port>` (use as CS API base URL). */
  readonly url: string;
  close(): Promise<void>;
}

/** Serves a fake on 127.0.0.1:0; unknown paths get a Matrix `404 M_UNRECOGNIZED`. */
export function serveDelayedEvents(fake = new FakeDelayedEvents()): DelayedEventsServer {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const res = await fake.handle(req);
    if (res) return res;
    await req.body?.cancel();
    return new Response('{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}', {
      status: 404,
      headers: { "Content-Type": "application/json" },
    });
  });
  return {
    fake,
    url: `http://127.0.0.1:${server.addr.port}`,
    close: () => server.shutdown(),
  };
}
