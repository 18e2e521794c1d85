/**
 * Tests of the launcher's flag computation step (lib/cli/flags.ts): which names are resolved,
 * CLI flags winning over variables, name servers, resolver files and the look-up budget.
 *
 * @module
 */
import assert from "node:assert/strict";
import { computeFlags, type FlagsOptions } from "../../lib/cli/flags.ts";
import { ManualClock } from "../support/manual_clock.ts";

function options(
  vars: Record<string, string>,
  overrides: Partial<FlagsOptions> = {},
): FlagsOptions & { looked: string[] } {
  const looked: string[] = [];
  return {
    looked,
    args: [],
    env: (name) => vars[name],
    lookup: (host) => {
      looked.push(host);
      if (host === "sfu.internal") return Promise.resolve(["10.1.2.3"]);
      return Promise.reject(new Error(`getaddrinfo ENOTFOUND ${host}`));
    },
    readTextFile: (path) => {
      if (path === "/etc/resolv.conf") return "nameserver 10.255.255.53\n";
      throw new Deno.errors.NotFound(path);
    },
    exists: (path) => path === "/etc/hosts",
    ...overrides,
  };
}

function denyList(flags: readonly string[]): string[] {
  const flag = flags.find((f) => f.startsWith("--deny-net="));
  return flag ? flag.slice("--deny-net=".length).split(",") : [];
}

Deno.test("computeFlags() resolves the configured names and carves their addresses out", async () => {
  const opts = options({
    LIVEKIT_URL: "wss://sfu.internal",
    LIVEKIT_REDIS_URL: "redis://10.9.9.9",
  });
  const plan = await computeFlags(opts);
  assert.deepEqual(opts.looked, ["sfu.internal"]);
  const deny = denyList(plan.flags);
  assert.ok(deny.includes("10.1.2.2"), "neighbour of the SFU address stays denied");
  assert.ok(!deny.some((e) => e === "10.0.0.0/8"), "10.0.0.0/8 was split");
  assert.ok(deny.includes("10.255.255.52"), "neighbour of the name server stays denied");
  assert.ok(plan.flags.includes("--allow-read=/etc/hosts"));
  assert.deepEqual(plan.notes, []);
});

Deno.test("computeFlags() applies --livekit-* command-line flags over the environment", async () => {
  const opts = options({ LIVEKIT_URL: "wss://other.internal" }, {
    args: ["check-config", "--livekit-url=wss://sfu.internal", "--offline"],
  });
  const plan = await computeFlags(opts);
  assert.deepEqual(opts.looked, ["sfu.internal"]);
  assert.deepEqual(plan.notes, []);
  const skip = await computeFlags(options({}, {
    args: ["--livekit-insecure-skip-verify-tls", "YES_I_KNOW_WHAT_I_AM_DOING"],
  }));
  assert.ok(skip.flags.includes("--unsafely-ignore-certificate-errors"));
});

Deno.test("computeFlags() notes names that fail to resolve and still returns flags", async () => {
  const plan = await computeFlags(options({ LIVEKIT_FULL_ACCESS_HOMESERVERS: "hs.internal" }));
  assert.ok(plan.flags.includes("--allow-net"));
  assert.deepEqual(plan.notes, [
    "LIVEKIT_FULL_ACCESS_HOMESERVERS: hs.internal did not resolve; it gets no exemption from --deny-net",
  ]);
});

Deno.test("computeFlags() works without a resolv.conf", async () => {
  const plan = await computeFlags(options({}, {
    readTextFile: () => {
      throw new Deno.errors.NotFound("/etc/resolv.conf");
    },
  }));
  assert.ok(denyList(plan.flags).includes("10.0.0.0/8"));
});

Deno.test("computeFlags() gives up on look-ups that outlive the budget", async () => {
  const clock = new ManualClock();
  const opts = options({
    LIVEKIT_URL: "wss://slow.internal",
    LIVEKIT_REDIS_URL: "redis://sfu.internal",
  }, {
    clock,
    lookupBudgetMs: 5_000,
    lookup: (host) =>
      host === "sfu.internal" ? Promise.resolve(["10.1.2.3"]) : new Promise<string[]>(() => {}),
  });
  let done = false;
  const pending = computeFlags(opts).then((plan) => {
    done = true;
    return plan;
  });
  await clock.advance(4_999);
  assert.equal(done, false);
  await clock.advance(1);
  const plan = await pending;
  assert.deepEqual(plan.notes, [
    "LIVEKIT_URL: slow.internal did not resolve; it gets no exemption from --deny-net",
  ]);
  assert.ok(!denyList(plan.flags).includes("10.0.0.0/8"), "resolved names still count");
  assert.equal(clock.pendingTimers, 0);
});
