/**
 * Deno permission flags derived from the configuration: the least-privilege set the launcher
 * (`bin/lk-jwt-service`) starts the service with. Pure: the caller supplies the environment,
 * the addresses the configured host names resolved to and the name servers; the result is the
 * flag list, plus notes about anything that could not be expressed.
 *
 * Network policy (openid-and-discovery.md §8.2–§8.3, configuration.md §5–§6):
 *
 * - Open mode (default). Users of any homeserver are verified, so outbound network cannot be a
 *   host list: `--allow-net` plus `--deny-net=` the special-purpose IPv4 ranges of §8.2 minus
 *   the operator's own destinations (SFU, Redis, explicitly listed homeservers, override
 *   targets, `LIVEKIT_OUTBOUND_ALLOW`, HTTP proxies, name servers, listen addresses).
 *   Deno's deny wins over any allow, so each destination is carved out of the ranges by CIDR
 *   subtraction (`net_ranges.ts`). Deno re-checks the resolved address at connect time, which
 *   makes this a DNS-rebinding-proof backstop behind the in-process SSRF guard. Deno 2.9
 *   accepts no IPv6 CIDR in `--deny-net`, so IPv6 is covered by single addresses only (`::`,
 *   `::1`, the `fd00:ec2::254` metadata endpoint); the IPv6 ranges rest on the in-process
 *   guard alone. Deno does not tell listening from connecting: a listen address carved out
 *   (e.g. `0.0.0.0` for `:8080`) is reachable outbound too, for all ports.
 * - Strict mode. An exact `--allow-net=` host list, for a deployment that serves only its
 *   listed homeservers (`LIVEKIT_FULL_ACCESS_ONLY=true`; see {@linkcode PermissionInputs.strict}).
 *
 * Environment: exactly the variables the service reads, with `--ignore-env` for the rest.
 * Files: the key/secret/CA files named in the configuration and the resolver files.
 * `--unsafely-ignore-certificate-errors` only for the exact skip-verify value
 * (openid-and-discovery.md §7).
 *
 * @module
 */
import { type Cidr, parseCidr, parseIp } from "../net/ip.ts";
import { denoNetEntry, denyNetEntries } from "./net_ranges.ts";
import { CONFIG_VARIABLES, SKIP_VERIFY_VALUE } from "./config.ts";
import { parseBind, parseOverrides, parsePort, splitList } from "./parse.ts";
import { parseSentinelNodes } from "./replicas.ts";

/** Variables read by libraries at run time (protobuf int64 support, node-redis debugging). */
export const LIBRARY_VARIABLES: readonly string[] = [
  "BUF_BIGINT_DISABLE",
  "REDIS_DEBUG_MAINTENANCE",
];

/** Every variable the service may read: `--allow-env` grants exactly these. */
export const SERVICE_VARIABLES: readonly string[] = [...CONFIG_VARIABLES, ...LIBRARY_VARIABLES];

/** Resolver files the service may read when present (configuration.md §6). */
export const RESOLVER_FILES: readonly string[] = [
  "/etc/hosts",
  "/etc/resolv.conf",
  "/etc/nsswitch.conf",
];

/** Variables naming files the service reads at startup (configuration.md §3, §6). */
export const FILE_VARIABLES: readonly string[] = [
  "LIVEKIT_KEY_FILE",
  "LIVEKIT_KEY_FROM_FILE",
  "LIVEKIT_SECRET_FROM_FILE",
  "LIVEKIT_SECRET_FILE",
  "SSL_CERT_FILE",
  "LIVEKIT_AS_REGISTRATION_FILE",
  "LIVEKIT_AS_TOKEN_FROM_FILE",
  "LIVEKIT_HS_TOKEN_FROM_FILE",
];

/** Outbound HTTP proxies (openid-and-discovery.md §8.6): operator destinations too. */
const PROXY_VARIABLES = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"];

/** A host the service talks to or listens on, as configured. */
export interface Destination {
  /** The variable it comes from (for notes and messages). */
  source: string;
  /** IP literal (no brackets) or lower-case DNS name. */
  host: string;
  /** Port, or undefined when any port may be used (homeserver names, allow-list hosts). */
  port?: number;
  /** Listen address rather than an outbound destination. */
  listen?: boolean;
}

/** What {@linkcode permissionFlags} derives the flags from. */
export interface PermissionInputs {
  /** Configuration lookup: the environment with CLI flags applied. */
  env: (name: string) => string | undefined;
  /** Addresses each DNS name of {@linkcode hostsToResolve} resolved to. */
  resolved?: ReadonlyMap<string, readonly string[]>;
  /** Name servers of `/etc/resolv.conf` (`Deno.resolveDns` needs them). */
  nameServers?: readonly string[];
  /** The {@linkcode RESOLVER_FILES} that exist. */
  resolverFiles?: readonly string[];
  /**
   * Exact host list instead of open outbound network, for a deployment that serves users of its
   * listed homeservers alone (`LIVEKIT_FULL_ACCESS_ONLY=true`).
   */
  strict?: boolean;
  /** No network at all (`check-config --offline`): environment and files only. */
  offline?: boolean;
  /** Destinations beyond the configuration's own (the listen-address probe of check-config). */
  extraDestinations?: readonly Destination[];
}

/** Flags for `deno run`, plus notes about what could not be granted. */
export interface PermissionPlan {
  flags: string[];
  notes: string[];
  /**
   * Configured host names that did not resolve, as `<variable>: <host>`: they get no
   * exemption from `--deny-net` (the launcher logs them once, at INFO, for `serve` only).
   */
  unresolved: string[];
}

function lookup(env: PermissionInputs["env"], name: string): string {
  return env(name) ?? "";
}

function normaliseHost(host: string): string {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  return bare.toLowerCase().replace(/\.$/, "");
}

function urlTarget(raw: string): { host: string; port: number } | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return undefined;
  }
  if (url.hostname === "") return undefined;
  const secure = url.protocol === "https:" || url.protocol === "wss:" ||
    url.protocol === "rediss:";
  const fallback = url.protocol.startsWith("redis") ? 6379 : secure ? 443 : 80;
  const port = url.port === "" ? fallback : Number(url.port);
  return { host: normaliseHost(url.hostname), port };
}

/** Host part of a Matrix server name `host[:port]` / `[v6][:port]` (openid-and-discovery.md §2). */
export function serverNameHost(name: string): string | undefined {
  if (name.startsWith("[")) {
    const end = name.indexOf("]");
    return end > 1 ? normaliseHost(name.slice(1, end)) : undefined;
  }
  const colon = name.lastIndexOf(":");
  const host = colon >= 0 && parsePort(name.slice(colon + 1)) !== undefined
    ? name.slice(0, colon)
    : name;
  return host === "" || host.includes(":") ? undefined : normaliseHost(host);
}

function listenTargets(source: string, raw: string): Destination[] {
  const bind = parseBind(raw);
  if (!bind) return [];
  const host = normaliseHost(bind.host);
  // An empty host means all interfaces; the service may bind either wildcard address.
  const hosts = host === "" ? ["0.0.0.0", "::"] : [host];
  return hosts.map((h) => ({ source, host: h, port: bind.port, listen: true }));
}

function bindText(env: PermissionInputs["env"]): { source: string; text: string } {
  const bind = lookup(env, "LIVEKIT_JWT_BIND");
  if (bind !== "") return { source: "LIVEKIT_JWT_BIND", text: bind };
  const port = lookup(env, "LIVEKIT_JWT_PORT");
  if (port !== "") return { source: "LIVEKIT_JWT_PORT", text: `:${port}` };
  const old = lookup(env, "LK_JWT_PORT");
  if (old !== "") return { source: "LK_JWT_PORT", text: `:${old}` };
  return { source: "LIVEKIT_JWT_BIND", text: ":8080" };
}

/**
 * Every configured destination and listen address. Values that do not parse are skipped: the
 * service itself reports them as configuration errors, with the exact texts.
 */
export function collectDestinations(env: PermissionInputs["env"]): Destination[] {
  const out: Destination[] = [];
  const sfu = urlTarget(lookup(env, "LIVEKIT_URL"));
  if (sfu) out.push({ source: "LIVEKIT_URL", ...sfu });
  const redisRaw = lookup(env, "LIVEKIT_REDIS_URL");
  if (/^rediss?:/i.test(redisRaw)) {
    const redis = urlTarget(redisRaw);
    if (redis) out.push({ source: "LIVEKIT_REDIS_URL", ...redis });
  }
  for (const node of parseSentinelNodes(lookup(env, "LIVEKIT_REDIS_SENTINELS"))) {
    out.push({
      source: "LIVEKIT_REDIS_SENTINELS",
      host: normaliseHost(node.host),
      port: node.port,
    });
  }
  let fullAccess = "LIVEKIT_FULL_ACCESS_HOMESERVERS";
  if (lookup(env, fullAccess) === "") fullAccess = "LIVEKIT_LOCAL_HOMESERVERS";
  for (const name of splitList(lookup(env, fullAccess))) {
    const host = name === "*" ? undefined : serverNameHost(name);
    if (host) out.push({ source: fullAccess, host });
  }
  // App-service mode: the homeserver is an explicitly configured destination (app-service.md §2).
  const hsHost = serverNameHost(lookup(env, "LIVEKIT_HS_SERVER_NAME"));
  if (hsHost) out.push({ source: "LIVEKIT_HS_SERVER_NAME", host: hsHost });
  for (const variable of ["LIVEKIT_CS_API_URL_OVERRIDES", "LIVEKIT_FEDERATION_URL_OVERRIDES"]) {
    const parsed = parseOverrides(variable, lookup(env, variable));
    if (!parsed.ok) continue;
    for (const [name, url] of parsed.value) {
      const host = serverNameHost(name);
      if (host) out.push({ source: variable, host });
      const target = urlTarget(url);
      if (target) out.push({ source: variable, ...target });
    }
  }
  for (const piece of splitList(lookup(env, "LIVEKIT_OUTBOUND_ALLOW"))) {
    if (!piece.includes("/") && parseIp(piece) === undefined) {
      out.push({ source: "LIVEKIT_OUTBOUND_ALLOW", host: normaliseHost(piece) });
    }
  }
  for (const variable of PROXY_VARIABLES) {
    const raw = lookup(env, variable).trim();
    const proxy = raw === "" ? undefined : urlTarget(raw.includes("://") ? raw : `http://${raw}`);
    if (proxy) out.push({ source: variable, ...proxy });
  }
  const bind = bindText(env);
  out.push(...listenTargets(bind.source, bind.text));
  const metrics = lookup(env, "LIVEKIT_METRICS_BIND");
  if (metrics !== "") out.push(...listenTargets("LIVEKIT_METRICS_BIND", metrics));
  return out;
}

/** DNS names among the destinations, which the launcher resolves before computing flags. */
export function hostsToResolve(
  env: PermissionInputs["env"],
  extra: readonly Destination[] = [],
): string[] {
  const names = [...collectDestinations(env), ...extra]
    .map((d) => d.host)
    .filter((h) => parseIp(h) === undefined);
  return [...new Set(names)];
}

/** Name servers listed in a `resolv.conf` text (zone suffixes dropped). */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    const address = m?.[1]?.replace(/%.*$/, "");
    if (address && parseIp(address)) out.push(address);
  }
  return out;
}

function hostPort(host: string, port: number | undefined): string {
  const h = parseIp(host) && host.includes(":") ? `[${host}]` : host;
  return port === undefined ? h : `${h}:${port}`;
}

/** Characters that cannot appear in one entry of a comma-separated Deno flag list. */
const UNLISTABLE = /[,\n\r]/;

function fileFlags(inputs: PermissionInputs, notes: string[]): string[] {
  const read: string[] = [];
  const write: string[] = [];
  const add = (list: string[], path: string, source: string) => {
    if (UNLISTABLE.test(path)) {
      notes.push(`${source} path ${JSON.stringify(path)} contains a comma or line break`);
    } else if (!list.includes(path)) list.push(path);
  };
  for (const variable of FILE_VARIABLES) {
    const path = lookup(inputs.env, variable);
    if (path !== "") add(read, path, variable);
  }
  for (const path of inputs.resolverFiles ?? []) add(read, path, "resolver");
  const redis = lookup(inputs.env, "LIVEKIT_REDIS_URL");
  const socket = /^unix:/i.test(redis) ? unixPath(redis) : undefined;
  if (socket) {
    // Connecting to a unix socket needs read and write access to its path.
    add(read, socket, "LIVEKIT_REDIS_URL");
    add(write, socket, "LIVEKIT_REDIS_URL");
  }
  const flags: string[] = [];
  if (read.length > 0) flags.push(`--allow-read=${read.join(",")}`);
  if (write.length > 0) flags.push(`--allow-write=${write.join(",")}`);
  return flags;
}

function unixPath(raw: string): string | undefined {
  try {
    const path = decodeURIComponent(new URL(raw).pathname);
    return path === "" ? undefined : path;
  } catch {
    return undefined;
  }
}

function carveOuts(
  inputs: PermissionInputs,
  destinations: readonly Destination[],
  unresolved: string[],
): Cidr[] {
  const holes: Cidr[] = [];
  const addAddress = (address: string) => {
    const cidr = parseCidr(address);
    if (cidr) holes.push(cidr);
  };
  for (const d of destinations) {
    if (parseIp(d.host)) {
      addAddress(d.host);
      continue;
    }
    const addresses = inputs.resolved?.get(d.host) ?? [];
    const entry = `${d.source}: ${d.host}`;
    if (addresses.length === 0 && !unresolved.includes(entry)) unresolved.push(entry);
    addresses.forEach(addAddress);
  }
  for (const piece of splitList(lookup(inputs.env, "LIVEKIT_OUTBOUND_ALLOW"))) {
    const cidr = parseCidr(piece);
    if (cidr) holes.push(cidr);
  }
  (inputs.nameServers ?? []).forEach(addAddress);
  return holes;
}

function strictAllowList(
  inputs: PermissionInputs,
  destinations: readonly Destination[],
  notes: string[],
): string[] {
  const allow: string[] = [];
  const add = (entry: string) => {
    if (!allow.includes(entry)) allow.push(entry);
  };
  for (const d of destinations) {
    add(hostPort(d.host, d.port));
    // The outbound client dials checked addresses, so those must be granted as well.
    for (const address of inputs.resolved?.get(d.host) ?? []) add(hostPort(address, d.port));
  }
  for (const piece of splitList(lookup(inputs.env, "LIVEKIT_OUTBOUND_ALLOW"))) {
    const cidr = parseCidr(piece);
    if (!cidr) continue;
    const entry = denoNetEntry(cidr);
    if (entry === undefined) {
      notes.push(`LIVEKIT_OUTBOUND_ALLOW: ${piece} cannot be granted (IPv6 range)`);
    } else add(entry);
  }
  for (const server of inputs.nameServers ?? []) add(hostPort(server, 53));
  const redis = lookup(inputs.env, "LIVEKIT_REDIS_URL");
  const socket = /^unix:/i.test(redis) ? unixPath(redis) : undefined;
  if (socket && !UNLISTABLE.test(socket)) add(`unix:${socket}`);
  return allow;
}

/**
 * Derives the `deno run` permission flags for the service from its configuration.
 *
 * Never fails on a bad value: unparsable settings are skipped so that the service starts and
 * reports them itself with the exact texts of configuration.md.
 */
export function permissionFlags(inputs: PermissionInputs): PermissionPlan {
  const notes: string[] = [];
  const unresolved: string[] = [];
  const flags = [`--allow-env=${SERVICE_VARIABLES.join(",")}`, "--ignore-env"];
  flags.push(...fileFlags(inputs, notes));
  if (inputs.offline) return { flags, notes, unresolved };
  const destinations = [...collectDestinations(inputs.env), ...(inputs.extraDestinations ?? [])];
  if (
    lookup(inputs.env, "LIVEKIT_REDIS_SENTINELS").trim() !== "" &&
    lookup(inputs.env, "LIVEKIT_OUTBOUND_ALLOW").trim() === ""
  ) {
    // The master and replicas are learned from the Sentinels at run time (and move on
    // failover), so only the Sentinels themselves can be granted here.
    notes.push(
      "LIVEKIT_REDIS_SENTINELS: the Redis nodes the Sentinels announce are not known in advance; " +
        "list their addresses or network in LIVEKIT_OUTBOUND_ALLOW",
    );
  }
  if (inputs.strict) {
    flags.push(`--allow-net=${strictAllowList(inputs, destinations, notes).join(",")}`);
  } else {
    flags.push("--allow-net");
    const deny = denyNetEntries(carveOuts(inputs, destinations, unresolved));
    if (deny.length > 0) flags.push(`--deny-net=${deny.join(",")}`);
  }
  if (lookup(inputs.env, "LIVEKIT_INSECURE_SKIP_VERIFY_TLS") === SKIP_VERIFY_VALUE) {
    // Homeservers are arbitrary, so the switch cannot be scoped to a host list.
    flags.push("--unsafely-ignore-certificate-errors");
  }
  return { flags, notes, unresolved };
}
