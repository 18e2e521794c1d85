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
export {
  type ExplainOptions,
  explainPermissionError,
  isPermissionError,
} from "../permission_errors.ts";

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
