/**
 * The launcher's first step: checks the command line, resolves the configured host names, reads
 * the name servers and prints the `deno run` permission flags of the command, one per line
 * (derivation in `lib/config/permissions.ts`; rules in configuration.md §6 and
 * openid-and-discovery.md §8).
 *
 * `bin/lk-jwt-service` runs this entry with narrow permissions of its own (configuration
 * variables, the resolver files, name look-ups but no IPv4 connections) and then replaces itself
 * with Deno running the command under the printed flags. Per command:
 *
 * - usage errors: printed to stderr, exit status 2, nothing is started;
 * - `help`, `version`: no permissions, no look-ups;
 * - `check-config --offline`: environment and key files, no network, no look-ups;
 * - `check-config`: the service's permissions plus the listen address's `/healthz` (the listen
 *   check asks a running instance there), look-up notes left to the checks;
 * - `healthcheck` (only used when an environment file is in play): the three bind variables
 *   and exactly the probed `host:port`;
 * - `serve`: the service's permissions; the environment file read (if any) and the names that
 *   did not resolve are logged once, at INFO, in the service's log format (other notes at
 *   WARN).
 *
 * Configuration errors are left to the service, which reports them with their exact texts.
 *
 * @module
 */
import { parseBoolean } from "../config/parse.ts";
import { lookup as dnsLookup } from "node:dns/promises";
import type { Clock } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { CONFIG_VARIABLES } from "../config/config.ts";
import {
  type Destination,
  hostsToResolve,
  parseResolvConf,
  permissionFlags,
  type PermissionPlan,
  RESOLVER_FILES,
} from "../config/permissions.ts";
import { createLogger, type LogLevel } from "../log.ts";
import { type CommandLine, parseCommandLine, withSettings } from "./args.ts";
import { healthcheckTarget } from "./healthcheck.ts";

/** Budget for all name look-ups together (openid-and-discovery.md §8.5: DNS 5 s). */
export const LOOKUP_BUDGET_MS = 5_000;

/** What {@linkcode computeFlags} needs from the outside world. */
export interface FlagsOptions {
  /** Command-line arguments of the service (`--livekit-…` flags win over variables). */
  args: readonly string[];
  env: (name: string) => string | undefined;
  /** Every address of a host name through the system resolver (`/etc/hosts` honoured). */
  lookup: (host: string) => Promise<string[]>;
  /** Text of a file, or throws. */
  readTextFile: (path: string) => string;
  /** Whether a file exists and can be read. */
  exists: (path: string) => boolean;
  clock?: Clock;
  /** Overall look-up budget; names still pending afterwards count as unresolved. */
  lookupBudgetMs?: number;
}

async function resolveAll(
  hosts: readonly string[],
  options: FlagsOptions,
): Promise<Map<string, string[]>> {
  const resolved = new Map<string, string[]>();
  const clock = options.clock ?? systemClock;
  let timer: { cancel(): void } | undefined;
  const budget = new Promise<void>((resolve) => {
    timer = clock.setTimer(options.lookupBudgetMs ?? LOOKUP_BUDGET_MS, resolve);
  });
  const lookups = Promise.all(hosts.map(async (host) => {
    try {
      const addresses = await options.lookup(host);
      resolved.set(host, addresses);
    } catch {
      // Unresolved names get no exemption; permissionFlags notes them.
    }
  }));
  try {
    await Promise.race([lookups, budget]);
  } finally {
    timer?.cancel();
  }
  return new Map(resolved);
}

/** The variables the healthcheck reads (configuration.md §8). */
const HEALTHCHECK_VARIABLES = ["LIVEKIT_JWT_BIND", "LIVEKIT_JWT_PORT", "LK_JWT_PORT"];

/** The `host:port` the healthcheck (and check-config's listen check) probes, if derivable. */
function healthProbe(env: (name: string) => string | undefined): Destination | undefined {
  const target = healthcheckTarget(env);
  if (!target.ok) return undefined;
  const url = new URL(target.url);
  const host = url.hostname.replace(/^\[|\]$/g, "");
  return { source: "listen check", host, port: Number(url.port) };
}

function healthcheckPlan(env: (name: string) => string | undefined): PermissionPlan {
  const flags = [`--allow-env=${HEALTHCHECK_VARIABLES.join(",")}`, "--ignore-env"];
  const target = healthcheckTarget(env);
  // A malformed address is reported by the healthcheck itself, without network access.
  if (target.ok) flags.push(`--allow-net=${new URL(target.url).host}`);
  return { flags, notes: [], unresolved: [] };
}

/**
 * Derives the permission flags of the command named by `options.args`.
 *
 * @throws {Error} on a usage error (callers check the command line first).
 */
export async function computeFlags(options: FlagsOptions): Promise<PermissionPlan> {
  const parsed = parseCommandLine(options.args);
  if (!parsed.ok) throw new Error(parsed.error);
  const line: CommandLine = parsed.line;
  const env = withSettings(line, options.env);
  switch (line.command) {
    case "help":
    case "version":
      return { flags: [], notes: [], unresolved: [] };
    case "healthcheck":
      return healthcheckPlan(env);
    default:
      break;
  }
  const resolverFiles = RESOLVER_FILES.filter((path) => options.exists(path));
  // Only listed homeservers are served: an exact host list replaces open outbound network.
  const strict = parseBoolean(env("LIVEKIT_FULL_ACCESS_ONLY") ?? "") === true;
  if (line.command === "check-config" && line.offline) {
    return permissionFlags({ env, resolverFiles, strict, offline: true });
  }
  const probe = line.command === "check-config" ? healthProbe(env) : undefined;
  const extraDestinations = probe ? [probe] : [];
  const resolved = await resolveAll(hostsToResolve(env, extraDestinations), options);
  let nameServers: string[] = [];
  try {
    nameServers = parseResolvConf(options.readTextFile("/etc/resolv.conf"));
  } catch {
    // No resolv.conf: no name servers to grant.
  }
  return permissionFlags({ env, resolved, nameServers, resolverFiles, strict, extraDestinations });
}

async function systemLookup(host: string): Promise<string[]> {
  const answers = await dnsLookup(host, { all: true, verbatim: true });
  return answers.map((a) => a.address);
}

function fileExists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

function envLookup(name: string): string | undefined {
  return (CONFIG_VARIABLES as readonly string[]).includes(name) ? Deno.env.get(name) : undefined;
}

function writeAllSync(file: { writeSync(p: Uint8Array): number }, text: string): void {
  let bytes = new TextEncoder().encode(text);
  while (bytes.length > 0) bytes = bytes.subarray(file.writeSync(bytes));
}

/**
 * Logs what the permissions could not express, in the service's own log format and level:
 * unresolved names once at INFO, other notes at WARN. Only `serve` logs them; the other
 * commands either need no network or check the destinations themselves.
 */
export function logPlanNotes(
  plan: PermissionPlan,
  env: (name: string) => string | undefined,
  options: { envFile?: string; write?: (line: string) => void } = {},
): void {
  const rawLevel = (env("LIVEKIT_LOG_LEVEL") ?? "").toLowerCase();
  const level: LogLevel = rawLevel === "debug" || rawLevel === "warn" || rawLevel === "error"
    ? rawLevel
    : rawLevel === "warning"
    ? "warn"
    : "info";
  const format = (env("LIVEKIT_LOG_FORMAT") ?? "").toLowerCase() === "json" ? "json" : "text";
  const log = createLogger({ level, format, write: options.write });
  if (options.envFile) {
    log.info("Read the environment file; variables set in the environment win over it", {
      path: options.envFile,
    });
  }
  if (plan.unresolved.length > 0) {
    log.info("Configured host names did not resolve; they get no exemption from --deny-net", {
      names: plan.unresolved.join(", "),
    });
  }
  for (const note of plan.notes) log.warn("Permission note", { note });
}

async function main(): Promise<number> {
  const parsed = parseCommandLine(Deno.args);
  if (!parsed.ok) {
    writeAllSync(Deno.stderr, `lk-jwt-service: ${parsed.error}\n`);
    return 2;
  }
  const plan = await computeFlags({
    args: Deno.args,
    env: envLookup,
    lookup: systemLookup,
    readTextFile: (path) => Deno.readTextFileSync(path),
    exists: fileExists,
  });
  if (parsed.line.command === "serve") {
    // The launcher names the file it handed to Deno's loader (its values are never logged).
    const envFile = Deno.env.get("LIVEKIT_ENV_FILE");
    logPlanNotes(plan, withSettings(parsed.line, envLookup), { envFile });
  }
  writeAllSync(Deno.stdout, plan.flags.map((f) => `${f}\n`).join(""));
  return 0;
}

if (import.meta.main) {
  // Exit explicitly: a system look-up that outlived its budget cannot be cancelled.
  Deno.exit(await main());
}
