/**
 * Settings of several replicas on one Redis and of Redis Sentinel (replicas.md §1 R6–R8, §2):
 * `LIVEKIT_REPLICAS`, `LIVEKIT_REPLICA_ID`, `LIVEKIT_REPLICA_TTL_MS`, `LIVEKIT_REDIS_SENTINELS`,
 * `LIVEKIT_REDIS_SENTINEL_MASTER` and `LIVEKIT_REDIS_PASSWORD`. Problems are reported in the
 * wording of configuration.md §5 (`<NAME> must be <expectation>, got "<value>"`).
 *
 * @module
 */
import { Secret } from "../ids.ts";
import { parseBoolean, parseInteger, parsePort, quote, splitList } from "./parse.ts";

/** Default liveness lease of a replica (replicas.md §2). */
export const DEFAULT_REPLICA_TTL_MS = 5_000;
/** Shortest lease: renewals every TTL/5 must stay well above Redis round trips. */
export const MIN_REPLICA_TTL_MS = 1_000;
/** Longest lease (ten minutes): longer would leave jobs of a dead replica unattended for long. */
export const MAX_REPLICA_TTL_MS = 600_000;
/** Port of a Sentinel address given without one (Redis Sentinel's default). */
export const DEFAULT_SENTINEL_PORT = 26379;

/** Replica ids: pod names (RFC 1123 labels) and host names fit; they appear in Redis keys. */
const REPLICA_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** One Sentinel address. */
export interface SentinelNode {
  host: string;
  port: number;
}

/** Redis behind Sentinel: where to ask, and the name of the monitored master. */
export interface RedisSentinelSettings {
  nodes: readonly SentinelNode[];
  master: string;
}

/** Replica mode (replicas.md §2). */
export interface ReplicaSettings {
  /** `LIVEKIT_REPLICA_ID`; undefined = a random id chosen at start. */
  id: string | undefined;
  /** `LIVEKIT_REPLICA_TTL_MS`. */
  ttlMs: number;
}

/** What {@linkcode parseReplicaSettings} returns. */
export interface ReplicaConfig {
  redisPassword: Secret<"redis_password"> | undefined;
  redisSentinel: RedisSentinelSettings | undefined;
  /** Undefined when `LIVEKIT_REPLICAS` is off: the single-instance behaviour (R6). */
  replica: ReplicaSettings | undefined;
}

function parseNode(piece: string): SentinelNode | undefined {
  let host = piece;
  let portText = "";
  if (piece.startsWith("[")) {
    const end = piece.indexOf("]");
    if (end < 2) return undefined;
    host = piece.slice(1, end);
    const rest = piece.slice(end + 1);
    if (rest !== "" && !rest.startsWith(":")) return undefined;
    portText = rest.slice(1);
  } else {
    const colon = piece.lastIndexOf(":");
    if (colon >= 0) {
      if (piece.indexOf(":") !== colon) return undefined;
      host = piece.slice(0, colon);
      portText = piece.slice(colon + 1);
    }
  }
  if (host === "" || /[\s/@?#]/.test(host)) return undefined;
  const port = portText === "" ? DEFAULT_SENTINEL_PORT : parsePort(portText);
  return port === undefined ? undefined : { host: host.toLowerCase(), port };
}

/** The valid addresses of a `LIVEKIT_REDIS_SENTINELS` value (invalid pieces skipped). */
export function parseSentinelNodes(raw: string): SentinelNode[] {
  return splitList(raw).map(parseNode).filter((n): n is SentinelNode => n !== undefined);
}

/**
 * Reads the replica and Sentinel settings.
 *
 * @param redisUrl `LIVEKIT_REDIS_URL` as given ("" when unset); Sentinel takes password,
 * database and TLS from it, so it must then be `redis://` or `rediss://`.
 */
export function parseReplicaSettings(
  env: (name: string) => string | undefined,
  options: { redisUrl: string; problems: string[] },
): ReplicaConfig {
  const { problems } = options;
  const get = (name: string) => env(name) ?? "";

  const rawPassword = get("LIVEKIT_REDIS_PASSWORD");
  const redisPassword = rawPassword === "" ? undefined : new Secret("redis_password", rawPassword);

  let redisSentinel: RedisSentinelSettings | undefined;
  const rawSentinels = get("LIVEKIT_REDIS_SENTINELS");
  const master = get("LIVEKIT_REDIS_SENTINEL_MASTER").trim();
  if (rawSentinels.trim() !== "") {
    const nodes: SentinelNode[] = [];
    for (const piece of splitList(rawSentinels)) {
      const node = parseNode(piece);
      if (node) nodes.push(node);
      else {
        problems.push(
          `LIVEKIT_REDIS_SENTINELS must be a list of host:port addresses, got ${quote(piece)}`,
        );
      }
    }
    if (master === "") {
      problems.push(
        `LIVEKIT_REDIS_SENTINEL_MASTER must be the name of the master the Sentinels monitor when LIVEKIT_REDIS_SENTINELS is set, got ""`,
      );
    }
    if (options.redisUrl !== "" && !/^rediss?:\/\//i.test(options.redisUrl)) {
      problems.push(
        `LIVEKIT_REDIS_URL must be a redis:// or rediss:// URL when LIVEKIT_REDIS_SENTINELS is set, got ${
          quote(options.redisUrl.replace(/^([a-z]+:\/\/).*$/is, "$1…"))
        }`,
      );
    }
    redisSentinel = { nodes, master };
  } else if (master !== "") {
    problems.push(
      `LIVEKIT_REDIS_SENTINELS must list the Sentinel addresses when LIVEKIT_REDIS_SENTINEL_MASTER is set, got ""`,
    );
  }

  const rawId = get("LIVEKIT_REPLICA_ID");
  let id: string | undefined;
  if (rawId !== "") {
    if (REPLICA_ID.test(rawId)) id = rawId;
    else {
      problems.push(
        `LIVEKIT_REPLICA_ID must be 1 to 128 letters, digits, ".", "_" or "-", got ${quote(rawId)}`,
      );
    }
  }
  let ttlMs = DEFAULT_REPLICA_TTL_MS;
  const rawTtl = get("LIVEKIT_REPLICA_TTL_MS");
  if (rawTtl !== "") {
    const n = parseInteger(rawTtl);
    if (n === undefined || n < MIN_REPLICA_TTL_MS || n > MAX_REPLICA_TTL_MS) {
      problems.push(
        `LIVEKIT_REPLICA_TTL_MS must be an integer between ${MIN_REPLICA_TTL_MS} and ${MAX_REPLICA_TTL_MS}, got ${
          quote(rawTtl)
        }`,
      );
    } else ttlMs = n;
  }

  let replica: ReplicaSettings | undefined;
  const rawReplicas = get("LIVEKIT_REPLICAS");
  if (rawReplicas !== "") {
    const on = parseBoolean(rawReplicas);
    if (on === undefined) {
      problems.push(`LIVEKIT_REPLICAS must be true or false, got ${quote(rawReplicas)}`);
    } else if (on && options.redisUrl === "" && !redisSentinel) {
      problems.push(
        `LIVEKIT_REPLICAS must be false while no Redis is configured (set LIVEKIT_REDIS_URL or LIVEKIT_REDIS_SENTINELS), got ${
          quote(rawReplicas)
        }`,
      );
    } else if (on) replica = { id, ttlMs };
  }
  return { redisPassword, redisSentinel, replica };
}
