/**
 * IP addresses and CIDR ranges as numbers, for the SSRF guard (openid-and-discovery.md §8),
 * trusted proxies (http-api.md §10) and the launcher's `--deny-net` carve-outs.
 *
 * IPv4 addresses are held as IPv4-mapped IPv6 values (`::ffff:a.b.c.d`) so one 128-bit
 * representation covers both families.
 *
 * @module
 */

/** An address as a 128-bit integer plus its family as written. */
export interface IpAddress {
  readonly value: bigint;
  readonly v4: boolean;
}

/** A CIDR range over the 128-bit space. */
export interface Cidr {
  readonly base: bigint;
  readonly bits: number;
  /** Whether the range was written in IPv4 form. */
  readonly v4: boolean;
}

const V4_MAPPED = 0xffffn << 32n;
const ALL = (1n << 128n) - 1n;

/** Parses a dotted-quad IPv4 address (four decimal parts, no leading zeros beyond `0`). */
export function parseIpv4(text: string): bigint | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    value = (value << 8n) | BigInt(n);
  }
  return value;
}

/** Parses an IPv6 address (no brackets, no zone), including an embedded IPv4 tail. */
export function parseIpv6(text: string): bigint | undefined {
  if (!/^[0-9A-Fa-f:.]+$/.test(text) || text.length > 45) return undefined;
  let head = text;
  let tail: bigint | undefined;
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".")) {
    tail = parseIpv4(text.slice(lastColon + 1));
    if (tail === undefined) return undefined;
    head = text.slice(0, lastColon + 1) + "0:0";
  }
  const double = head.indexOf("::");
  if (double !== head.lastIndexOf("::")) return undefined;
  const toGroups = (s: string): number[] | undefined => {
    if (s === "") return [];
    const out: number[] = [];
    for (const g of s.split(":")) {
      if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  let groups: number[];
  if (double >= 0) {
    const left = toGroups(head.slice(0, double));
    const right = toGroups(head.slice(double + 2));
    if (!left || !right || left.length + right.length > 7) return undefined;
    groups = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  } else {
    const all = toGroups(head);
    if (!all || all.length !== 8) return undefined;
    groups = all;
  }
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  if (tail !== undefined) value = (value & ~0xffffffffn) | tail;
  return value;
}

/** Parses an IPv4 or IPv6 literal (IPv6 may be bracketed). */
export function parseIp(text: string): IpAddress | undefined {
  const v4 = parseIpv4(text);
  if (v4 !== undefined) return { value: V4_MAPPED | v4, v4: true };
  const inner = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  const v6 = parseIpv6(inner);
  return v6 === undefined ? undefined : { value: v6, v4: false };
}

/** Parses `addr/bits` or a single address (as a /32 or /128). */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const ip = parseIp(addrText);
  if (!ip) return undefined;
  const maxBits = ip.v4 ? 32 : 128;
  let bits = maxBits;
  if (slash >= 0) {
    const b = text.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(b)) return undefined;
    bits = Number(b);
    if (bits > maxBits) return undefined;
  }
  const bits128 = ip.v4 ? bits + 96 : bits;
  const mask = bits128 === 0 ? 0n : (ALL << BigInt(128 - bits128)) & ALL;
  return { base: ip.value & mask, bits: bits128, v4: ip.v4 };
}

/** Whether `cidr` contains `address`. */
export function cidrContains(cidr: Cidr, address: bigint): boolean {
  if (cidr.bits === 0) return true;
  const mask = (ALL << BigInt(128 - cidr.bits)) & ALL;
  return (address & mask) === cidr.base;
}

/** If the address is IPv4-mapped (`::ffff:a.b.c.d`), the embedded IPv4 as a mapped value. */
export function isV4Mapped(address: bigint): boolean {
  return (address >> 32n) === 0xffffn;
}

/** Formats a 128-bit value: mapped IPv4 as dotted quad, the rest as compressed IPv6. */
export function formatIp(address: bigint): string {
  if (isV4Mapped(address)) {
    const v = Number(address & 0xffffffffn);
    return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join(".");
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((address >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

/** Formats a CIDR in the family it was written in (`10.0.0.0/8`, `fc00::/7`). */
export function formatCidr(cidr: Cidr): string {
  if (cidr.v4 || (isV4Mapped(cidr.base) && cidr.bits >= 96)) {
    return `${formatIp(cidr.base)}/${cidr.bits - 96}`;
  }
  return `${formatIp(cidr.base)}/${cidr.bits}`;
}
