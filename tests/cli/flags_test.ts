/**
 * Tests of the launcher's flag computation step (lib/cli/flags.ts): which names are resolved,
 * CLI flags winning over variables, name servers, resolver files and the look-up budget.
 *
 * @module
 */
import assert from "node:assert/strict";
import { computeFlags, type FlagsOptions, logPlanNotes } from "../../lib/cli/flags.ts";
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
    args: ["check-config", "--livekit-url=wss://sfu.internal"],
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
  assert.deepEqual(plan.unresolved, ["LIVEKIT_FULL_ACCESS_HOMESERVERS: hs.internal"]);
  assert.deepEqual(plan.notes, []);
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
  assert.deepEqual(plan.unresolved, ["LIVEKIT_URL: slow.internal"]);
  assert.ok(!denyList(plan.flags).includes("10.0.0.0/8"), "resolved names still count");
  assert.equal(clock.pendingTimers, 0);
});

Deno.test("computeFlags() per command: help and version get nothing and look nothing up", async () => {
  for (const args of [["--version"], ["version"], ["help"], ["--help"], ["-h"], ["serve", "-h"]]) {
    const opts = options({ LIVEKIT_URL: "wss://sfu.internal" }, { args });
    const plan = await computeFlags(opts);
    assert.deepEqual(plan, { flags: [], notes: [], unresolved: [] }, args.join(" "));
    assert.deepEqual(opts.looked, [], args.join(" "));
  }
});

Deno.test("computeFlags() per command: check-config --offline has no network and no look-ups", async () => {
  const opts = options({ LIVEKIT_URL: "wss://sfu.internal", LIVEKIT_KEY_FILE: "/run/keys" }, {
    args: ["check-config", "--offline"],
  });
  const plan = await computeFlags(opts);
  assert.deepEqual(opts.looked, []);
  assert.ok(plan.flags.includes("--allow-read=/run/keys,/etc/hosts"));
  assert.ok(!plan.flags.some((f) => f.includes("-net")), plan.flags.join(" "));
  assert.deepEqual(plan.unresolved, []);
});

Deno.test("computeFlags() per command: check-config may ask the listen address's /healthz", async () => {
  // `:8080` listens on all interfaces; the probe goes to 127.0.0.1, which must be carved out.
  const plan = await computeFlags(options({ LIVEKIT_JWT_BIND: ":8080" }, {
    args: ["check-config"],
  }));
  assert.ok(!denyList(plan.flags).includes("127.0.0.0/10"));
  assert.ok(denyList(plan.flags).includes("127.0.0.2/31"), "only the probed address is open");
  const serve = await computeFlags(options({ LIVEKIT_JWT_BIND: ":8080" }));
  assert.ok(denyList(serve.flags).includes("127.0.0.0/8"), "the service itself gets no such hole");
  const named = options({ LIVEKIT_JWT_BIND: "sfu.internal:9000" }, { args: ["check-config"] });
  await computeFlags(named);
  assert.deepEqual(named.looked, ["sfu.internal"]);
});

Deno.test("computeFlags() per command: healthcheck gets the bind variables and one address", async () => {
  const plan = await computeFlags(options({ LIVEKIT_JWT_BIND: "[::]:9000" }, {
    args: ["healthcheck"],
  }));
  assert.deepEqual(plan.flags, [
    "--allow-env=LIVEKIT_JWT_BIND,LIVEKIT_JWT_PORT,LK_JWT_PORT",
    "--ignore-env",
    "--allow-net=[::1]:9000",
  ]);
  const bad = await computeFlags(options({ LIVEKIT_JWT_BIND: "9000" }, { args: ["healthcheck"] }));
  assert.ok(!bad.flags.some((f) => f.startsWith("--allow-net")));
});

Deno.test("computeFlags() refuses a usage error", async () => {
  await assert.rejects(
    () => computeFlags(options({}, { args: ["--livekit-jwt-bnd=:1"] })),
    /unknown flag --livekit-jwt-bnd; did you mean --livekit-jwt-bind\?/,
  );
});

Deno.test("logPlanNotes() logs unresolved names once at INFO in the service's format", () => {
  const plan = {
    flags: [],
    notes: ['LIVEKIT_KEY_FILE path "/a,b" contains a comma or line break'],
    unresolved: ["LIVEKIT_URL: sfu.internal", "LIVEKIT_REDIS_URL: redis.internal"],
  };
  const lines: string[] = [];
  logPlanNotes(plan, () => undefined, { write: (l) => lines.push(l), envFile: ".env" });
  assert.equal(lines.length, 3);
  assert.match(
    lines[0]!,
    / INFO Read the environment file; variables set in the environment win over it path=\.env$/,
  );
  assert.match(
    lines[1]!,
    / INFO Configured host names did not resolve; they get no exemption from --deny-net names="LIVEKIT_URL: sfu.internal, LIVEKIT_REDIS_URL: redis.internal"$/,
  );
  assert.match(lines[2]!, / WARN Permission note note=/);
  const json: string[] = [];
  logPlanNotes(plan, (n) => ({ LIVEKIT_LOG_FORMAT: "json" } as Record<string, string>)[n], {
    write: (l) => json.push(l),
  });
  assert.equal(JSON.parse(json[0]!).level, "info");
  assert.equal(
    JSON.parse(json[0]!).names,
    "LIVEKIT_URL: sfu.internal, LIVEKIT_REDIS_URL: redis.internal",
  );
  const quiet: string[] = [];
  logPlanNotes(plan, (n) => (n === "LIVEKIT_LOG_LEVEL" ? "warn" : undefined), {
    write: (l) => quiet.push(l),
  });
  assert.equal(quiet.length, 1, "INFO lines follow LIVEKIT_LOG_LEVEL");
});
