/**
 * Generated-input tests of server-name parsing (openid-and-discovery.md §2;
 * lib/matrix/server_name.ts) against an independent oracle built from regular expressions:
 * `hostname [":" port]`, at most 255 bytes, hostname an IPv4 literal, a bracketed IPv6 literal
 * (RFC 3986 `IPv6address`, no zone) or a DNS name of ASCII letters, digits, `-` and `.`;
 * port 1–5 digits with a value 1–65535.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseServerName } from "../../lib/matrix/server_name.ts";

const DEC_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])";
const IPV4 = `(?:${DEC_OCTET}\\.){3}${DEC_OCTET}`;
const H16 = "[0-9A-Fa-f]{1,4}";
const LS32 = `(?:${H16}:${H16}|${IPV4})`;
/** RFC 3986 §3.2.2 `IPv6address`, alternative by alternative. */
const IPV6 = [
  `(?:${H16}:){6}${LS32}`,
  `::(?:${H16}:){5}${LS32}`,
  `(?:${H16})?::(?:${H16}:){4}${LS32}`,
  `(?:(?:${H16}:){0,1}${H16})?::(?:${H16}:){3}${LS32}`,
  `(?:(?:${H16}:){0,2}${H16})?::(?:${H16}:){2}${LS32}`,
  `(?:(?:${H16}:){0,3}${H16})?::${H16}:${LS32}`,
  `(?:(?:${H16}:){0,4}${H16})?::${LS32}`,
  `(?:(?:${H16}:){0,5}${H16})?::${H16}`,
  `(?:(?:${H16}:){0,6}${H16})?::`,
].map((alt) => `(?:${alt})`).join("|");

const IPV4_RE = new RegExp(`^${IPV4}$`);
const SERVER_NAME_RE = new RegExp(
  `^(?<host>\\[(?<v6>${IPV6})\\]|(?<dns>[A-Za-z0-9.-]+))(?::(?<port>[0-9]{1,5}))?$`,
);

interface Expected {
  host: string;
  port: number | undefined;
  ip: "v4" | "v6" | undefined;
}

/** The independent oracle: the expected parse, or undefined for an invalid name. */
function oracle(text: string): Expected | undefined {
  if (new TextEncoder().encode(text).length > 255) return undefined;
  const m = SERVER_NAME_RE.exec(text);
  if (!m?.groups) return undefined;
  const { host, v6, dns, port } = m.groups;
  let portValue: number | undefined;
  if (port !== undefined) {
    portValue = Number(port);
    if (portValue < 1 || portValue > 65535) return undefined;
  }
  const ip = v6 !== undefined ? "v6" : dns !== undefined && IPV4_RE.test(dns) ? "v4" : undefined;
  return { host: host ?? "", port: portValue, ip };
}

function check(text: string): void {
  const parsed = parseServerName(text);
  const expected = oracle(text);
  if (expected === undefined) {
    assert.equal(parsed, undefined, `accepted ${JSON.stringify(text)}`);
    return;
  }
  assert.ok(parsed, `rejected ${JSON.stringify(text)}`);
  assert.equal(parsed.raw, text);
  assert.equal(parsed.host, expected.host);
  assert.equal(parsed.port, expected.port);
  assert.equal(parsed.ip, expected.ip, JSON.stringify(text));
  assert.equal(parsed.bareHost, expected.ip === "v6" ? expected.host.slice(1, -1) : expected.host);
}

const label = fc.stringMatching(/^[A-Za-z0-9-]{1,12}$/);
const dnsName = fc.array(label, { minLength: 1, maxLength: 5 }).map((l) => l.join("."));
const portText = fc.oneof(
  fc.integer({ min: 0, max: 99_999 }).map(String),
  fc.constantFrom("", "0", "00080", "65535", "65536", "123456", "+80", "-1", " 80", "8a"),
);
const ipv6Text = fc.oneof(
  fc.ipV6(),
  fc.ipV6().map((v) => v.toUpperCase()),
  fc.constantFrom("::", "::1", "1::", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9"),
  fc.constantFrom("::ffff:1.2.3.4", "::ffff:01.2.3.4", "fe80::1%eth0", "1:::2", ":1::2", "1::2::3"),
  fc.constantFrom("12345::", "g::1", "::1.2.3", "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4"),
);
const host = fc.oneof(
  dnsName,
  fc.ipV4(),
  fc.ipV4Extended(),
  ipv6Text.map((v) => `[${v}]`),
  ipv6Text,
  fc.constantFrom("", "[", "]", "[]", "[::1", "::1]", "a..b", ".", "-", "a_b", "ä.example"),
);
const structured = fc.tuple(host, fc.option(portText, { nil: undefined })).map(([h, p]) =>
  p === undefined ? h : `${h}:${p}`
);
const noise = fc.string({
  unit: fc.constantFrom(..."aZ09.-:[]@ _/%\u00e9\u0000\u{1f600}".split(/(?:)/u)),
  maxLength: 30,
});

Deno.test("fuzz server name: parseServerName accepts exactly the §2 grammar", () => {
  fc.assert(
    fc.property(fc.oneof(structured, noise, fc.string({ unit: "binary", maxLength: 20 })), check),
    { numRuns: 5000 },
  );
});

Deno.test("fuzz server name: the 255-byte limit counts bytes", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 240, max: 270 }),
      fc.option(portText, { nil: undefined }),
      (n, p) => {
        const name = "a".repeat(n);
        check(p === undefined ? name : `${name}:${p}`);
      },
    ),
    { numRuns: 200 },
  );
});
