/**
 * Tests of the `--deny-net` range arithmetic (lib/config/net_ranges.ts): CIDR subtraction over
 * IPv4 and IPv6 (examples and a property test) and Deno's flag syntax.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { type Cidr, cidrContains, parseCidr, parseIp } from "../../lib/net/ip.ts";
import { denoNetEntry, denyNetEntries, subtractCidrs } from "../../lib/config/net_ranges.ts";

function cidr(text: string): Cidr {
  const c = parseCidr(text);
  assert.ok(c, `bad CIDR ${text}`);
  return c;
}

function ip(text: string): bigint {
  const a = parseIp(text);
  assert.ok(a, `bad address ${text}`);
  return a.value;
}

Deno.test("subtractCidrs() carves one address out of 127.0.0.0/8 with the minimal cover", () => {
  const out = subtractCidrs([cidr("127.0.0.0/8")], [cidr("127.0.0.1")]);
  const entries = out.map((c) => denoNetEntry(c));
  assert.equal(entries.length, 24);
  assert.deepEqual(entries.slice(0, 4), [
    "127.0.0.0",
    "127.0.0.2/31",
    "127.0.0.4/30",
    "127.0.0.8/29",
  ]);
  assert.equal(entries.at(-1), "127.128.0.0/9");
});

Deno.test("subtractCidrs() leaves a range alone when the hole is elsewhere, drops it when covered", () => {
  assert.deepEqual(subtractCidrs([cidr("10.0.0.0/8")], [cidr("192.168.1.1")]), [
    cidr("10.0.0.0/8"),
  ]);
  assert.deepEqual(subtractCidrs([cidr("10.1.0.0/16")], [cidr("10.0.0.0/8")]), []);
  assert.deepEqual(subtractCidrs([cidr("10.0.0.0/8")], [cidr("0.0.0.0/0")]), []);
});

Deno.test("subtractCidrs() works over IPv6 and treats IPv4-mapped holes as IPv4", () => {
  const v6 = subtractCidrs([cidr("fc00::/7")], [cidr("fd00::5")]);
  assert.equal(v6.length, 121);
  assert.ok(!v6.some((c) => cidrContains(c, ip("fd00::5"))));
  assert.ok(v6.some((c) => cidrContains(c, ip("fd00::4"))));
  const mapped = subtractCidrs([cidr("10.0.0.0/8")], [cidr("::ffff:10.1.2.3")]);
  assert.ok(!mapped.some((c) => cidrContains(c, ip("10.1.2.3"))));
  assert.ok(mapped.some((c) => cidrContains(c, ip("10.1.2.4"))));
});

Deno.test("subtractCidrs() result covers exactly range minus holes (property, IPv4 and IPv6)", () => {
  const v4 = fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 }))
    .map(([n, bits]) => {
      const text = [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
      return cidr(`${text}/${bits}`);
    });
  const v6 = fc.tuple(
    fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }),
    fc.integer({ min: 0, max: 128 }),
  )
    .map(([value, bits]) => {
      const mask = bits === 0
        ? 0n
        : (((1n << 128n) - 1n) << BigInt(128 - bits)) & ((1n << 128n) - 1n);
      return { base: value & mask, bits, v4: false } as Cidr;
    });
  const anyCidr = fc.oneof(v4, v6);
  fc.assert(
    fc.property(
      fc.array(anyCidr, { minLength: 1, maxLength: 3 }),
      fc.array(anyCidr, { maxLength: 4 }),
      fc.array(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), { maxLength: 20 }),
      (ranges, holes, samples) => {
        const out = subtractCidrs(ranges, holes);
        // Probe random addresses plus each range/hole base and its neighbours.
        const probes = [
          ...samples,
          ...[...ranges, ...holes].flatMap((c) => [c.base, c.base + 1n, c.base - 1n]),
        ].filter((v) => v >= 0n && v < 1n << 128n);
        for (const value of probes) {
          const expected = ranges.some((r) => cidrContains(r, value)) &&
            !holes.some((h) => cidrContains(h, value));
          const got = out.some((c) => cidrContains(c, value));
          if (expected !== got) return false;
        }
        return true;
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("denoNetEntry() writes IPv4 as CIDR or address, IPv6 only as bracketed addresses", () => {
  assert.equal(denoNetEntry(cidr("10.0.0.0/8")), "10.0.0.0/8");
  assert.equal(denoNetEntry(cidr("10.1.2.3")), "10.1.2.3");
  assert.equal(denoNetEntry(cidr("::1")), "[::1]");
  assert.equal(denoNetEntry(cidr("::ffff:10.0.0.0/104")), "10.0.0.0/8");
  assert.equal(denoNetEntry(cidr("fc00::/7")), undefined);
});

Deno.test("denyNetEntries() drops IPv6 addresses that are carved out and keeps the rest", () => {
  const all = denyNetEntries([]);
  assert.ok(all.includes("[::]") && all.includes("[::1]") && all.includes("[fd00:ec2::254]"));
  assert.ok(all.includes("10.0.0.0/8"));
  const some = denyNetEntries([cidr("::1"), cidr("fd00::/8"), cidr("10.0.0.0/8")]);
  assert.ok(!some.includes("[::1]"));
  assert.ok(!some.includes("[fd00:ec2::254]"));
  assert.ok(some.includes("[::]"));
  assert.ok(!some.some((e) => e.startsWith("10.")));
});
