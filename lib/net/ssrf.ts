/**
 * The SSRF guard's address rules (openid-and-discovery.md §8.2) and the configured allowances
 * (§8.3; tokens-and-rooms.md §5 "explicitly listed"; configuration.md §5
 * `LIVEKIT_OUTBOUND_ALLOW`).
 *
 * Every outbound destination derived from a client-supplied server name is resolved first, then
 * each address is checked here, then the connection goes to exactly the checked address
 * (lib/net/outbound.ts pins it). Addresses embedded in IPv4-mapped, IPv4-compatible, NAT64 and
 * 6to4 IPv6 forms are checked as their IPv4 address too.
 *
 * @module
 */
import type { Config } from "../config/config.ts";
import { type Cidr, cidrContains, parseCidr } from "./ip.ts";

/** Outcome of a policy check; `reason` names the denied range (`loopback`, `private`, …). */
export type AddressVerdict = { allowed: true } | { allowed: false; reason: string };

interface Range {
  cidr: Cidr;
  text: string;
  reason: string;
}

function range(text: string, reason: string): Range {
  const cidr = parseCidr(text);
  if (!cidr) throw new Error(`invalid built-in range ${text}`);
  return { cidr, text, reason };
}

/** The §8.2 table; more specific entries (metadata endpoints) come first. */
const DENIED: readonly Range[] = [
  range("169.254.169.254", "metadata"),
  range("fd00:ec2::254", "metadata"),
  range("100.100.100.200", "metadata"),
  range("0.0.0.0/8", "this-host"),
  range("::/128", "unspecified"),
  range("127.0.0.0/8", "loopback"),
  range("::1/128", "loopback"),
  range("10.0.0.0/8", "private"),
  range("172.16.0.0/12", "private"),
  range("192.168.0.0/16", "private"),
  range("fc00::/7", "unique-local"),
  range("100.64.0.0/10", "carrier-grade-nat"),
  range("169.254.0.0/16", "link-local"),
  range("fe80::/10", "link-local"),
  range("192.0.0.0/24", "special-purpose"),
  range("192.0.2.0/24", "documentation"),
  range("198.18.0.0/15", "benchmarking"),
  range("198.51.100.0/24", "documentation"),
  range("203.0.113.0/24", "documentation"),
  range("2001:db8::/32", "documentation"),
  range("100::/64", "discard"),
  range("224.0.0.0/4", "multicast"),
  range("ff00::/8", "multicast"),
  range("255.255.255.255/32", "broadcast"),
  range("240.0.0.0/4", "reserved"),
  range("fec0::/10", "site-local"),
];

const V4_MAPPED_PREFIX = 0xffffn << 32n;
const LOW32 = 0xffffffffn;
const NAT64 = parseCidr("64:ff9b::/96");
const SIX_TO_FOUR = parseCidr("2002::/16");
const COMPATIBLE = parseCidr("::/96");

/**
 * The IPv4 address embedded in an IPv6 transition form (as a mapped value), if any:
 * IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:AABB:CCDD::/48`.
 * IPv4-mapped addresses are already IPv4 in this representation.
 */
export function embeddedIpv4(address: bigint): bigint | undefined {
  if (COMPATIBLE && cidrContains(COMPATIBLE, address)) return V4_MAPPED_PREFIX | (address & LOW32);
  if (NAT64 && cidrContains(NAT64, address)) return V4_MAPPED_PREFIX | (address & LOW32);
  if (SIX_TO_FOUR && cidrContains(SIX_TO_FOUR, address)) {
    return V4_MAPPED_PREFIX | ((address >> 80n) & LOW32);
  }
  return undefined;
}

function lookupDenied(address: bigint): Range | undefined {
  return DENIED.find((r) => cidrContains(r.cidr, address));
}

/**
 * Classifies an address against the §8.2 table (no allowances). `range` is the matching CIDR as
 * written in the table, `reason` its category.
 */
export function classifyAddress(
  address: bigint,
): { denied: boolean; range?: string; reason?: string } {
  const direct = lookupDenied(address);
  if (direct) return { denied: true, range: direct.text, reason: direct.reason };
  const v4 = embeddedIpv4(address);
  if (v4 !== undefined) {
    const inner = lookupDenied(v4);
    if (inner) return { denied: true, range: inner.text, reason: inner.reason };
  }
  return { denied: false };
}

/** The guard as used by the outbound client. */
export interface OutboundPolicy {
  /**
   * Whether `address` (resolved from `host`) may be contacted on behalf of `serverName`.
   * `host` is the name that was resolved (URL host or SRV target), before resolution.
   */
  check(input: { serverName: string; host: string; address: bigint }): AddressVerdict;
}

/** Lower-cases a host and drops brackets and a trailing dot, for allow-list matching. */
export function normaliseHostName(host: string): string {
  let h = host.toLowerCase();
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  return h.endsWith(".") ? h.slice(0, -1) : h;
}

/**
 * Builds the guard from configuration: names listed explicitly in
 * `LIVEKIT_FULL_ACCESS_HOMESERVERS`, keys of `LIVEKIT_CS_API_URL_OVERRIDES` and the
 * app-service homeserver (`LIVEKIT_HS_SERVER_NAME`) may use any
 * address for their whole chain; `LIVEKIT_OUTBOUND_ALLOW` ranges match the address (and an
 * address embedded in a transition form), its host names match the host before resolution.
 */
export function createOutboundPolicy(
  config:
    & Pick<Config, "fullAccess" | "csApiOverrides" | "outboundAllow">
    & { appService?: { serverName: string } | undefined },
): OutboundPolicy {
  const { fullAccess, csApiOverrides, outboundAllow } = config;
  // App-service mode: the own homeserver is configured explicitly (app-service.md §2).
  const homeserver = config.appService?.serverName;
  return {
    check({ serverName, host, address }) {
      const verdict = classifyAddress(address);
      if (!verdict.denied) return { allowed: true };
      if (
        fullAccess.explicit.has(serverName) || csApiOverrides.has(serverName) ||
        serverName === homeserver
      ) {
        return { allowed: true };
      }
      if (outboundAllow.hosts.has(normaliseHostName(host))) return { allowed: true };
      const v4 = embeddedIpv4(address);
      for (const cidr of outboundAllow.cidrs) {
        if (cidrContains(cidr, address) || (v4 !== undefined && cidrContains(cidr, v4))) {
          return { allowed: true };
        }
      }
      return { allowed: false, reason: verdict.reason ?? "denied" };
    },
  };
}

/** A policy that allows everything (unguarded destinations and tests). */
export const allowAllPolicy: OutboundPolicy = { check: () => ({ allowed: true }) };
