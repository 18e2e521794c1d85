/**
 * Run-time view of the process permissions: the one-line summary the service logs at startup,
 * the message that replaces a bare `NotCapable` stack trace (naming the setting to change),
 * and the narrowing step after the configuration has been read (configuration.md §6–§7,
 * deno-stack.md §4).
 *
 * Everything here queries `Deno.permissions`, so it describes what is really in force, however
 * the process was started (launcher, plain `deno run -A`, Deno Deploy).
 *
 * @module
 */
import { SERVICE_VARIABLES } from "../config/permissions.ts";

/** Specific grants to report next to the category summary. */
export interface PermissionProbes {
  /** Files the service reads (key, secret, CA files). */
  read?: readonly string[];
  /** Paths the service writes (a unix Redis socket). */
  write?: readonly string[];
  /** Destinations as `host` or `host:port` (SFU, Redis, listed homeservers, listen address). */
  net?: readonly string[];
}

type Category = "net" | "env" | "read" | "write" | "run" | "ffi" | "sys" | "import";

const CATEGORIES: readonly Category[] = [
  "net",
  "env",
  "read",
  "write",
  "run",
  "ffi",
  "sys",
  "import",
];

function state(descriptor: Deno.PermissionDescriptor): Deno.PermissionState {
  try {
    return Deno.permissions.querySync(descriptor).state;
  } catch {
    return "denied";
  }
}

/** Addresses the launcher always denies unless configured; one granted means no backstop. */
const BACKSTOP_PROBES = ["169.254.169.254", "10.0.0.1", "192.168.0.1"];

function netSummary(): string {
  const whole = state({ name: "net" });
  if (whole === "granted") {
    const denied = BACKSTOP_PROBES.filter((host) => state({ name: "net", host }) !== "granted");
    return denied.length === 0 ? "all" : "open outbound, special-purpose ranges denied";
  }
  return whole === "prompt" ? "host list" : "none";
}

function envSummary(): string {
  if (state({ name: "env" }) === "granted") return "all";
  const granted = SERVICE_VARIABLES.filter((variable) =>
    state({ name: "env", variable }) === "granted"
  );
  return granted.length === 0 ? "none" : `${granted.length} service variables`;
}

/**
 * One line describing the permissions in force, for the startup log (e.g. `net=open outbound,
 * special-purpose ranges denied env=41 service variables read=restricted …; read /run/key
 * granted`). Names files and hosts only, never values read from them.
 */
export function permissionsSummary(probes: PermissionProbes = {}): string {
  const parts: string[] = [];
  const all = CATEGORIES.every((name) => state({ name }) === "granted");
  if (all) parts.push("all granted (no restrictions)");
  else {
    for (const name of CATEGORIES) {
      if (name === "net") parts.push(`net=${netSummary()}`);
      else if (name === "env") parts.push(`env=${envSummary()}`);
      else {
        const whole = state({ name });
        // "prompt" (never asked: no TTY, DENO_NO_PROMPT) means at most explicitly listed entries.
        const label = whole === "granted" ? "all" : whole === "prompt" ? "restricted" : "none";
        parts.push(`${name}=${label}`);
      }
    }
  }
  const checks: string[] = [];
  for (const path of probes.read ?? []) {
    checks.push(`read ${path} ${state({ name: "read", path })}`);
  }
  for (const path of probes.write ?? []) {
    checks.push(`write ${path} ${state({ name: "write", path })}`);
  }
  for (const host of probes.net ?? []) checks.push(`net ${host} ${state({ name: "net", host })}`);
  const text = parts.join(" ");
  return checks.length === 0 ? text : `${text}; ${checks.join(", ")}`;
}

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

/** Options of {@linkcode revokeStartupPermissions}. */
export interface RevokeOptions {
  /** Files read only at startup (key and secret files): their read grants are dropped. */
  readPaths?: readonly string[];
  /**
   * Drop environment access. Only safe once nothing reads the environment any more; with
   * `--ignore-env` later reads then yield `undefined` instead of throwing.
   */
  env?: boolean;
}

/**
 * Narrows the permissions after the configuration is loaded (deno-stack.md §4). Grants that
 * were given wholesale (`-A`, Deno Deploy) are left alone: revoking those would make library
 * code that reads lazily throw. Returns what was revoked, for the log.
 */
export function revokeStartupPermissions(options: RevokeOptions): string[] {
  const revoked: string[] = [];
  if (state({ name: "read" }) !== "granted") {
    for (const path of options.readPaths ?? []) {
      if (state({ name: "read", path }) !== "granted") continue;
      Deno.permissions.revokeSync({ name: "read", path });
      revoked.push(`read ${path}`);
    }
  }
  if (options.env && state({ name: "env" }) !== "granted") {
    Deno.permissions.revokeSync({ name: "env" });
    revoked.push("env");
  }
  return revoked;
}
