/**
 * Generated-input tests of the SSRF address classification (openid-and-discovery.md §8.2;
 * lib/net/ssrf.ts `classifyAddress`), through the textual forms the resolver returns
 * (lib/net/ip.ts `parseIp`):
 *
 * - every IPv6 transition form of an IPv4 address (mapped, compatible, NAT64, 6to4) is denied
 *   exactly when the IPv4 address is;
 * - addresses from public allocations are allowed, also by the guard without allowances;
 * - an independent range table (written from the spec, plain interval arithmetic) agrees with
 *   the classification for random IPv4 and IPv6 addresses.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseIp } from "../../lib/net/ip.ts";
import { classifyAddress, createOutboundPolicy } from "../../lib/net/ssrf.ts";

/** Denied IPv4 ranges of §8.2 as [first octet string, prefix length]. */
const V4_DENIED: ReadonlyArray<[string, number]> = [
  ["0.0.0.0", 8],
  ["127.0.0.0", 8],
  ["10.0.0.0", 8],
  ["172.16.0.0", 12],
  ["192.168.0.0", 16],
  ["100.64.0.0", 10],
  ["169.254.0.0", 16],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
  ["255.255.255.255", 32],
  ["169.254.169.254", 32],
  ["100.100.100.200", 32],
];

/** Denied IPv6 ranges of §8.2 as [eight 16-bit groups, prefix length]. */
const V6_DENIED: ReadonlyArray<[number[], number]> = [
  [[0, 0, 0, 0, 0, 0, 0, 0], 128],
  [[0, 0, 0, 0, 0, 0, 0, 1], 128],
  [[0xfc00, 0, 0, 0, 0, 0, 0, 0], 7],
  [[0xfe80, 0, 0, 0, 0, 0, 0, 0], 10],
  [[0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128],
  [[0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32],
  [[0x100, 0, 0, 0, 0, 0, 0, 0], 64],
  [[0xff00, 0, 0, 0, 0, 0, 0, 0], 8],
  [[0xfec0, 0, 0, 0, 0, 0, 0, 0], 10],
];

function v4Number(text: string): number {
  return text.split(".").reduce((acc, part) => acc * 256 + Number(part), 0);
}

function v4Text(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

function v4DeniedOracle(n: number): boolean {
  return V4_DENIED.some(([base, bits]) => {
    const size = 2 ** (32 - bits);
    const start = Math.floor(v4Number(base) / size) * size;
    return n >= start && n < start + size;
  });
}

function groupsToBig(groups: readonly number[]): bigint {
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

function v6Text(groups: readonly number[]): string {
  return groups.map((g) => g.toString(16)).join(":");
}

/** The independent oracle for a full 128-bit address given as eight groups. */
function v6DeniedOracle(groups: readonly number[]): boolean {
  const value = groupsToBig(groups);
  const direct = V6_DENIED.some(([base, bits]) => {
    const shift = BigInt(128 - bits);
    return (value >> shift) === (groupsToBig(base) >> shift);
  });
  if (direct) return true;
  const low32 = Number(value & 0xffffffffn);
  const top96 = value >> 32n;
  // IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96, NAT64 64:ff9b::/96.
  if (top96 === 0xffffn || top96 === 0n || top96 === groupsToBig([0x64, 0xff9b, 0, 0, 0, 0])) {
    return v4DeniedOracle(low32);
  }
  // 6to4 2002::/16: the IPv4 address is the next 32 bits.
  if (groups[0] === 0x2002) return v4DeniedOracle(groups[1]! * 65536 + groups[2]!);
  return false;
}

function classifyText(text: string): boolean {
  const ip = parseIp(text);
  assert.ok(ip, `unparsable ${text}`);
  return classifyAddress(ip.value).denied;
}

const hex4 = (n: number) => n.toString(16).padStart(4, "0");
const v4Arb = fc.oneof(
  fc.nat({ max: 0xffffffff }),
  // Near and inside the denied ranges, where the boundaries are.
  fc.tuple(fc.constantFrom(...V4_DENIED), fc.integer({ min: -3, max: 3 }), fc.nat()).map(
    ([[base, bits], edge, offset]) => {
      const size = 2 ** (32 - bits);
      const start = v4Number(base);
      const n = edge === 0
        ? start + (offset % size)
        : edge < 0
        ? start + edge
        : start + size - 1 + edge;
      return Math.min(0xffffffff, Math.max(0, n));
    },
  ),
);

Deno.test("fuzz SSRF: transition forms classify like the embedded IPv4 address", () => {
  fc.assert(
    fc.property(v4Arb, fc.nat({ max: 0xffff }), (n, subnet) => {
      const dotted = v4Text(n);
      const hi = hex4(n >>> 16);
      const lo = hex4(n & 0xffff);
      const expected = classifyText(dotted);
      assert.equal(expected, v4DeniedOracle(n), dotted);
      const forms = [
        `::ffff:${dotted}`,
        `::ffff:${hi}:${lo}`,
        `0:0:0:0:0:ffff:${dotted}`,
        `::${dotted}`,
        `64:ff9b::${dotted}`,
        `64:ff9b::${hi}:${lo}`,
        `2002:${hi}:${lo}::`,
        `2002:${hi}:${lo}:${hex4(subnet)}::1`,
      ];
      for (const form of forms) {
        // `::0.0.0.0` and `::0.0.0.1` are also `::` and `::1` (denied in their own right).
        assert.equal(classifyText(form), expected, `${form} vs ${dotted}`);
      }
    }),
    { numRuns: 3000 },
  );
});

/** First octets of /8 blocks with no special-purpose range inside (IANA unicast). */
const PUBLIC_V4_FIRST = [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 20, 31, 45, 62, 77, 81, 91, 104];

Deno.test("fuzz SSRF: public addresses are allowed", () => {
  const policy = createOutboundPolicy({
    fullAccess: { wildcard: true, explicit: new Set(), defaulted: true },
    csApiOverrides: new Map(),
    outboundAllow: { cidrs: [], hosts: new Set() },
  });
  const publicV4 = fc.tuple(fc.constantFrom(...PUBLIC_V4_FIRST), fc.nat({ max: 0xffffff })).map(
    ([first, rest]) => `${first}.${rest >>> 16}.${(rest >>> 8) & 255}.${rest & 255}`,
  );
  // 2400::/6 .. 2c00::/8: regional-registry allocations, clear of 2001:db8::/32 and 2002::/16.
  const publicV6 = fc.tuple(
    fc.integer({ min: 0x2400, max: 0x2cff }),
    fc.array(fc.nat({ max: 0xffff }), { minLength: 7, maxLength: 7 }),
  ).map(([first, rest]) => v6Text([first, ...rest]));
  fc.assert(
    fc.property(fc.oneof(publicV4, publicV6), (text) => {
      const ip = parseIp(text);
      assert.ok(ip);
      assert.equal(classifyAddress(ip.value).denied, false, text);
      const verdict = policy.check({
        serverName: "example.com",
        host: "example.com",
        address: ip.value,
      });
      assert.deepEqual(verdict, { allowed: true }, text);
    }),
    { numRuns: 2000 },
  );
});

Deno.test("fuzz SSRF: an independent range table agrees for random IPv4 and IPv6 addresses", () => {
  const groups = fc.array(fc.nat({ max: 0xffff }), { minLength: 8, maxLength: 8 });
  // Random addresses inside or next to each denied IPv6 range.
  const nearV6 = fc.tuple(fc.constantFrom(...V6_DENIED), groups, fc.nat({ max: 128 })).map(
    ([[base], random, keep]) =>
      base.map((g, i) => {
        const bitsHere = Math.max(0, Math.min(16, keep - i * 16));
        const mask = bitsHere === 0 ? 0 : (0xffff << (16 - bitsHere)) & 0xffff;
        return (g & mask) | (random[i]! & ~mask & 0xffff);
      }),
  );
  const embedded = fc.tuple(
    fc.constantFrom([0, 0, 0, 0, 0, 0xffff], [0, 0, 0, 0, 0, 0], [0x64, 0xff9b, 0, 0, 0, 0]),
    v4Arb,
  ).map(([prefix, n]) => [...prefix, n >>> 16, n & 0xffff]);
  const sixToFour = fc.tuple(v4Arb, groups).map(([n, rest]) => [
    0x2002,
    n >>> 16,
    n & 0xffff,
    ...rest.slice(3),
  ]);
  fc.assert(
    fc.property(fc.oneof(groups, nearV6, embedded, sixToFour), (g) => {
      const text = v6Text(g);
      assert.equal(classifyText(text), v6DeniedOracle(g), text);
    }),
    { numRuns: 4000 },
  );
  fc.assert(
    fc.property(v4Arb, (n) => {
      assert.equal(classifyText(v4Text(n)), v4DeniedOracle(n), v4Text(n));
    }),
    { numRuns: 4000 },
  );
});
