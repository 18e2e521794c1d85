/**
 * Configuration from the environment (configuration.md). {@linkcode loadConfig} reads every
 * setting through an injected lookup, reports every problem at once in the order of
 * configuration.md §1 and returns a frozen {@linkcode Config} plus the warnings to log.
 *
 * @module
 */
import { Secret } from "../ids.ts";
import type { LogLevel } from "../log.ts";
import type { Cidr } from "../net/ip.ts";
import {
  type BindAddress,
  parseBind,
  parseBoolean,
  parseDecimal,
  parseInteger,
  parseOverrides,
  quote,
} from "./parse.ts";
import { missingKeyLines, resolveKeys } from "./keys.ts";
import { type AppServiceConfig, parseAppService, type YamlParser } from "./app_service.ts";
import { parseReplicaSettings, type ReplicaConfig } from "./replicas.ts";
import {
  errorText,
  maskRedisUrl,
  parseBindSettings,
  parseCidrList,
  parseFullAccess,
  parseOutboundAllow,
  redisUrlProblem,
} from "./settings.ts";

export { errorText, maskRedisUrl, redisUrlProblem } from "./settings.ts";
export { CONFIG_VARIABLES, envWithFlags } from "./variables.ts";
export type { AppServiceConfig } from "./app_service.ts";
export type { RedisSentinelSettings, ReplicaSettings } from "./replicas.ts";

/** Exact value that enables `LIVEKIT_INSECURE_SKIP_VERIFY_TLS` (D11). */
export const SKIP_VERIFY_VALUE = "YES_I_KNOW_WHAT_I_AM_DOING";

/** A token-bucket setting; `perSecond` 0 disables the bucket (http-api.md §10). */
export interface RateLimit {
  perSecond: number;
  burst: number;
}

/** Who counts as a full-access user (tokens-and-rooms.md §5). */
export interface FullAccess {
  /** `*` appears in the list (or the list is defaulted). */
  wildcard: boolean;
  /** Names listed literally (not via `*`): exempt from the server rate limit and SSRF ranges. */
  explicit: ReadonlySet<string>;
  /** True when the variable was unset or empty and `*` was assumed (D2). */
  defaulted: boolean;
}

/** Settings of the service, validated. */
export interface Config {
  /** `LIVEKIT_URL` verbatim: returned to clients as `url`. */
  livekitUrl: string;
  /** RoomService base: scheme ws→http / wss→https, path kept, no trailing `/`. */
  livekitApiBase: string;
  livekitKey: string;
  livekitSecret: Secret<"livekit_secret">;
  fullAccess: FullAccess;
  /** The listen address and its text for logs. */
  bind: BindAddress & { text: string };
  skipVerifyTls: boolean;
  logLevel: LogLevel;
  logFormat: "text" | "json";
  /** Phase-2 presence check period; 0 disables (D15). */
  sanityCheckIntervalMs: number;
  csApiOverrides: ReadonlyMap<string, string>;
  federationOverrides: ReadonlyMap<string, string>;
  redisUrl: Secret<"redis_url"> | undefined;
  /** `LIVEKIT_REDIS_PASSWORD`: replaces the password of the Redis URL (replicas.md R8). */
  redisPassword: ReplicaConfig["redisPassword"];
  /** `LIVEKIT_REDIS_SENTINELS` + `LIVEKIT_REDIS_SENTINEL_MASTER` (replicas.md R8). */
  redisSentinel: ReplicaConfig["redisSentinel"];
  /** Replica mode (`LIVEKIT_REPLICAS=true`, replicas.md §2); undefined = single instance. */
  replica: ReplicaConfig["replica"];
  jwtValiditySeconds: number;
  restrictedSubscribeOnly: boolean;
  maxJobsPerUser: number;
  maxJobs: number;
  rateLimitIp: RateLimit;
  rateLimitServer: RateLimit;
  rateLimitUser: RateLimit;
  trustedProxies: readonly Cidr[];
  outboundAllow: { cidrs: readonly Cidr[]; hosts: ReadonlySet<string> };
  /** Serve users of the full-access homeservers only (`LIVEKIT_FULL_ACCESS_ONLY`). */
  fullAccessOnly: boolean;
  /** Separate Prometheus listener (`LIVEKIT_METRICS_BIND`), unset = off. */
  metricsBind: (BindAddress & { text: string }) | undefined;
  /** Extra trust roots from `SSL_CERT_FILE` (PEM text). */
  extraCaCerts: readonly string[];
  /** App-service mode (app-service.md §2); undefined = standalone endpoints only. */
  appService: AppServiceConfig | undefined;
}

/** A log line produced while loading, printed once the logger exists. */
export interface ConfigNote {
  level: LogLevel;
  message: string;
}

/** All configuration problems; each message is printed on its own line. */
export class ConfigError extends AggregateError {
  constructor(readonly problems: string[]) {
    super(problems, problems.join("\n"));
    this.name = "ConfigError";
  }
}

/** What {@linkcode loadConfig} needs from the outside world. */
export interface ConfigSources {
  env: (name: string) => string | undefined;
  readTextFile: (path: string) => string;
  /** YAML parser for `LIVEKIT_AS_REGISTRATION_FILE` (see `loadYamlParser`). */
  parseYaml?: YamlParser;
}

const DEFAULT_TRUSTED_PROXIES =
  "127.0.0.0/8, ::1/128, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7";

function httpBaseFromLiveKitUrl(url: URL): string {
  const scheme = url.protocol === "wss:" || url.protocol === "https:" ? "https:" : "http:";
  const path = url.pathname.replace(/\/+$/, "");
  return `${scheme}//${url.host}${path}`;
}

/**
 * Reads and validates every setting.
 *
 * @throws {ConfigError} listing every problem, in configuration.md order.
 */
export function loadConfig(sources: ConfigSources): { config: Config; notes: ConfigNote[] } {
  const { env } = sources;
  const problems: string[] = [];
  const notes: ConfigNote[] = [];
  const get = (name: string): string => env(name) ?? "";

  // Log level first: it decides what the notes below look like.
  let logLevel: LogLevel = "info";
  const rawLevel = get("LIVEKIT_LOG_LEVEL");
  if (rawLevel === "") notes.push({ level: "info", message: "log level defaulting to info" });
  else {
    const l = rawLevel.toLowerCase();
    if (l === "debug" || l === "info" || l === "warn" || l === "error") logLevel = l;
    else if (l === "warning") logLevel = "warn";
    else {
      notes.push({
        level: "warn",
        message: `Invalid log level in LIVEKIT_LOG_LEVEL, defaulting to info: ${quote(rawLevel)}`,
      });
    }
  }
  let logFormat: "text" | "json" = "text";
  const rawFormat = get("LIVEKIT_LOG_FORMAT").toLowerCase();
  if (rawFormat === "json") logFormat = "json";
  else if (rawFormat !== "" && rawFormat !== "text") {
    problems.push(
      `LIVEKIT_LOG_FORMAT must be text or json, got ${quote(get("LIVEKIT_LOG_FORMAT"))}`,
    );
  }

  // 1. Key, secret, URL.
  const keys = resolveKeys(sources, notes);
  const livekitUrl = get("LIVEKIT_URL");
  let livekitApiBase = "";
  if (keys.problem) problems.push(keys.problem);
  else if (keys.key === "" || keys.secret === "" || livekitUrl === "") {
    // The reference implementation's text, then what exactly is missing.
    problems.push("LIVEKIT_KEY* / LIVEKIT_SECRET* and LIVEKIT_URL must be set");
    problems.push(...missingKeyLines(keys, livekitUrl, env));
  }
  if (livekitUrl !== "") {
    let parsed: URL | undefined;
    try {
      parsed = new URL(livekitUrl);
    } catch {
      parsed = undefined;
    }
    if (
      !parsed || !["ws:", "wss:", "http:", "https:"].includes(parsed.protocol) || parsed.host === ""
    ) {
      problems.push(
        `LIVEKIT_URL must be a ws://, wss://, http:// or https:// URL, got ${quote(livekitUrl)}`,
      );
    } else livekitApiBase = httpBaseFromLiveKitUrl(parsed);
  }

  // 2. Full-access homeservers (D2).
  const fullAccess = parseFullAccess(env, problems, notes);

  // 3. Bind address and port.
  const bind = parseBindSettings(env, problems, notes);

  // 4. Sanity-check interval (D15).
  let sanityCheckIntervalMs = 30_000;
  const rawSanity = get("LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS");
  if (rawSanity !== "") {
    const n = parseInteger(rawSanity);
    if (n === undefined) {
      problems.push(
        `LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS must be a non-negative integer, got ${
          quote(rawSanity)
        }`,
      );
    } else sanityCheckIntervalMs = n * 1000;
  }

  // 5. Overrides.
  const cs = parseOverrides("LIVEKIT_CS_API_URL_OVERRIDES", get("LIVEKIT_CS_API_URL_OVERRIDES"));
  if (!cs.ok) problems.push(cs.error);
  const fed = parseOverrides(
    "LIVEKIT_FEDERATION_URL_OVERRIDES",
    get("LIVEKIT_FEDERATION_URL_OVERRIDES"),
  );
  if (!fed.ok) problems.push(fed.error);

  // Redis (delegation.md §10.3).
  const rawRedis = get("LIVEKIT_REDIS_URL");
  let redisUrl: Secret<"redis_url"> | undefined;
  // Replica and Sentinel settings are section-5 rows: their problems are listed after the others.
  const replicaProblems: string[] = [];
  const replicas = parseReplicaSettings(env, { redisUrl: rawRedis, problems: replicaProblems });
  if (rawRedis === "") {
    // With Sentinel alone: database 0, no TLS, password from LIVEKIT_REDIS_PASSWORD.
    if (!replicas.redisSentinel) {
      notes.push({ level: "warn", message: "LIVEKIT_REDIS_URL not set. Using in-memory store." });
    }
  } else {
    const cause = redisUrlProblem(rawRedis);
    if (cause) {
      problems.push(
        `Could not connect Redis store: store: invalid Redis URL ${
          quote(maskRedisUrl(rawRedis))
        }: ${cause}`,
      );
    } else redisUrl = new Secret("redis_url", rawRedis);
  }

  // Skip-verify (D11).
  const rawSkip = get("LIVEKIT_INSECURE_SKIP_VERIFY_TLS");
  const skipVerifyTls = rawSkip === SKIP_VERIFY_VALUE;
  if (rawSkip !== "" && !skipVerifyTls) {
    notes.push({
      level: "warn",
      message:
        "LIVEKIT_INSECURE_SKIP_VERIFY_TLS is set but not to YES_I_KNOW_WHAT_I_AM_DOING; TLS verification stays on",
    });
  }

  // Section 5: settings of this project.
  const int = (name: string, def: number, min: number, max: number, expectation: string) => {
    const raw = get(name);
    if (raw === "") return def;
    const n = parseInteger(raw);
    if (n === undefined || n < min || n > max) {
      problems.push(`${name} must be ${expectation}, got ${quote(raw)}`);
      return def;
    }
    return n;
  };
  const dec = (name: string, def: number) => {
    const raw = get(name);
    if (raw === "") return def;
    const n = parseDecimal(raw);
    if (n === undefined) {
      problems.push(`${name} must be a decimal number >= 0, got ${quote(raw)}`);
      return def;
    }
    return n;
  };
  const big = Number.MAX_SAFE_INTEGER;
  const jwtValiditySeconds = int(
    "LIVEKIT_JWT_VALIDITY_SECONDS",
    3600,
    60,
    86400,
    "an integer between 60 and 86400",
  );
  let restrictedSubscribeOnly = false;
  const rawSub = get("LIVEKIT_RESTRICTED_SUBSCRIBE_ONLY");
  if (rawSub !== "") {
    const b = parseBoolean(rawSub);
    if (b === undefined) {
      problems.push(
        `LIVEKIT_RESTRICTED_SUBSCRIBE_ONLY must be true or false, got ${quote(rawSub)}`,
      );
    } else restrictedSubscribeOnly = b;
  }
  const maxJobsPerUser = int("LIVEKIT_MAX_JOBS_PER_USER", 10, 1, big, "an integer >= 1");
  const maxJobs = int("LIVEKIT_MAX_JOBS", 10_000, 1, big, "an integer >= 1");
  const rateLimitIp = {
    perSecond: dec("LIVEKIT_RATE_LIMIT_IP_PER_SECOND", 50),
    burst: int("LIVEKIT_RATE_LIMIT_IP_BURST", 500, 1, big, "an integer >= 1"),
  };
  const trustedProxies = parseCidrList(
    "LIVEKIT_TRUSTED_PROXIES",
    env("LIVEKIT_TRUSTED_PROXIES") ?? DEFAULT_TRUSTED_PROXIES,
    problems,
  );
  const rateLimitServer = {
    perSecond: dec("LIVEKIT_RATE_LIMIT_SERVER_PER_SECOND", 50),
    burst: int("LIVEKIT_RATE_LIMIT_SERVER_BURST", 500, 1, big, "an integer >= 1"),
  };
  const rateLimitUser = {
    perSecond: dec("LIVEKIT_RATE_LIMIT_USER_PER_SECOND", 0.5),
    burst: int("LIVEKIT_RATE_LIMIT_USER_BURST", 10, 1, big, "an integer >= 1"),
  };
  const outboundAllow = parseOutboundAllow(get("LIVEKIT_OUTBOUND_ALLOW"), problems);
  let fullAccessOnly = false;
  const rawOnly = get("LIVEKIT_FULL_ACCESS_ONLY");
  if (rawOnly !== "") {
    const b = parseBoolean(rawOnly);
    if (b === undefined) {
      problems.push(`LIVEKIT_FULL_ACCESS_ONLY must be true or false, got ${quote(rawOnly)}`);
    } else if (b && (fullAccess.wildcard || fullAccess.explicit.size === 0)) {
      problems.push(
        `LIVEKIT_FULL_ACCESS_ONLY must be false while LIVEKIT_FULL_ACCESS_HOMESERVERS lets every homeserver in, got ${
          quote(rawOnly)
        }`,
      );
    } else fullAccessOnly = b;
  }
  let metricsBind: Config["metricsBind"];
  const rawMetrics = get("LIVEKIT_METRICS_BIND");
  if (rawMetrics !== "") {
    const b = parseBind(rawMetrics);
    if (!b) problems.push(`LIVEKIT_METRICS_BIND must be host:port, got ${quote(rawMetrics)}`);
    else metricsBind = { ...b, text: rawMetrics };
  }
  const extraCaCerts: string[] = [];
  const caFile = get("SSL_CERT_FILE");
  if (caFile !== "") {
    try {
      extraCaCerts.push(sources.readTextFile(caFile));
    } catch (err) {
      problems.push(`failed reading SSL_CERT_FILE ${quote(caFile)}: ${errorText(err)}`);
    }
  }

  // App-service mode (app-service.md §2).
  const appService = parseAppService(sources, problems, notes);

  problems.push(...replicaProblems);
  if (problems.length > 0) throw new ConfigError(problems);

  const config: Config = {
    livekitUrl,
    livekitApiBase,
    livekitKey: keys.key,
    livekitSecret: new Secret("livekit_secret", keys.secret),
    fullAccess,
    bind,
    skipVerifyTls,
    logLevel,
    logFormat,
    sanityCheckIntervalMs,
    csApiOverrides: cs.ok ? cs.value : new Map(),
    federationOverrides: fed.ok ? fed.value : new Map(),
    redisUrl,
    ...replicas,
    jwtValiditySeconds,
    restrictedSubscribeOnly,
    maxJobsPerUser,
    maxJobs,
    rateLimitIp,
    rateLimitServer,
    rateLimitUser,
    trustedProxies,
    outboundAllow,
    fullAccessOnly,
    metricsBind,
    extraCaCerts,
    appService,
  };
  return { config: Object.freeze(config), notes };
}
