import assert from "node:assert/strict";
import { parseServerName } from "../../lib/matrix/server_name.ts";

Deno.test("valid server names and their parts (§2)", () => {
  const cases: [string, string, number | undefined, "v4" | "v6" | undefined][] = [
    ["example.com", "example.com", undefined, undefined],
    ["localhost:8448", "localhost", 8448, undefined],
    ["1.2.3.4", "1.2.3.4", undefined, "v4"],
    ["1.2.3.4:1", "1.2.3.4", 1, "v4"],
    ["[::1]", "::1", undefined, "v6"],
    ["[2001:db8::1]:65535", "2001:db8::1", 65535, "v6"],
    ["my-host.example.ORG", "my-host.example.ORG", undefined, undefined],
    ["a", "a", undefined, undefined],
  ];
  for (const [text, bare, port, ip] of cases) {
    const p = parseServerName(text);
    assert.ok(p, text);
    assert.equal(p.raw, text);
    assert.equal(p.bareHost, bare, text);
    assert.equal(p.port, port, text);
    assert.equal(p.ip, ip, text);
  }
  assert.equal(parseServerName("[::1]:8448")?.host, "[::1]");
  assert.ok(parseServerName("a".repeat(255)));
});

Deno.test("invalid server names (§2)", () => {
  for (
    const bad of [
      "",
      " example.com",
      "example.com ",
      "user@host",
      "::1",
      "2001:db8::1",
      "[::1",
      "[::1]x",
      "[not-ip]",
      "host:0",
      "host:65536",
      "host:123456",
      "host:",
      "host:+80",
      "host:8a",
      "exämple.com",
      "under_score.com",
      "a".repeat(256),
      "host:80:80",
    ]
  ) {
    assert.equal(parseServerName(bad), undefined, JSON.stringify(bad));
  }
});
