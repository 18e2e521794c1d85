import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import {
  decodeValue,
  encodeField,
  encodeValue,
  formatRfc3339,
  goJsonString,
  msToNs,
  nsToMs,
  parseRfc3339,
} from "../../lib/store/codec.ts";

const ROOM = "krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs";
const IDENTITY = "vYVt8NUMTb0rAawkFqilcAtxKgY26U3Ab7R9INviNnU";
const EXAMPLE_VALUE =
  '{"Params":{"DelayId":"syd_abcdefghij","DelayTimeout":10000000000,"ServerName":"example.com","LiveKitRoom":"krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs","LiveKitIdentity":"vYVt8NUMTb0rAawkFqilcAtxKgY26U3Ab7R9INviNnU"},"RestartedAt":"2026-07-23T10:15:30.123456789Z"}';

Deno.test("codec field: the delegation.md §10.1 examples, byte-exact", () => {
  strictEqual(
    encodeField(ROOM, IDENTITY),
    '["krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs","vYVt8NUMTb0rAawkFqilcAtxKgY26U3Ab7R9INviNnU"]',
  );
  strictEqual(
    encodeField(ROOM, "@alice:example.com:DEVICE"),
    '["krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs","@alice:example.com:DEVICE"]',
  );
});

Deno.test("codec field: <, >, &, U+2028, U+2029 escaped like Go's encoder, lowercase hex", () => {
  strictEqual(
    encodeField("a<b>c", "x&y\u2028z\u2029"),
    '["a\\u003cb\\u003ec","x\\u0026y\\u2028z\\u2029"]',
  );
  strictEqual(goJsonString("<script>&amp;"), '"\\u003cscript\\u003e\\u0026amp;"');
});

Deno.test("codec field: everything else as canonical JSON (tokens-and-rooms.md §1)", () => {
  strictEqual(goJsonString('q"b\\s'), '"q\\"b\\\\s"');
  strictEqual(goJsonString("\b\t\n\f\r"), '"\\b\\t\\n\\f\\r"');
  strictEqual(goJsonString("\u0001\u001f"), '"\\u0001\\u001f"');
  strictEqual(goJsonString("/\u007fé😀"), '"/\u007fé😀"');
  strictEqual(encodeField("", ""), '["",""]');
});

Deno.test("codec value: the §10.1 example, byte-exact, keys in order", () => {
  strictEqual(
    encodeValue({
      delayId: "syd_abcdefghij",
      delayTimeoutNs: msToNs(10_000),
      serverName: "example.com",
      room: ROOM,
      identity: IDENTITY,
      restartedAt: "2026-07-23T10:15:30.123456789Z",
    }),
    EXAMPLE_VALUE,
  );
});

Deno.test("codec value: DelayTimeout in ns is exact up to the largest T", () => {
  strictEqual(msToNs(9_223_372_036_854), 9_223_372_036_854_000_000n);
  const v = encodeValue({
    delayId: "d<",
    delayTimeoutNs: msToNs(9_223_372_036_854),
    serverName: "s",
    room: "r",
    identity: "i",
    restartedAt: "2026-07-23T10:15:30Z",
  });
  strictEqual(
    v,
    '{"Params":{"DelayId":"d\\u003c","DelayTimeout":9223372036854000000,"ServerName":"s","LiveKitRoom":"r","LiveKitIdentity":"i"},"RestartedAt":"2026-07-23T10:15:30Z"}',
  );
  strictEqual(decodeValue(v).delayTimeoutNs, 9_223_372_036_854_000_000n);
  strictEqual(nsToMs(1_500_000n), 1.5);
});

Deno.test("codec RestartedAt: UTC, Z, up to 9 fractional digits, trailing zeros trimmed", () => {
  const base = Date.UTC(2026, 6, 23, 10, 15, 30);
  strictEqual(formatRfc3339(base), "2026-07-23T10:15:30Z");
  strictEqual(formatRfc3339(base + 100), "2026-07-23T10:15:30.1Z");
  strictEqual(formatRfc3339(base + 123), "2026-07-23T10:15:30.123Z");
  strictEqual(formatRfc3339(base + 123.4), "2026-07-23T10:15:30.1234Z");
  strictEqual(formatRfc3339(base + 0.001), "2026-07-23T10:15:30.000001Z");
  strictEqual(formatRfc3339(base + 999.9999), "2026-07-23T10:15:31Z");
  strictEqual(formatRfc3339(Date.UTC(1999, 0, 2, 3, 4, 5)), "1999-01-02T03:04:05Z");
});

Deno.test("codec RestartedAt: readers accept offsets and 0–9 fractional digits", () => {
  const base = Date.UTC(2026, 6, 23, 10, 15, 30);
  strictEqual(parseRfc3339("2026-07-23T10:15:30Z"), base);
  strictEqual(parseRfc3339("2026-07-23T12:15:30+02:00"), base);
  strictEqual(parseRfc3339("2026-07-23T05:45:30-04:30"), base);
  strictEqual(parseRfc3339("2026-07-23T10:15:30.5Z"), base + 500);
  strictEqual(parseRfc3339("2026-07-23T12:15:30.250+02:00"), base + 250);
  const nano = parseRfc3339("2026-07-23T10:15:30.123456789Z")!;
  strictEqual(Math.round((nano - base) * 1e3), 123457);
  strictEqual(parseRfc3339("0001-01-01T00:00:00Z"), -62_135_596_800_000);
  strictEqual(parseRfc3339("2024-02-29T00:00:00Z"), Date.UTC(2024, 1, 29));
  for (
    const bad of [
      "2026-07-23 10:15:30Z",
      "2026-07-23T10:15:30",
      "2026-07-23T10:15:30.Z",
      "2026-07-23T10:15:30.1234567890Z",
      "2026-13-01T00:00:00Z",
      "2025-02-29T00:00:00Z",
      "2026-07-23T24:00:00Z",
      "2026-07-23T10:15:30+0200",
      "2026-07-23t10:15:30z",
    ]
  ) {
    strictEqual(parseRfc3339(bad), undefined, bad);
  }
});

Deno.test("codec decode: the example value, any escaping, unknown keys ignored", () => {
  const v = decodeValue(EXAMPLE_VALUE);
  deepStrictEqual(
    { ...v, restartedAtMs: Math.floor(v.restartedAtMs) },
    {
      delayId: "syd_abcdefghij",
      delayTimeoutNs: 10_000_000_000n,
      serverName: "example.com",
      room: ROOM,
      identity: IDENTITY,
      restartedAtMs: Date.UTC(2026, 6, 23, 10, 15, 30, 123),
      restartedAtText: "2026-07-23T10:15:30.123456789Z",
    },
  );
  const escaped = decodeValue(
    '{"Extra":[1],"RestartedAt":"2026-07-23T12:15:30+02:00","Params":{"LiveKitIdentity":"\\u0040a","LiveKitRoom":"r\\u003c","ServerName":"s","DelayTimeout":5,"DelayId":"\\u0064","More":true}}',
  );
  strictEqual(escaped.identity, "@a");
  strictEqual(escaped.room, "r<");
  strictEqual(escaped.delayId, "d");
  strictEqual(escaped.delayTimeoutNs, 5n);
});

Deno.test("codec decode: values not of the format are refused", () => {
  const good = JSON.parse(EXAMPLE_VALUE);
  const variants: unknown[] = [
    "not json",
    "[]",
    "null",
    { ...good, Params: null },
    { ...good, Params: { ...good.Params, DelayId: 5 } },
    { ...good, Params: { ...good.Params, delayId: "x", DelayId: undefined } },
    { ...good, Params: { ...good.Params, DelayTimeout: "10" } },
    { ...good, Params: { ...good.Params, DelayTimeout: 1.5 } },
    { ...good, Params: { ...good.Params, DelayTimeout: 1e30 } },
    { ...good, RestartedAt: 5 },
    { ...good, RestartedAt: "yesterday" },
    { ...good, restartedAt: good.RestartedAt, RestartedAt: undefined },
  ];
  for (const v of variants) {
    const raw = typeof v === "string" ? v : JSON.stringify(v);
    throws(() => decodeValue(raw), SyntaxError, raw);
  }
  throws(() => decodeValue(EXAMPLE_VALUE.replace("10000000000", "9223372036854775808")));
  strictEqual(
    decodeValue(EXAMPLE_VALUE.replace("10000000000", "-9223372036854775808")).delayTimeoutNs,
    -9223372036854775808n,
  );
});

Deno.test("codec value: app-service jobs carry their user after the reference's keys", () => {
  const job = {
    delayId: "syd_abcdefghij",
    delayTimeoutNs: msToNs(10_000),
    serverName: "example.com",
    room: ROOM,
    identity: IDENTITY,
    restartedAt: "2026-07-23T10:15:30.123456789Z",
  };
  // Standalone jobs: byte-identical to the reference's format (no extra key at all).
  strictEqual(encodeValue(job), EXAMPLE_VALUE);
  strictEqual(encodeValue({ ...job, appServiceUser: undefined }), EXAMPLE_VALUE);
  const value = encodeValue({ ...job, appServiceUser: "@alice:example.com" });
  strictEqual(
    value,
    EXAMPLE_VALUE.replace(
      `"LiveKitIdentity":"${IDENTITY}"}`,
      `"LiveKitIdentity":"${IDENTITY}","AppServiceUser":"@alice:example.com"}`,
    ),
  );
  strictEqual(decodeValue(value).appServiceUser, "@alice:example.com");
  strictEqual("appServiceUser" in decodeValue(EXAMPLE_VALUE), false);
  // A reader that knows only the reference's keys still gets every one of them.
  const parsed = JSON.parse(value);
  deepStrictEqual(Object.keys(parsed.Params).slice(0, 5), [
    "DelayId",
    "DelayTimeout",
    "ServerName",
    "LiveKitRoom",
    "LiveKitIdentity",
  ]);
  throws(() => decodeValue(value.replace('"@alice:example.com"', "5")), SyntaxError);
});
