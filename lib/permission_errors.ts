/**
 * Turns refusals by Deno's permission system (`NotCapable`, also when wrapped as the cause of a
 * failed `fetch`) into sentences naming the setting to change, so an operator never has to
 * decode a bare "Requires net access" stack trace.
 *
 * @module
 */

const REQUIRES = /Requires (\w+) access to "([^"]*)"/;

function findRequirement(err: unknown): { kind: string; target: string } | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 8 && current !== undefined && current !== null; depth++) {
    const message = current instanceof Error ? current.message : String(current);
    const m = REQUIRES.exec(message);
    if (m) return { kind: m[1] ?? "", target: m[2] ?? "" };
    current = current instanceof Error ? current.cause : undefined;
  }
  return undefined;
}

/** Whether `err` (or its cause chain) is a refusal by the process permissions. */
export function isPermissionError(err: unknown): boolean {
  return err instanceof Deno.errors.NotCapable || findRequirement(err) !== undefined;
}

/** Options of {@linkcode explainPermissionError}. */
export interface ExplainOptions {
  /** What the refused network access was for, when the caller knows. */
  purpose?: "connect" | "listen";
}

const DESTINATION_SETTINGS = "LIVEKIT_URL, LIVEKIT_REDIS_URL, LIVEKIT_FULL_ACCESS_HOMESERVERS " +
  "(names listed explicitly), LIVEKIT_CS_API_URL_OVERRIDES, LIVEKIT_FEDERATION_URL_OVERRIDES " +
  "and LIVEKIT_OUTBOUND_ALLOW";

function explainNet(target: string, purpose: ExplainOptions["purpose"]): string {
  if (target.startsWith("unix:")) {
    return `connecting to the unix socket ${target.slice(5)} was refused by the process ` +
      "permissions: set it in LIVEKIT_REDIS_URL (unix://<path>) and start the service " +
      "through bin/lk-jwt-service";
  }
  const wildcard = /^(?:0\.0\.0\.0|\[::\]):/.test(target);
  if (purpose === "listen" || (purpose === undefined && wildcard)) {
    return `listening on ${target} was refused by the process permissions: set the address in ` +
      "LIVEKIT_JWT_BIND (or LIVEKIT_METRICS_BIND) and start the service through " +
      "bin/lk-jwt-service, which grants the configured listen addresses";
  }
  return `network access to ${target} was refused by the process permissions: private, ` +
    `loopback and link-local addresses are reachable only when configured (${DESTINATION_SETTINGS}` +
    `, resolved at startup); add this address or its host name to LIVEKIT_OUTBOUND_ALLOW and ` +
    "restart the service";
}

/**
 * Turns a permission refusal (`Deno.errors.NotCapable`, also when wrapped as the cause of a
 * `fetch` `TypeError`) into a sentence naming the setting to change. Returns undefined for
 * any other error.
 */
export function explainPermissionError(
  err: unknown,
  options: ExplainOptions = {},
): string | undefined {
  const req = findRequirement(err);
  if (!req) return undefined;
  const { kind, target } = req;
  switch (kind) {
    case "net":
      return explainNet(target, options.purpose);
    case "read":
      return `reading ${JSON.stringify(target)} was refused by the process permissions: only ` +
        "the files named in LIVEKIT_KEY_FILE, LIVEKIT_KEY_FROM_FILE, LIVEKIT_SECRET_FROM_FILE, " +
        "LIVEKIT_SECRET_FILE and SSL_CERT_FILE are granted; name the file there and start the " +
        "service through bin/lk-jwt-service";
    case "write":
      return `writing ${JSON.stringify(target)} was refused by the process permissions: the ` +
        "service writes nothing to disk (a unix socket in LIVEKIT_REDIS_URL is the only " +
        "exception)";
    case "env":
      return `reading the environment variable ${target} was refused by the process ` +
        "permissions: the service reads only the variables listed in configuration.md";
    default:
      return `${kind} access to ${JSON.stringify(target)} was refused by the process ` +
        `permissions: the service runs without ${kind} permission; start it through ` +
        "bin/lk-jwt-service, which grants what the configuration needs";
  }
}
