/**
 * The service's metric families (Prometheus, exposed on `LIVEKIT_METRICS_BIND`). Modules receive
 * the one {@linkcode ServiceMetrics} instance through their options; tests read values back.
 *
 * Label values are always from small fixed sets (routes, outcomes, event names): never user IDs,
 * room names or server names, so series cannot be multiplied by clients.
 *
 * @module
 */
import { VERSION } from "../version.ts";
import { Counter, Gauge, Histogram, Registry } from "./registry.ts";

/** OpenID verification outcomes. */
export type OpenIdOutcome =
  | "ok"
  | "unknown_token"
  | "user_mismatch"
  | "unreachable"
  | "tls"
  | "timeout"
  | "bad_response"
  | "blocked";

/** All metric families of the service. */
export class ServiceMetrics {
  readonly registry = new Registry();

  readonly requests = this.registry.register(
    new Counter(
      "lk_jwt_http_requests_total",
      "HTTP requests by route and status.",
      [
        "route",
        "status",
      ] as const,
    ),
  );
  readonly requestDuration = this.registry.register(
    new Histogram(
      "lk_jwt_http_request_duration_seconds",
      "HTTP request latency by route.",
      [
        "route",
      ] as const,
    ),
  );
  readonly openid = this.registry.register(
    new Counter(
      "lk_jwt_openid_verifications_total",
      "OpenID verifications by outcome.",
      [
        "outcome",
      ] as const,
    ),
  );
  readonly openidCache = this.registry.register(
    new Counter(
      "lk_jwt_openid_cache_total",
      "OpenID verification cache lookups (hit, miss, coalesced).",
      ["result"] as const,
    ),
  );
  readonly discoveryCache = this.registry.register(
    new Counter(
      "lk_jwt_discovery_cache_total",
      "Discovery cache lookups by cache (well_known, cs_api) and result (hit, miss).",
      ["cache", "result"] as const,
    ),
  );
  readonly livekit = this.registry.register(
    new Counter(
      "lk_jwt_livekit_requests_total",
      "LiveKit RoomService calls by method and outcome.",
      [
        "method",
        "outcome",
      ] as const,
    ),
  );
  readonly livekitDuration = this.registry.register(
    new Histogram(
      "lk_jwt_livekit_request_duration_seconds",
      "LiveKit RoomService latency.",
      [
        "method",
      ] as const,
    ),
  );
  readonly jobs = this.registry.register(
    new Gauge("lk_jwt_delegation_jobs", "Live delegation jobs by state.", ["state"] as const),
  );
  readonly restarts = this.registry.register(
    new Counter(
      "lk_jwt_delegation_restarts_total",
      "Delayed-event restart attempts by outcome.",
      [
        "outcome",
      ] as const,
    ),
  );
  readonly sends = this.registry.register(
    new Counter(
      "lk_jwt_delegation_sends_total",
      "Delayed-event send attempts by outcome.",
      [
        "outcome",
      ] as const,
    ),
  );
  readonly retries = this.registry.register(
    new Counter("lk_jwt_delegation_retries_total", "Retries by action.", ["action"] as const),
  );
  readonly webhooks = this.registry.register(
    new Counter(
      "lk_jwt_webhooks_total",
      "SFU webhooks by event and verdict.",
      [
        "event",
        "verdict",
      ] as const,
    ),
  );
  readonly rateLimited = this.registry.register(
    new Counter(
      "lk_jwt_rate_limited_total",
      "Requests refused by a rate limit, by bucket.",
      [
        "bucket",
      ] as const,
    ),
  );
  readonly redisErrors = this.registry.register(
    new Counter(
      "lk_jwt_redis_errors_total",
      "Redis operations that failed, by operation.",
      [
        "op",
      ] as const,
    ),
  );
  readonly homeserverCalls = this.registry.register(
    new Counter(
      "lk_jwt_homeserver_requests_total",
      "App-service calls to the own homeserver by call (is_joined, delayed_event, fed_proxy, " +
        "whoami, ping) and outcome.",
      ["call", "outcome"] as const,
    ),
  );
  readonly homeserverDuration = this.registry.register(
    new Histogram(
      "lk_jwt_homeserver_request_duration_seconds",
      "Latency of app-service calls to the own homeserver.",
      ["call"] as const,
    ),
  );
  readonly isJoinedCache = this.registry.register(
    new Counter(
      "lk_jwt_is_joined_cache_total",
      "is_joined look-ups answered from the cache, joined to a running call, or asked.",
      ["result"] as const,
    ),
  );
  readonly appServiceTokens = this.registry.register(
    new Counter(
      "lk_jwt_appservice_tokens_total",
      "Tokens handed out in app-service mode: minted for a local user (local), minted for a " +
        "remote server's user (federation), relayed from a remote server (relayed).",
      ["kind"] as const,
    ),
  );
  readonly relays = this.registry.register(
    new Counter(
      "lk_jwt_appservice_relays_total",
      "Token requests relayed to remote servers through fed_proxy, by outcome.",
      ["outcome"] as const,
    ),
  );
  readonly transactions = this.registry.register(
    new Counter(
      "lk_jwt_appservice_transactions_total",
      "Homeserver transactions by result (processed, duplicate) and the events they carried.",
      ["result"] as const,
    ),
  );
  readonly replicaInfo = this.registry.register(
    new Gauge(
      "lk_jwt_replica_info",
      "Replica mode: this replica's id (always 1).",
      [
        "replica_id",
      ] as const,
    ),
  );
  readonly replicaLease = this.registry.register(
    new Gauge("lk_jwt_replica_lease_held", "Replica mode: 1 while the liveness lease is held.", []),
  );
  readonly replicaRenewals = this.registry.register(
    new Counter(
      "lk_jwt_replica_lease_renewals_total",
      "Replica mode: lease renewals by outcome (ok, reasserted, failed, conflict).",
      ["outcome"] as const,
    ),
  );
  readonly replicaJobsOwned = this.registry.register(
    new Gauge("lk_jwt_replica_jobs_owned", "Replica mode: jobs this replica drives.", []),
  );
  readonly replicaTakenOver = this.registry.register(
    new Counter(
      "lk_jwt_replica_jobs_taken_over_total",
      "Replica mode: jobs taken over from replicas whose lease expired.",
      [],
    ),
  );
  readonly replicaPeers = this.registry.register(
    new Gauge(
      "lk_jwt_replica_peers",
      "Replica mode: replicas with a live lease, this one included.",
      [],
    ),
  );
  readonly replicaForwarded = this.registry.register(
    new Counter(
      "lk_jwt_replica_signals_forwarded_total",
      "Replica mode: webhook signals for jobs not driven here, by outcome (appended, no_job, owner_here, failed).",
      ["outcome"] as const,
    ),
  );
  readonly replicaSignals = this.registry.register(
    new Counter(
      "lk_jwt_replica_signals_received_total",
      "Replica mode: signals read from this replica's stream, by kind (webhook, replaced, replayed).",
      ["kind"] as const,
    ),
  );
  readonly replicaSignalLatency = this.registry.register(
    new Histogram(
      "lk_jwt_replica_signal_latency_seconds",
      "Replica mode: from a webhook on another replica to its delivery to the job here.",
      [],
    ),
  );
  readonly membershipChecks = this.registry.register(
    new Counter(
      "lk_jwt_membership_checks_total",
      "Membership enforcement: is_joined checks by trigger (join, push, sweep) and result " +
        "(joined, not_joined, error).",
      ["source", "result"] as const,
    ),
  );
  readonly membershipRemovals = this.registry.register(
    new Counter(
      "lk_jwt_membership_removals_total",
      "Membership enforcement: participants removed from the SFU (RemoveParticipant) by reason " +
        "(join, push, sweep).",
      ["reason"] as const,
    ),
  );
  readonly membershipRoomsDeleted = this.registry.register(
    new Counter(
      "lk_jwt_membership_rooms_deleted_total",
      "Membership enforcement: LiveKit rooms deleted because the homeserver left the Matrix " +
        "room, by trigger (push, sweep).",
      ["reason"] as const,
    ),
  );
  readonly membershipFailures = this.registry.register(
    new Counter(
      "lk_jwt_membership_failures_total",
      "Membership enforcement: failed steps (is_joined, remove_participant, delete_room, " +
        "redis); nobody is removed on a failed check.",
      ["op"] as const,
    ),
  );
  readonly membershipTracked = this.registry.register(
    new Gauge(
      "lk_jwt_membership_tracked",
      "Membership enforcement: tracked participants by state (waiting, connected).",
      ["state"] as const,
    ),
  );
  readonly buildInfo = this.registry.register(
    new Gauge("lk_jwt_build_info", "Build information (always 1).", ["version"] as const),
  );
  readonly rss = this.registry.register(
    new Gauge("lk_jwt_process_resident_memory_bytes", "Resident memory of the process.", []),
  );

  constructor() {
    this.buildInfo.set({ version: VERSION }, 1);
    this.rss.collect = (g) => g.set(undefined, Deno.memoryUsage().rss);
  }

  /** Prometheus text exposition. */
  render(): string {
    return this.registry.render();
  }
}
