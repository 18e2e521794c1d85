/**
 * The names the service reads from its environment (configuration.md §2, §5, §6) and the
 * command-line form of each (configuration.md §1).
 *
 * @module
 */

/** Every environment variable the service reads (the launcher grants exactly these). */
export const CONFIG_VARIABLES = [
  "LIVEKIT_URL",
  "LIVEKIT_KEY",
  "LIVEKIT_SECRET",
  "LIVEKIT_KEY_FROM_FILE",
  "LIVEKIT_SECRET_FROM_FILE",
  "LIVEKIT_KEY_FILE",
  "LIVEKIT_SECRET_FILE",
  "LIVEKIT_FULL_ACCESS_HOMESERVERS",
  "LIVEKIT_LOCAL_HOMESERVERS",
  "LIVEKIT_JWT_BIND",
  "LIVEKIT_JWT_PORT",
  "LK_JWT_PORT",
  "LIVEKIT_INSECURE_SKIP_VERIFY_TLS",
  "LIVEKIT_LOG_LEVEL",
  "LIVEKIT_LOG_FORMAT",
  "LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS",
  "LIVEKIT_CS_API_URL_OVERRIDES",
  "LIVEKIT_FEDERATION_URL_OVERRIDES",
  "LIVEKIT_REDIS_URL",
  "LIVEKIT_REDIS_PASSWORD",
  "LIVEKIT_REDIS_SENTINELS",
  "LIVEKIT_REDIS_SENTINEL_MASTER",
  "LIVEKIT_REPLICAS",
  "LIVEKIT_REPLICA_ID",
  "LIVEKIT_REPLICA_TTL_MS",
  "LIVEKIT_JWT_VALIDITY_SECONDS",
  "LIVEKIT_RESTRICTED_SUBSCRIBE_ONLY",
  "LIVEKIT_MAX_JOBS_PER_USER",
  "LIVEKIT_MAX_JOBS",
  "LIVEKIT_RATE_LIMIT_IP_PER_SECOND",
  "LIVEKIT_RATE_LIMIT_IP_BURST",
  "LIVEKIT_TRUSTED_PROXIES",
  "LIVEKIT_RATE_LIMIT_SERVER_PER_SECOND",
  "LIVEKIT_RATE_LIMIT_SERVER_BURST",
  "LIVEKIT_RATE_LIMIT_USER_PER_SECOND",
  "LIVEKIT_RATE_LIMIT_USER_BURST",
  "LIVEKIT_OUTBOUND_ALLOW",
  "LIVEKIT_FULL_ACCESS_ONLY",
  "LIVEKIT_METRICS_BIND",
  "LIVEKIT_AS_REGISTRATION_FILE",
  "LIVEKIT_AS_TOKEN",
  "LIVEKIT_AS_TOKEN_FROM_FILE",
  "LIVEKIT_HS_TOKEN",
  "LIVEKIT_HS_TOKEN_FROM_FILE",
  "LIVEKIT_HS_SERVER_NAME",
  "LIVEKIT_AS_ID",
  "LIVEKIT_CAN_UPDATE_OWN_METADATA",
  "LIVEKIT_MEMBERSHIP_CHECK_INTERVAL_SECONDS",
  "SSL_CERT_FILE",
  "HTTPS_PROXY",
  "https_proxy",
  "HTTP_PROXY",
  "http_proxy",
  "NO_PROXY",
  "no_proxy",
] as const;

/** The command-line flag of a variable: lowercase, `_` → `-` (configuration.md §1). */
export function settingFlag(variable: string): string {
  return `--${variable.toLowerCase().replaceAll("_", "-")}`;
}

/**
 * Maps CLI flags (`--livekit-jwt-bind=:9000` or `--livekit-jwt-bind :9000`) onto variable
 * names; a flag wins over the variable (configuration.md §1).
 */
export function envWithFlags(
  args: readonly string[],
  env: (name: string) => string | undefined,
): { env: (name: string) => string | undefined; rest: string[] } {
  const flags = new Map<string, string>();
  const rest: string[] = [];
  const known = new Set<string>(CONFIG_VARIABLES);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/s.exec(arg);
    const name = m ? m[1]!.toUpperCase().replaceAll("-", "_") : "";
    if (!m || !known.has(name)) {
      rest.push(arg);
      continue;
    }
    let value = m[2];
    if (value === undefined) {
      value = args[i + 1] ?? "";
      i++;
    }
    flags.set(name, value);
  }
  return { env: (name) => flags.get(name) ?? env(name), rest };
}
