/**
 * Address ranges for Deno's `--deny-net`: the special-purpose ranges the service never reaches
 * unless configured (openid-and-discovery.md §8.2) and the CIDR arithmetic that carves single
 * destinations out of them, since Deno's deny wins over any allow (deno-stack.md §4).
 *
 * Deno 2.9 accepts IPv4 CIDRs and bracketed single IPv6 addresses in its net flags, but no IPv6
 * CIDR; the IPv6 ranges are therefore covered by the in-process SSRF guard alone.
 *
 * @module
 */
import { type Cidr, cidrContains, formatIp, isV4Mapped, parseCidr } from "../net/ip.ts";

/** IPv4 ranges denied to outbound connections unless carved out (openid-and-discovery.md §8.2). */
export const DENIED_IPV4_RANGES: readonly string[] = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.0.0.0/24",
  "192.0.2.0/24",
  "192.168.0.0/16",
  "198.18.0.0/15",
  "198.51.100.0/24",
  "203.0.113.0/24",
  "224.0.0.0/4",
  "240.0.0.0/4",
];

/** IPv6 addresses denied unless carved out (Deno takes no IPv6 CIDR in `--deny-net`). */
export const DENIED_IPV6_ADDRESSES: readonly string[] = ["::", "::1", "fd00:ec2::254"];

function overlaps(a: Cidr, b: Cidr): boolean {
  return a.bits <= b.bits ? cidrContains(a, b.base) : cidrContains(b, a.base);
}

function subtractOne(range: Cidr, hole: Cidr): Cidr[] {
  if (!overlaps(range, hole)) return [range];
  if (hole.bits <= range.bits) return [];
  const half = 1n << BigInt(127 - range.bits);
  const bits = range.bits + 1;
  return [
    ...subtractOne({ base: range.base, bits, v4: range.v4 }, hole),
    ...subtractOne({ base: range.base | half, bits, v4: range.v4 }, hole),
  ];
}

/**
 * `ranges` minus `holes` over the 128-bit address space, as disjoint CIDRs sorted by address.
 * IPv4 values live in the IPv4-mapped block, so an IPv4-mapped IPv6 hole cuts IPv4 ranges.
 */
export function subtractCidrs(ranges: readonly Cidr[], holes: readonly Cidr[]): Cidr[] {
  let current = [...ranges];
  for (const hole of holes) current = current.flatMap((range) => subtractOne(range, hole));
  return current.sort((a, b) => (a.base < b.base ? -1 : a.base > b.base ? 1 : a.bits - b.bits));
}

/** Formats a CIDR the way Deno's net flags accept it, or undefined for IPv6 ranges. */
export function denoNetEntry(cidr: Cidr): string | undefined {
  if (isV4Mapped(cidr.base) && cidr.bits >= 96) {
    return cidr.bits === 128 ? formatIp(cidr.base) : `${formatIp(cidr.base)}/${cidr.bits - 96}`;
  }
  return cidr.bits === 128 ? `[${formatIp(cidr.base)}]` : undefined;
}

/** The `--deny-net` entries: the denied ranges minus the holes, in Deno's syntax. */
export function denyNetEntries(holes: readonly Cidr[]): string[] {
  const ranges: Cidr[] = [];
  for (const text of [...DENIED_IPV4_RANGES, ...DENIED_IPV6_ADDRESSES]) {
    const cidr = parseCidr(text);
    if (cidr) ranges.push(cidr);
  }
  const entries: string[] = [];
  for (const cidr of subtractCidrs(ranges, holes)) {
    const entry = denoNetEntry(cidr);
    if (entry !== undefined) entries.push(entry);
  }
  return entries;
}
