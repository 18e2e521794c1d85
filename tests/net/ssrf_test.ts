import assert from "node:assert/strict";
import { parseCidr, parseIp } from "../../lib/net/ip.ts";
import { classifyAddress, createOutboundPolicy, embeddedIpv4 } from "../../lib/net/ssrf.ts";

function ip(text: string): bigint {
  const parsed = parseIp(text);
  assert.ok(parsed, `bad test address ${text}`);
  return parsed.value;
}

/** Every range of openid-and-discovery.md §8.2: [range, first, last, just outside (or "")]. */
const V4_RANGES: [string, string, string, string, string][] = [
  ["0.0.0.0/8", "0.0.0.0", "0.255.255.255", "1.0.0.0", "this-host"],
  ["127.0.0.0/8", "127.0.0.1", "127.255.255.255", "128.0.0.0", "loopback"],
  ["10.0.0.0/8", "10.0.0.0", "10.255.255.255", "11.0.0.0", "private"],
  ["172.16.0.0/12", "172.16.0.0", "172.31.255.255", "172.32.0.0", "private"],
  ["192.168.0.0/16", "192.168.0.0", "192.168.255.255", "192.169.0.0", "private"],
  ["100.64.0.0/10", "100.64.0.0", "100.127.255.255", "100.128.0.0", "carrier-grade-nat"],
  ["169.254.0.0/16", "169.254.0.1", "169.254.255.255", "169.255.0.0", "link-local"],
  ["192.0.0.0/24", "192.0.0.0", "192.0.0.255", "192.0.1.0", "special-purpose"],
  ["192.0.2.0/24", "192.0.2.0", "192.0.2.255", "192.0.3.0", "documentation"],
  ["198.18.0.0/15", "198.18.0.0", "198.19.255.255", "198.20.0.0", "benchmarking"],
  ["198.51.100.0/24", "198.51.100.0", "198.51.100.255", "198.51.101.0", "documentation"],
  ["203.0.113.0/24", "203.0.113.0", "203.0.113.255", "203.0.114.0", "documentation"],
  ["224.0.0.0/4", "224.0.0.0", "239.255.255.255", "223.255.255.255", "multicast"],
  ["240.0.0.0/4", "240.0.0.0", "255.255.255.254", "", "reserved"],
  ["255.255.255.255/32", "255.255.255.255", "255.255.255.255", "", "broadcast"],
];

const V6_RANGES: [string, string, string, string, string][] = [
  ["::/128", "::", "::", "", "unspecified"],
  ["::1/128", "::1", "::1", "", "loopback"],
  ["fc00::/7", "fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe00::", "unique-local"],
  ["fe80::/10", "fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "", "link-local"],
  [
    "2001:db8::/32",
    "2001:db8::",
    "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
    "2001:db9::",
    "documentation",
  ],
  ["100::/64", "100::", "100::ffff:ffff:ffff:ffff", "100:0:0:1::", "discard"],
  ["ff00::/8", "ff00::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "", "multicast"],
  ["fec0::/10", "fec0::", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "", "site-local"],
];

/** The IPv6 transition forms of an IPv4 address (mapped, compatible, NAT64, 6to4). */
function v6Forms(v4: string): string[] {
  const [a, b, c, d] = v4.split(".").map(Number) as [number, number, number, number];
  const hi = ((a << 8) | b).toString(16);
  const lo = ((c << 8) | d).toString(16);
  return [`::ffff:${v4}`, `::${v4}`, `64:ff9b::${v4}`, `2002:${hi}:${lo}::1`];
}

Deno.test("every IPv4 range of §8.2 is denied at both ends, in all IPv6 transition forms", () => {
  for (const [range, first, last, outside, reason] of V4_RANGES) {
    for (const addr of [first, last]) {
      for (const form of [addr, ...v6Forms(addr)]) {
        const v = classifyAddress(ip(form));
        assert.equal(v.denied, true, `${form} (${range}) must be denied`);
        // `::0.0.0.0` and `::0.0.0.1` are also `::` and `::1`, which have their own entries.
        if (form === addr || !form.startsWith("::0.0.0.")) assert.equal(v.reason, reason, form);
      }
    }
    if (outside !== "" && !V4_RANGES.some(([, f]) => f === outside)) {
      for (const form of [outside, ...v6Forms(outside)]) {
        assert.equal(classifyAddress(ip(form)).denied, false, `${form} is outside ${range}`);
      }
    }
  }
});

Deno.test("every IPv6 range of §8.2 is denied at both ends", () => {
  for (const [range, first, last, outside, reason] of V6_RANGES) {
    for (const addr of [first, last]) {
      const v = classifyAddress(ip(addr));
      assert.equal(v.denied, true, `${addr} (${range}) must be denied`);
      assert.equal(v.reason, reason, addr);
    }
    if (outside !== "") {
      assert.equal(classifyAddress(ip(outside)).denied, false, `${outside} outside ${range}`);
    }
  }
});

Deno.test("cloud metadata endpoints are reported as metadata", () => {
  for (
    const addr of ["169.254.169.254", "::ffff:169.254.169.254", "fd00:ec2::254", "100.100.100.200"]
  ) {
    assert.deepEqual(classifyAddress(ip(addr)).reason, "metadata", addr);
  }
});

Deno.test("public addresses pass, including their transition forms", () => {
  for (const addr of ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1111", "2a00:1450::1"]) {
    assert.equal(classifyAddress(ip(addr)).denied, false, addr);
  }
  for (const form of v6Forms("8.8.8.8")) {
    assert.equal(classifyAddress(ip(form)).denied, false, form);
  }
});

Deno.test("embedded IPv4 extraction", () => {
  assert.equal(embeddedIpv4(ip("64:ff9b::10.0.0.1")), ip("10.0.0.1"));
  assert.equal(embeddedIpv4(ip("2002:0a00:0001::")), ip("10.0.0.1"));
  assert.equal(embeddedIpv4(ip("::10.0.0.1")), ip("10.0.0.1"));
  assert.equal(embeddedIpv4(ip("2606:4700::1")), undefined);
});

function policy(opts: { explicit?: string[]; cs?: string[]; cidrs?: string[]; hosts?: string[] }) {
  return createOutboundPolicy({
    fullAccess: { wildcard: false, explicit: new Set(opts.explicit ?? []), defaulted: false },
    csApiOverrides: new Map((opts.cs ?? []).map((k) => [k, "https://cs.internal"])),
    outboundAllow: {
      cidrs: (opts.cidrs ?? []).map((c) => parseCidr(c)!),
      hosts: new Set(opts.hosts ?? []),
    },
  });
}

Deno.test("allowances: explicit full-access names and CS override keys allow their whole chain", () => {
  const p = policy({ explicit: ["hs.internal", "localhost:8448"], cs: ["cs.example"] });
  const check = (serverName: string, addr: string, host = "any.host") =>
    p.check({ serverName, host, address: ip(addr) });
  assert.deepEqual(check("hs.internal", "10.0.0.5"), { allowed: true });
  assert.deepEqual(check("localhost:8448", "127.0.0.1"), { allowed: true });
  assert.deepEqual(check("cs.example", "192.168.1.1"), { allowed: true });
  // Exact, case-sensitive match on the server name as sent.
  assert.deepEqual(check("HS.internal", "10.0.0.5"), { allowed: false, reason: "private" });
  assert.deepEqual(check("localhost", "127.0.0.1"), { allowed: false, reason: "loopback" });
});

Deno.test("wildcard full access allows nothing extra", () => {
  const p = createOutboundPolicy({
    fullAccess: { wildcard: true, explicit: new Set(), defaulted: true },
    csApiOverrides: new Map(),
    outboundAllow: { cidrs: [], hosts: new Set() },
  });
  assert.equal(
    p.check({ serverName: "x.org", host: "x.org", address: ip("10.0.0.1") }).allowed,
    false,
  );
  assert.equal(
    p.check({ serverName: "x.org", host: "x.org", address: ip("8.8.8.8") }).allowed,
    true,
  );
});

Deno.test("LIVEKIT_OUTBOUND_ALLOW: CIDRs match the address (mapped as IPv4), hosts match the name", () => {
  const p = policy({ cidrs: ["10.0.0.0/8", "fd00::5"], hosts: ["synapse.internal"] });
  const check = (addr: string, host = "h.example") =>
    p.check({ serverName: "s.example", host, address: ip(addr) }).allowed;
  assert.equal(check("10.1.2.3"), true);
  assert.equal(check("::ffff:10.1.2.3"), true);
  assert.equal(check("64:ff9b::10.1.2.3"), true);
  assert.equal(check("fd00::5"), true);
  assert.equal(check("fd00::6"), false);
  assert.equal(check("192.168.0.1"), false);
  assert.equal(check("127.0.0.1", "synapse.internal"), true);
  assert.equal(check("127.0.0.1", "Synapse.Internal."), true);
  assert.equal(check("127.0.0.1", "other.internal"), false);
});
