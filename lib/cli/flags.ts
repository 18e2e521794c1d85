/**
 * The launcher's first step: resolves the configured host names, reads the name servers and
 * prints the service's `deno run` permission flags, one per line (derivation in
 * `lib/config/permissions.ts`; rules in configuration.md §6 and openid-and-discovery.md §8).
 *
 * `bin/lk-jwt-service` runs this entry with narrow permissions of its own (configuration
 * variables, the resolver files, name look-ups but no IPv4 connections) and then replaces itself
 * with Deno running the service under the printed flags. Notes (names that did not resolve,
 * paths that cannot be listed) go to stderr; configuration errors are left to the service,
 * which reports them with their exact texts.
 *
 * @module
 */
import { parseBoolean } from "../config/parse.ts";
import { lookup as dnsLookup } from "node:dns/promises";
import type { Clock } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { CONFIG_VARIABLES, envWithFlags } from "../config/config.ts";
import {
  hostsToResolve,
  parseResolvConf,
  permissionFlags,
  type PermissionPlan,
  RESOLVER_FILES,
} from "../config/permissions.ts";

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

/** Resolves the configured names and derives the service's permission flags. */
export async function computeFlags(options: FlagsOptions): Promise<PermissionPlan> {
  const { env } = envWithFlags(options.args, options.env);
  const resolved = await resolveAll(hostsToResolve(env), options);
  let nameServers: string[] = [];
  try {
    nameServers = parseResolvConf(options.readTextFile("/etc/resolv.conf"));
  } catch {
    // No resolv.conf: no name servers to grant.
  }
  const resolverFiles = RESOLVER_FILES.filter((path) => options.exists(path));
  // Only listed homeservers are served: an exact host list replaces open outbound network.
  const strict = parseBoolean(env("LIVEKIT_FULL_ACCESS_ONLY") ?? "") === true;
  return permissionFlags({ env, resolved, nameServers, resolverFiles, strict });
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

async function main(): Promise<number> {
  const plan = await computeFlags({
    args: Deno.args,
    env: envLookup,
    lookup: systemLookup,
    readTextFile: (path) => Deno.readTextFileSync(path),
    exists: fileExists,
  });
  for (const note of plan.notes) {
    writeAllSync(Deno.stderr, `lk-jwt-service: ${note}\n`);
  }
  writeAllSync(Deno.stdout, plan.flags.map((f) => `${f}\n`).join(""));
  return 0;
}

if (import.meta.main) {
  // Exit explicitly: a system look-up that outlived its budget cannot be cancelled.
  Deno.exit(await main());
}
