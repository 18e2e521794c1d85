/**
 * App-service settings (app-service.md §2): the registration file, the token variables, the
 * all-or-nothing rule with its exact texts, the launcher's permissions and the SSRF guard.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { ConfigError, loadConfig } from "../../lib/config/config.ts";
import { permissionFlags } from "../../lib/config/permissions.ts";
import { createOutboundPolicy } from "../../lib/net/ssrf.ts";
import { parseIp } from "../../lib/net/ip.ts";

const BASE = {
  LIVEKIT_URL: "wss://sfu.example.com",
  LIVEKIT_KEY: "devkey",
  LIVEKIT_SECRET: "devsecret-devsecret-devsecret-devsecret",
};

const REGISTRATION = `id: lk-jwt-service
url: http://lk-jwt-service:8080
as_token: "  AS-token-value \\n"
hs_token: HS-token-value
sender_localpart: _lk_jwt_service
rate_limited: false
namespaces:
  users:
    - regex: '@.*:example\\.com'
      exclusive: false
io.element.msc4512.proxy_prefix: rtc/livekit
io.element.msc4512.proxy_url: http://lk-jwt-service:8080
io.element.msc4502.scopes: ["urn:matrix:client:io.element.msc4502:rooms:is_joined"]
`;

function load(env: Record<string, string>, files: Record<string, string> = {}) {
  const all: Record<string, string> = { ...BASE, ...env };
  return loadConfig({
    env: (n) => all[n],
    readTextFile: (p) => {
      const text = files[p];
      if (text === undefined) throw new Error(`No such file or directory (os error 2): ${p}`);
      return text;
    },
    parseYaml: parse,
  });
}

function problems(env: Record<string, string>, files: Record<string, string> = {}): string[] {
  try {
    load(env, files);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

Deno.test("app-service config: off unless tokens and server name are all set", () => {
  assert.equal(load({}).config.appService, undefined);
  assert.deepEqual(problems({ LIVEKIT_HS_SERVER_NAME: "example.com" }), [
    "app-service mode needs the as_token, the hs_token and LIVEKIT_HS_SERVER_NAME; missing: " +
    "LIVEKIT_AS_TOKEN* (or LIVEKIT_AS_REGISTRATION_FILE), LIVEKIT_HS_TOKEN* (or " +
    "LIVEKIT_AS_REGISTRATION_FILE)",
  ]);
  assert.deepEqual(problems({ LIVEKIT_AS_TOKEN: "a", LIVEKIT_HS_TOKEN: " " }), [
    "app-service mode needs the as_token, the hs_token and LIVEKIT_HS_SERVER_NAME; missing: " +
    "LIVEKIT_HS_TOKEN* (or LIVEKIT_AS_REGISTRATION_FILE), LIVEKIT_HS_SERVER_NAME",
  ]);
  assert.deepEqual(
    problems({ LIVEKIT_AS_TOKEN: "a", LIVEKIT_HS_TOKEN: "b", LIVEKIT_HS_SERVER_NAME: "bad name" }),
    ['LIVEKIT_HS_SERVER_NAME must be a Matrix server name (host[:port]), got "bad name"'],
  );
  assert.deepEqual(problems({ LIVEKIT_CAN_UPDATE_OWN_METADATA: "maybe" }), [
    'LIVEKIT_CAN_UPDATE_OWN_METADATA must be true or false, got "maybe"',
  ]);
  for (const bad of ["-1", "86401", "5s", "1.5"]) {
    assert.deepEqual(problems({ LIVEKIT_MEMBERSHIP_CHECK_INTERVAL_SECONDS: bad }), [
      `LIVEKIT_MEMBERSHIP_CHECK_INTERVAL_SECONDS must be an integer between 0 and 86400, got "${bad}"`,
    ]);
  }
});

Deno.test("app-service config: membership sweep period, default 30 s, 0 turns it off (§2, §8)", () => {
  const base = { LIVEKIT_AS_TOKEN: "a", LIVEKIT_HS_TOKEN: "b", LIVEKIT_HS_SERVER_NAME: "hs.test" };
  assert.equal(load(base).config.appService!.membershipCheckIntervalMs, 30_000);
  for (const [raw, ms] of [["0", 0], ["5", 5_000], ["86400", 86_400_000]] as const) {
    const { config } = load({ ...base, LIVEKIT_MEMBERSHIP_CHECK_INTERVAL_SECONDS: raw });
    assert.equal(config.appService!.membershipCheckIntervalMs, ms, raw);
  }
});

Deno.test("app-service config: tokens from variables and files, trimmed; secrets masked", () => {
  const { config, notes } = load({
    LIVEKIT_AS_TOKEN: "  as-1\n",
    LIVEKIT_HS_TOKEN_FROM_FILE: "/run/hs",
    LIVEKIT_HS_SERVER_NAME: "example.com:8448",
    LIVEKIT_AS_ID: "my-id",
    LIVEKIT_CAN_UPDATE_OWN_METADATA: "TRUE",
  }, { "/run/hs": "hs-1\n" });
  const as = config.appService!;
  assert.equal(as.asToken.reveal(), "as-1");
  assert.equal(as.hsToken.reveal(), "hs-1");
  assert.equal(as.serverName, "example.com:8448");
  assert.equal(as.id, "my-id");
  assert.equal(as.canUpdateOwnMetadata, true);
  assert.equal(as.source, 'LIVEKIT_AS_TOKEN and file "/run/hs"');
  assert.equal(JSON.stringify(as).includes("as-1"), false);
  assert.equal(JSON.stringify(as).includes("hs-1"), false);
  assert.equal(notes.some((n) => /as-1|hs-1/.test(n.message)), false);
  assert.deepEqual(
    problems({ LIVEKIT_AS_TOKEN_FROM_FILE: "/missing", LIVEKIT_HS_TOKEN: "x" }),
    ['failed reading LIVEKIT_AS_TOKEN_FROM_FILE "/missing": No such file or directory (os error 2): /missing'],
  );
});

Deno.test("app-service config: the registration file wins and is checked", () => {
  const files = { "/reg.yaml": REGISTRATION };
  const { config, notes } = load({
    LIVEKIT_AS_REGISTRATION_FILE: "/reg.yaml",
    LIVEKIT_AS_TOKEN: "ignored",
    LIVEKIT_HS_SERVER_NAME: "example.com",
  }, files);
  const as = config.appService!;
  assert.equal(as.asToken.reveal(), "AS-token-value");
  assert.equal(as.hsToken.reveal(), "HS-token-value");
  assert.equal(as.id, "lk-jwt-service");
  assert.equal(as.registration?.url, "http://lk-jwt-service:8080");
  assert.equal(as.registration?.proxyPrefix, "rtc/livekit");
  assert.deepEqual(
    notes.filter((n) => n.level === "warn" && !/REDIS/.test(n.message)).map((n) => n.message),
    ["LIVEKIT_AS_TOKEN* is ignored because LIVEKIT_AS_REGISTRATION_FILE is set"],
  );
  const env = { LIVEKIT_AS_REGISTRATION_FILE: "/reg.yaml", LIVEKIT_HS_SERVER_NAME: "example.com" };
  assert.deepEqual(problems(env, { "/reg.yaml": "- a\n- b\n" }), [
    'LIVEKIT_AS_REGISTRATION_FILE "/reg.yaml" must be a YAML mapping',
  ]);
  assert.deepEqual(problems(env, { "/reg.yaml": "id: x\nas_token: 5\n" }), [
    'LIVEKIT_AS_REGISTRATION_FILE "/reg.yaml" has no as_token (a non-empty string)',
    'LIVEKIT_AS_REGISTRATION_FILE "/reg.yaml" has no hs_token (a non-empty string)',
  ]);
  assert.match(
    problems(env, { "/reg.yaml": "as_token: [unclosed\n" })[0]!,
    /^failed parsing LIVEKIT_AS_REGISTRATION_FILE "\/reg\.yaml": /,
  );
  assert.match(problems(env)[0]!, /^failed reading LIVEKIT_AS_REGISTRATION_FILE "\/reg\.yaml": /);
  // The server name is still required.
  assert.deepEqual(problems({ LIVEKIT_AS_REGISTRATION_FILE: "/reg.yaml" }, files), [
    "app-service mode needs the as_token, the hs_token and LIVEKIT_HS_SERVER_NAME; missing: " +
    "LIVEKIT_HS_SERVER_NAME",
  ]);
});

Deno.test("app-service config: a registration this service cannot work with is a warning", () => {
  const { notes } = load(
    { LIVEKIT_AS_REGISTRATION_FILE: "/reg.yaml", LIVEKIT_HS_SERVER_NAME: "example.com" },
    { "/reg.yaml": "id: x\nurl: null\nas_token: same\nhs_token: same\nnamespaces: {}\n" },
  );
  const warnings = notes.filter((n) => n.level === "warn").map((n) => n.message).join("\n");
  assert.match(warnings, /as_token and hs_token are equal/);
  assert.match(warnings, /io\.element\.msc4512\.proxy_prefix: rtc\/livekit/);
  assert.match(warnings, /io\.element\.msc4502\.scopes/);
  assert.match(warnings, /rate_limited: false/);
  assert.match(warnings, /namespaces\.users/);
  assert.doesNotMatch(warnings, /same/);
});

Deno.test("app-service config: the homeserver is a configured destination (permissions, SSRF)", () => {
  const env: Record<string, string> = {
    ...BASE,
    LIVEKIT_AS_REGISTRATION_FILE: "/etc/lk/registration.yaml",
    LIVEKIT_HS_TOKEN_FROM_FILE: "/etc/lk/hs",
    LIVEKIT_HS_SERVER_NAME: "matrix.internal:8448",
  };
  const plan = permissionFlags({
    env: (n) => env[n],
    resolved: new Map([["matrix.internal", ["10.1.2.3"]], ["sfu.example.com", ["203.0.113.7"]]]),
  });
  const read = plan.flags.find((f) => f.startsWith("--allow-read="))!;
  assert.match(read, /\/etc\/lk\/registration\.yaml/);
  assert.match(read, /\/etc\/lk\/hs/);
  const deny = plan.flags.find((f) => f.startsWith("--deny-net="))!;
  assert.doesNotMatch(deny, /10\.0\.0\.0\/8/, "10.1.2.3 is carved out of 10.0.0.0/8");
  const strict = permissionFlags({
    env: (n) => env[n],
    resolved: new Map([["matrix.internal", ["10.1.2.3"]]]),
    strict: true,
  });
  assert.match(strict.flags.find((f) => f.startsWith("--allow-net="))!, /matrix\.internal/);
  const envVar = plan.flags.find((f) => f.startsWith("--allow-env="))!;
  for (
    const name of [
      "LIVEKIT_AS_REGISTRATION_FILE",
      "LIVEKIT_AS_TOKEN",
      "LIVEKIT_HS_TOKEN_FROM_FILE",
      "LIVEKIT_HS_SERVER_NAME",
      "LIVEKIT_AS_ID",
      "LIVEKIT_CAN_UPDATE_OWN_METADATA",
      "LIVEKIT_MEMBERSHIP_CHECK_INTERVAL_SECONDS",
    ]
  ) assert.ok(envVar.split(/[=,]/).includes(name), name);

  const { config } = load(
    { LIVEKIT_AS_TOKEN: "a", LIVEKIT_HS_TOKEN: "b", LIVEKIT_HS_SERVER_NAME: "matrix.internal" },
  );
  const policy = createOutboundPolicy(config);
  const address = parseIp("10.1.2.3")!.value;
  assert.deepEqual(
    policy.check({ serverName: "matrix.internal", host: "matrix.internal", address }),
    { allowed: true },
  );
  assert.equal(
    policy.check({ serverName: "other.example", host: "other.example", address }).allowed,
    false,
  );
});
