/**
 * Assembles the running service from a validated configuration: outbound clients, OpenID
 * verification, LiveKit, delegation, rate limits, the HTTP listener and the shutdown sequence
 * (configuration.md §7, http-api.md §1, delegation.md §12).
 *
 * @module
 */
import { systemClock } from "./clock.ts";
import type { Config, ConfigNote } from "./config/config.ts";
import type { Logger } from "./log.ts";
import { describeError } from "./log.ts";
import { createRateLimiter } from "./policy/rate_limit.ts";
import { createRoomService } from "./livekit/room_service.ts";
import { createRoomCreator } from "./livekit/rooms.ts";
import { createHandler } from "./http/router.ts";
import { probeBind, startServer } from "./http/server.ts";
import { createSystemResolver } from "./net/dns.ts";
import { createOutboundPolicy } from "./net/ssrf.ts";
import { createOutbound } from "./net/outbound.ts";
import { createFederationDiscovery } from "./matrix/federation.ts";
import { createOpenIdVerifier } from "./matrix/openid.ts";
import { createCsApiResolver } from "./matrix/cs_api.ts";
import { startDelegation } from "./delegation/setup.ts";
import { VERSION } from "./version.ts";
import { ServiceMetrics } from "./metrics/metrics.ts";
import { createReadiness } from "./http/readiness.ts";
import { startMetricsServer } from "./metrics/server.ts";
import { createHomeserverClient } from "./appservice/homeserver.ts";
import { type AppServiceRoutes, createAppServiceRoutes } from "./appservice/routes.ts";
import {
  ignoreMembershipEvents,
  type MembershipSink,
  noTokenTracking,
  type TokenTracker,
} from "./appservice/ports.ts";
import type { MembershipEnforcer } from "./membership/enforcer.ts";
import { startMembership } from "./membership/setup.ts";

/** Multi-line banners of configuration.md §7. */
export function startupBanners(config: Config): string[][] {
  const banners: string[][] = [];
  if (config.skipVerifyTls) {
    banners.push([
      "!!! WARNING: LIVEKIT_INSECURE_SKIP_VERIFY_TLS=YES_I_KNOW_WHAT_I_AM_DOING !!!",
      "!!! TLS certificates of homeservers, the LiveKit API and Redis are NOT verified. !!!",
      "!!! Use this only for testing and debugging. !!!",
    ]);
  }
  if (config.fullAccess.wildcard) {
    const suffix = config.fullAccess.defaulted ? " (default, variable not set)" : "";
    banners.push([
      `!!! WARNING: LIVEKIT_FULL_ACCESS_HOMESERVERS is "*"${suffix} !!!`,
      "!!! Users of every Matrix homeserver may create rooms on this SFU and delegate delayed events. !!!",
      "!!! Set it to the homeserver(s) you serve, e.g. LIVEKIT_FULL_ACCESS_HOMESERVERS=example.com !!!",
      "!!! Homeservers reachable only on private addresses must be listed explicitly. !!!",
    ]);
  }
  return banners;
}

/** A started service. */
export interface Service {
  readonly addr: Deno.NetAddr;
  /** Graceful shutdown; resolves when everything is stopped (bounded, < 10 s). */
  shutdown(): Promise<void>;
  readonly finished: Promise<void>;
}

/** Builds and starts everything; resolves once the listener accepts connections. */
export async function startService(
  config: Config,
  options: {
    log: Logger;
    notes: ConfigNote[];
    permissions?: string;
    /** On Deno Deploy the platform owns the listener: no address of ours is bound. */
    deploy?: boolean;
    /** App-service mode: where transaction events go (membership enforcement, §8). */
    membership?: MembershipSink;
    /** App-service mode: who learns about issued tokens (membership enforcement, §8). */
    tokens?: TokenTracker;
  },
): Promise<Service> {
  const { log } = options;
  const clock = systemClock;
  for (const note of options.notes) log[note.level](note.message);
  for (const banner of startupBanners(config)) for (const line of banner) log.warn(line);

  if (options.deploy) {
    log.warn(
      "Running on Deno Deploy: LIVEKIT_JWT_BIND is ignored, and delegated leave events are not reliable (idle instances stop); see README",
    );
  } else probeBind(config.bind);
  const metrics = new ServiceMetrics();

  const resolver = createSystemResolver({ clock, log });
  const outbound = createOutbound({
    policy: createOutboundPolicy(config),
    resolver,
    caCerts: config.extraCaCerts,
    log,
    clock,
  });
  const discovery = createFederationDiscovery({ outbound, resolver, clock, log, metrics });
  const verifier = createOpenIdVerifier({
    outbound,
    discovery,
    federationOverrides: config.federationOverrides,
    clock,
    log,
    metrics,
  });
  const csApi = createCsApiResolver({
    outbound,
    overrides: config.csApiOverrides,
    clock,
    log,
    metrics,
  });
  const roomService = createRoomService({
    apiBase: config.livekitApiBase,
    key: config.livekitKey,
    secret: config.livekitSecret,
    clock,
    log,
    caCerts: config.extraCaCerts,
    metrics,
  });
  let enforcer: MembershipEnforcer | undefined;
  const delegation = await startDelegation({
    config,
    outbound,
    csApi,
    lookup: roomService,
    clock,
    log,
    metrics,
    onWebhookEvent: (event) => enforcer?.webhook(event),
  });

  const now = () => clock.monotonic();
  let shuttingDown = false;
  const rooms = createRoomCreator(roomService, clock);
  let appService: AppServiceRoutes | undefined;
  let tokens: TokenTracker | undefined;
  if (config.appService) {
    const homeserver = createHomeserverClient({
      outbound,
      csApi,
      appService: config.appService,
      clock,
      log: log.child({ component: "homeserver" }),
      metrics,
    });
    if (!options.membership && !options.tokens) {
      enforcer = startMembership({
        config,
        appService: config.appService,
        homeserver,
        sfu: roomService,
        redis: delegation.redis,
        clock,
        log: log.child({ component: "membership" }),
        metrics,
      });
    }
    tokens = options.tokens ?? enforcer ?? noTokenTracking;
    appService = createAppServiceRoutes({
      config,
      appService: config.appService,
      clock,
      log: log.child({ component: "appservice" }),
      metrics,
      homeserver,
      rooms,
      delegation,
      membership: options.membership ?? enforcer ?? ignoreMembershipEvents,
      tokens,
      shuttingDown: () => shuttingDown,
    });
  }
  const handler = createHandler({
    config,
    clock,
    log,
    verifier,
    csApi,
    rooms,
    delegation,
    limits: {
      ip: createRateLimiter(config.rateLimitIp, { now }),
      server: createRateLimiter(config.rateLimitServer, { now }),
      user: createRateLimiter(config.rateLimitUser, { now }),
    },
    shuttingDown: () => shuttingDown,
    metrics,
    appService,
    tokens,
  }, {
    "/readyz": createReadiness({
      clock,
      livekit: roomService,
      delegation: () => delegation.status(),
    }),
  });

  log.info("Starting service", {
    version: VERSION,
    LIVEKIT_URL: config.livekitUrl,
    LIVEKIT_JWT_BIND: config.bind.text,
    LIVEKIT_FULL_ACCESS_HOMESERVERS: config.fullAccess.wildcard
      ? ["*", ...config.fullAccess.explicit].join(",")
      : [...config.fullAccess.explicit].join(","),
    SkipVerifyTLS: config.skipVerifyTls,
    SanityCheckInterval: config.sanityCheckIntervalMs === 0
      ? "disabled"
      : `${config.sanityCheckIntervalMs / 1000}s`,
    JwtValiditySeconds: config.jwtValiditySeconds,
    RestrictedSubscribeOnly: config.restrictedSubscribeOnly,
    MaxJobsPerUser: config.maxJobsPerUser,
    MaxJobs: config.maxJobs,
    Redis: config.redisSentinel
      ? `sentinel master ${config.redisSentinel.master}`
      : config.redisUrl
      ? "configured"
      : "in-memory",
    AppService: config.appService
      ? `${config.appService.serverName} (tokens from ${config.appService.source})`
      : "off",
    CanUpdateOwnMetadata: config.appService ? config.appService.canUpdateOwnMetadata : undefined,
    MembershipCheckInterval: !config.appService
      ? undefined
      : config.appService.membershipCheckIntervalMs === 0
      ? "disabled"
      : `${config.appService.membershipCheckIntervalMs / 1000}s`,
    Replica: config.replica
      ? `${delegation.status().replica?.id} (TTL ${config.replica.ttlMs} ms)`
      : "off (single instance)",
    permissions: options.permissions,
  });
  const server = startServer({ bind: options.deploy ? undefined : config.bind, handler, log });
  log.info("Listening", { address: `${server.addr.hostname}:${server.addr.port}` });
  const metricsServer = config.metricsBind
    ? startMetricsServer({
      bind: config.metricsBind,
      metrics,
      log,
      beforeRender: () => {
        metrics.jobs.reset();
        for (const [state, n] of Object.entries(delegation.status().byState)) {
          metrics.jobs.set({ state }, n);
        }
      },
    })
    : undefined;

  let stopping: Promise<void> | undefined;
  return {
    addr: server.addr,
    finished: server.finished,
    shutdown() {
      stopping ??= (async () => {
        shuttingDown = true;
        log.info("Shutting down");
        await server.drain();
        await metricsServer?.shutdown();
        try {
          await enforcer?.shutdown();
        } catch (err) {
          log.error("membership enforcement shutdown failed", { err: describeError(err) });
        }
        try {
          await delegation.shutdown();
        } catch (err) {
          log.error("delegation shutdown failed", { err: describeError(err) });
        }
        roomService.close();
        await outbound.close();
        log.info("Stopped");
      })();
      return stopping;
    },
  };
}
