/**
 * In-process application harness: builds the real request handler with recording stand-ins for
 * OpenID verification, CS API discovery, room creation and delegation, so the validation order
 * of http-api.md can be checked without sockets.
 *
 * @module
 */
import { loadConfig } from "../../lib/config/config.ts";
import { createHandler, type ExtraRoutes } from "../../lib/http/router.ts";
import type { AppDeps, DelegationRequest } from "../../lib/http/ports.ts";
import { type LiveKitRoomAlias, userId } from "../../lib/ids.ts";
import { silentLogger } from "../../lib/log.ts";
import { createRateLimiter } from "../../lib/policy/rate_limit.ts";
import { ApiError } from "../../lib/http/errors.ts";
import { ManualClock } from "./manual_clock.ts";
import { ServiceMetrics } from "../../lib/metrics/metrics.ts";

/** What the stand-ins saw. */
export interface Recorded {
  verifications: Array<{ server: string; token: string }>;
  csApi: string[];
  rooms: LiveKitRoomAlias[];
  jobs: DelegationRequest[];
}

/** Knobs of the stand-ins. */
export interface AppOptions {
  env?: Record<string, string>;
  /** access token → verified user; anything else fails verification. */
  users?: Record<string, string>;
  csApiFails?: boolean;
  createRoomFails?: boolean;
  registerError?: ApiError;
  shuttingDown?: boolean;
  extra?: ExtraRoutes;
  /** Learns about standalone tokens for users of `LIVEKIT_HS_SERVER_NAME` (app-service.md §8). */
  tokens?: AppDeps["tokens"];
  /** App-service routes built from the harness's own stand-ins (app-service.md). */
  appService?: (
    parts: Pick<AppDeps, "config" | "clock" | "metrics" | "rooms" | "delegation">,
  ) => AppDeps["appService"];
}

/** A handler plus a `call` helper. */
export interface TestApp {
  recorded: Recorded;
  metrics: ServiceMetrics;
  clock: ManualClock;
  call(path: string, init?: RequestInit & { peer?: string }): Promise<Response>;
  post(path: string, body: unknown): Promise<Response>;
}

/** Builds the application with stand-ins. */
export function testApp(options: AppOptions = {}): TestApp {
  const env: Record<string, string> = {
    LIVEKIT_URL: "wss://sfu.example.com",
    LIVEKIT_KEY: "devkey",
    LIVEKIT_SECRET: "devsecret-devsecret-devsecret-devsecret",
    LIVEKIT_FULL_ACCESS_HOMESERVERS: "example.com",
    ...options.env,
  };
  const { config } = loadConfig({ env: (n) => env[n], readTextFile: () => "" });
  const clock = new ManualClock();
  const recorded: Recorded = { verifications: [], csApi: [], rooms: [], jobs: [] };
  const users = options.users ?? {
    "wxyzOPENID": "@alice:example.com",
    "bobtoken": "@bob:other.org",
  };
  const now = () => clock.monotonic();
  const metrics = new ServiceMetrics();
  const deps: AppDeps = {
    config,
    clock,
    log: silentLogger,
    verifier: {
      verify({ serverName, accessToken }) {
        recorded.verifications.push({ server: serverName, token: accessToken.reveal() });
        const sub = users[accessToken.reveal()];
        if (!sub || sub.slice(sub.indexOf(":") + 1) !== serverName) {
          return Promise.reject(new Error("unknown token"));
        }
        return Promise.resolve(userId(sub));
      },
    },
    csApi: {
      resolve(server) {
        recorded.csApi.push(server);
        return Promise.resolve(
          options.csApiFails ? undefined : { baseUrl: "https://matrix.example.com", guarded: true },
        );
      },
    },
    rooms: {
      ensureRoom(room) {
        recorded.rooms.push(room);
        return options.createRoomFails
          ? Promise.reject(new Error("CreateRoom answered HTTP 502"))
          : Promise.resolve({ shared: false });
      },
    },
    delegation: {
      register(req) {
        if (options.registerError) return Promise.reject(options.registerError);
        recorded.jobs.push(req);
        return Promise.resolve();
      },
      handleWebhook: () => Promise.resolve(new Response(null, { status: 200 })),
    },
    limits: {
      ip: createRateLimiter(config.rateLimitIp, { now }),
      server: createRateLimiter(config.rateLimitServer, { now }),
      user: createRateLimiter(config.rateLimitUser, { now }),
    },
    shuttingDown: () => options.shuttingDown ?? false,
    metrics,
    tokens: options.tokens,
  };
  deps.appService = options.appService?.(deps);
  const handler = createHandler(deps, options.extra);
  async function call(path: string, init: RequestInit & { peer?: string } = {}) {
    const req = new Request(`http://service.test${path}`, init);
    return await handler(req, {
      remoteAddr: { transport: "tcp", hostname: init.peer ?? "203.0.113.9", port: 1234 },
      completed: Promise.resolve(),
    });
  }
  return {
    recorded,
    metrics,
    clock,
    call,
    post: (path, body) =>
      call(path, {
        method: "POST",
        body: typeof body === "string" ? body : JSON.stringify(body),
      }),
  };
}
