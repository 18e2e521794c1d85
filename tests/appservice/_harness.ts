/**
 * The request handler in app-service mode, in process, with the real app-service routes and
 * homeserver client talking HTTP to a fake Synapse ({@linkcode startFakeSynapseAs}); room
 * creation and job registration are recorded by the harness of `tests/support/app.ts`.
 *
 * @module
 */
import { createHomeserverClient } from "../../lib/appservice/homeserver.ts";
import { createAppServiceRoutes } from "../../lib/appservice/routes.ts";
import type { IssuedToken, TransactionEvent } from "../../lib/appservice/ports.ts";
import { type AppOptions, testApp } from "../support/app.ts";
import { captureLogger, fetchOutbound, type LogLine, StubCsApi } from "../delegation/support.ts";
import { type FakeSynapseAs, startFakeSynapseAs } from "../fakes/synapse_as.ts";

/** The SFU URL of the harness (`LIVEKIT_URL`). */
export const SFU_URL = "wss://sfu.example.com";

/** A running harness. */
export interface AsHarness {
  hs: FakeSynapseAs;
  app: ReturnType<typeof testApp>;
  lines: LogLine[];
  issued: IssuedToken[];
  events: TransactionEvent[][];
  /** POSTs like Synapse's proxy (hs_token and identity headers unless overridden). */
  send(
    path: string,
    body: unknown,
    options?: { user?: string | null; origin?: string; token?: string | null; method?: string },
  ): Promise<{ status: number; json: Record<string, unknown>; text: string; res: Response }>;
  close(): Promise<void>;
}

/** Starts the harness; `env` adds to the app-service settings. */
export function asHarness(
  env: Record<string, string> = {},
  options: Omit<AppOptions, "env" | "appService"> = {},
): AsHarness {
  const hs = startFakeSynapseAs();
  const lines: LogLine[] = [];
  const log = captureLogger(lines);
  const outbound = fetchOutbound();
  const issued: IssuedToken[] = [];
  const events: TransactionEvent[][] = [];
  const app = testApp({
    ...options,
    env: {
      LIVEKIT_URL: SFU_URL,
      LIVEKIT_AS_TOKEN: hs.asToken,
      LIVEKIT_HS_TOKEN: hs.hsToken,
      LIVEKIT_HS_SERVER_NAME: hs.serverName,
      ...env,
    },
    appService: (parts) =>
      createAppServiceRoutes({
        config: parts.config,
        appService: parts.config.appService!,
        clock: parts.clock,
        log,
        metrics: parts.metrics,
        homeserver: createHomeserverClient({
          outbound,
          csApi: new StubCsApi(hs.url),
          appService: parts.config.appService!,
          clock: parts.clock,
          log,
          metrics: parts.metrics,
        }),
        rooms: parts.rooms,
        delegation: parts.delegation,
        membership: {
          handleEvents(batch) {
            events.push([...batch]);
            return Promise.resolve();
          },
        },
        tokens: { tokenIssued: (t) => void issued.push(t) },
        shuttingDown: () => false,
      }),
  });
  return {
    hs,
    app,
    lines,
    issued,
    events,
    async send(path, body, opts = {}) {
      const headers: Record<string, string> = { "Content-Type": "application/json" };
      const token = opts.token === undefined ? hs.hsToken : opts.token;
      if (token !== null) headers.Authorization = `Bearer ${token}`;
      const user = opts.user === undefined ? `@alice:${hs.serverName}` : opts.user;
      if (user !== null && opts.origin === undefined) headers["X-Matrix-User-Identifier"] = user;
      if (opts.origin !== undefined) headers["X-Matrix-Origin"] = opts.origin;
      const res = await app.call(path, {
        method: opts.method ?? "POST",
        headers,
        body: body === undefined
          ? undefined
          : typeof body === "string"
          ? body
          : JSON.stringify(body),
      });
      const text = await res.clone().text();
      let json: Record<string, unknown> = {};
      try {
        json = text === "" ? {} : JSON.parse(text);
      } catch {
        json = {};
      }
      return { status: res.status, json, text, res };
    },
    async close() {
      await outbound.close();
      await hs.close();
    },
  };
}

/** The decoded payload of a JWT. */
export function claimsOf(jwt: string): Record<string, unknown> {
  const part = jwt.split(".")[1]!;
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(
    atob(part.replace(/-/g, "+").replace(/_/g, "/")),
    (c) => c.charCodeAt(0),
  )));
}

/** Paths of app-service.md §4. */
export const PATHS = {
  csToken: "/_matrix/client/v1/rtc/livekit/get_token",
  csTokenUnstable: "/_matrix/client/unstable/io.element.msc4195/rtc/livekit/get_token",
  ssToken: "/_matrix/federation/v1/rtc/livekit/get_token",
  ssTokenUnstable: "/_matrix/federation/unstable/io.element.msc4195/rtc/livekit/get_token",
  delegate: "/_matrix/client/v1/rtc/livekit/delegate_delayed_leave",
  delegateUnstable:
    "/_matrix/client/unstable/io.element.msc4195/rtc/livekit/delegate_delayed_leave",
  ping: "/_matrix/app/v1/ping",
} as const;

/** A valid C-S token request body. */
export function tokenBody(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    url: SFU_URL,
    room_id: "!room:hs.test",
    slot_id: "m.call#ROOM",
    member_id: "member-1",
    ...extra,
  };
}
