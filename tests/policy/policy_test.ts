/** Full-access classification, token buckets and client addresses. */
import assert from "node:assert/strict";
import { classify } from "../../lib/policy/access.ts";
import { createRateLimiter } from "../../lib/policy/rate_limit.ts";
import { clientAddress } from "../../lib/policy/client_ip.ts";
import { parseCidr } from "../../lib/net/ip.ts";
import { serverName } from "../../lib/ids.ts";

Deno.test("access: exact, case-sensitive, port-sensitive; * anywhere (tokens-and-rooms.md §5)", () => {
  const fa = {
    wildcard: false,
    explicit: new Set(["example.com", "localhost:8448"]),
    defaulted: false,
  };
  assert.equal(classify(fa, serverName("example.com")), "full");
  assert.equal(classify(fa, serverName("Example.com")), "restricted");
  assert.equal(classify(fa, serverName("example.com:8448")), "restricted");
  assert.equal(classify(fa, serverName("localhost:8448")), "full");
  assert.equal(classify({ ...fa, wildcard: true }, serverName("any.org")), "full");
});

Deno.test("rate limit: burst, refill, retry_after and 0 disables", () => {
  let now = 0;
  const rl = createRateLimiter({ perSecond: 2, burst: 3 }, { now: () => now });
  assert.deepEqual([rl.take("a"), rl.take("a"), rl.take("a")], [0, 0, 0]);
  assert.equal(rl.take("a"), 500);
  now = 499;
  assert.equal(rl.take("a"), 2);
  now = 500;
  assert.equal(rl.take("a"), 0);
  const off = createRateLimiter({ perSecond: 0, burst: 1 }, { now: () => now });
  for (let i = 0; i < 100; i++) assert.equal(off.take("x"), 0);
});

Deno.test("rate limit: the bucket map stays bounded; idle full buckets go first", () => {
  let now = 0;
  const rl = createRateLimiter({ perSecond: 1, burst: 2 }, { now: () => now, maxKeys: 100 });
  rl.take("hot");
  rl.take("hot");
  for (let i = 0; i < 1000; i++) rl.take(`k${i}`);
  assert.ok(rl.size <= 100);
  // A drained bucket that is not full keeps its state when there is room.
  now = 0;
  const rl2 = createRateLimiter({ perSecond: 0.001, burst: 1 }, { now: () => now, maxKeys: 10 });
  rl2.take("drained");
  for (let i = 0; i < 5; i++) rl2.take(`k${i}`);
  assert.ok(rl2.take("drained") > 0);
});

Deno.test("rate limit: defaults admit a 500-person conference through one proxy in 10 s", () => {
  let now = 0;
  const rl = createRateLimiter({ perSecond: 50, burst: 500 }, { now: () => now });
  // All 500 at the same instant, then again spread over the next 10 s (a refresh each).
  let refused = 0;
  for (let i = 0; i < 500; i++) if (rl.take("proxy") > 0) refused++;
  for (let i = 0; i < 500; i++) {
    now = 10_000 + i * 20;
    if (rl.take("proxy") > 0) refused++;
  }
  assert.equal(refused, 0);
});

Deno.test("client address: X-Forwarded-For only from trusted proxies, right-most untrusted hop", () => {
  const proxies = [parseCidr("127.0.0.0/8")!, parseCidr("10.0.0.0/8")!];
  assert.equal(clientAddress("203.0.113.1", "198.51.100.1", proxies), "203.0.113.1");
  assert.equal(clientAddress("127.0.0.1", null, proxies), "127.0.0.1");
  assert.equal(clientAddress("127.0.0.1", "198.51.100.1", proxies), "198.51.100.1");
  assert.equal(
    clientAddress("127.0.0.1", "6.6.6.6, 198.51.100.1, 10.1.1.1", proxies),
    "198.51.100.1",
  );
  assert.equal(clientAddress("127.0.0.1", "10.0.0.2, 10.1.1.1", proxies), "10.0.0.2");
  assert.equal(clientAddress("127.0.0.1", "garbage", proxies), "127.0.0.1");
  assert.equal(clientAddress("::1", "198.51.100.1", [parseCidr("::1/128")!]), "198.51.100.1");
});
