/** Configuration loading (configuration.md §1–§5). */
import assert from "node:assert/strict";
import { ConfigError, envWithFlags, loadConfig } from "../../lib/config/config.ts";

const BASE = {
  LIVEKIT_URL: "wss://sfu.example.com",
  LIVEKIT_KEY: "devkey",
  LIVEKIT_SECRET: "devsecret-devsecret-devsecret-devsecret",
  LIVEKIT_FULL_ACCESS_HOMESERVERS: "example.com",
};

function load(env: Record<string, string>, files: Record<string, string> = {}) {
  return loadConfig({
    env: (n) => env[n],
    readTextFile: (p) => {
      const f = files[p];
      if (f === undefined) {
        throw new Error(`No such file or directory (os error 2): readfile '${p}'`);
      }
      return f;
    },
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

Deno.test("config: defaults", () => {
  const { config, notes } = load(BASE);
  assert.equal(config.livekitUrl, "wss://sfu.example.com");
  assert.equal(config.livekitApiBase, "https://sfu.example.com");
  assert.deepEqual(config.bind, { host: "", port: 8080, text: ":8080" });
  assert.equal(config.sanityCheckIntervalMs, 30_000);
  assert.equal(config.jwtValiditySeconds, 3600);
  assert.equal(config.maxJobsPerUser, 10);
  assert.equal(config.maxJobs, 10_000);
  assert.deepEqual(config.rateLimitIp, { perSecond: 50, burst: 500 });
  assert.deepEqual(config.rateLimitUser, { perSecond: 0.5, burst: 10 });
  assert.equal(config.skipVerifyTls, false);
  assert.equal(config.trustedProxies.length, 6);
  assert.ok(notes.some((n) => n.message === "log level defaulting to info"));
  assert.ok(notes.some((n) => n.message === "LIVEKIT_REDIS_URL not set. Using in-memory store."));
});

Deno.test("config: RoomService base maps the scheme and keeps the path (tokens-and-rooms.md §6.1)", () => {
  const base = (url: string) => load({ ...BASE, LIVEKIT_URL: url }).config.livekitApiBase;
  assert.equal(base("wss://host/livekit/sfu"), "https://host/livekit/sfu");
  assert.equal(base("ws://127.0.0.1:7880/"), "http://127.0.0.1:7880");
  assert.equal(base("https://host:8443/a/b/"), "https://host:8443/a/b");
  assert.equal(
    load({ ...BASE, LIVEKIT_URL: "wss://host/livekit/sfu/" }).config.livekitUrl,
    "wss://host/livekit/sfu/",
  );
});

const MUST_BE_SET = "LIVEKIT_KEY* / LIVEKIT_SECRET* and LIVEKIT_URL must be set";
const KEY_NOT_SET =
  "LIVEKIT_KEY is not set: the LiveKit API key (or set LIVEKIT_KEY_FROM_FILE or LIVEKIT_KEY_FILE)";
const SECRET_NOT_SET =
  "LIVEKIT_SECRET is not set: the LiveKit API secret (or set LIVEKIT_SECRET_FROM_FILE or LIVEKIT_KEY_FILE)";
const URL_NOT_SET =
  "LIVEKIT_URL is not set: the SFU's WebSocket URL that clients connect to, e.g. LIVEKIT_URL=wss://sfu.example.com";

Deno.test("config: missing key/secret/URL: the reference text, then what exactly is missing", () => {
  assert.deepEqual(problems({ LIVEKIT_URL: "wss://x" }), [
    MUST_BE_SET,
    KEY_NOT_SET,
    SECRET_NOT_SET,
  ]);
  assert.deepEqual(problems({ ...BASE, LIVEKIT_URL: "" }), [MUST_BE_SET, URL_NOT_SET]);
  assert.deepEqual(problems({ ...BASE, LIVEKIT_SECRET: "" }), [MUST_BE_SET, SECRET_NOT_SET]);
  assert.deepEqual(problems({ ...BASE, LIVEKIT_KEY: " \r\n" }), [
    MUST_BE_SET,
    "LIVEKIT_KEY is blank: the LiveKit API key must not be only spaces or line breaks",
  ]);
  assert.deepEqual(problems({}), [MUST_BE_SET, KEY_NOT_SET, SECRET_NOT_SET, URL_NOT_SET]);
  assert.deepEqual(problems({ ...BASE, LIVEKIT_URL: "ftp://x" }), [
    'LIVEKIT_URL must be a ws://, wss://, http:// or https:// URL, got "ftp://x"',
  ]);
});

Deno.test("config: empty key and secret files are named with their paths", () => {
  const files: Record<string, string> = {
    "/run/empty": "\n",
    "/run/keys": " : \n",
    "/run/key": "devkey",
  };
  const run = (env: Record<string, string>) => {
    try {
      loadConfig({
        env: (name) => env[name],
        readTextFile: (path) => {
          const text = files[path];
          if (text === undefined) throw new Deno.errors.NotFound(path);
          return text;
        },
      });
      return [];
    } catch (err) {
      return (err as ConfigError).problems;
    }
  };
  const url = { LIVEKIT_URL: "wss://x" };
  assert.deepEqual(
    run({ ...url, LIVEKIT_KEY_FROM_FILE: "/run/key", LIVEKIT_SECRET_FROM_FILE: "/run/empty" }),
    [
      MUST_BE_SET,
      'LIVEKIT_SECRET_FROM_FILE "/run/empty" is empty: it must hold the LiveKit API secret',
    ],
  );
  assert.deepEqual(run({ ...url, LIVEKIT_KEY_FROM_FILE: "/run/empty", LIVEKIT_SECRET: "s" }), [
    MUST_BE_SET,
    'LIVEKIT_KEY_FROM_FILE "/run/empty" is empty: it must hold the LiveKit API key',
  ]);
  assert.deepEqual(run({ ...url, LIVEKIT_KEY_FILE: "/run/keys" }), [
    MUST_BE_SET,
    'LIVEKIT_KEY_FILE "/run/keys" holds an empty key (expected one line "<key>: <secret>")',
    'LIVEKIT_KEY_FILE "/run/keys" holds an empty secret (expected one line "<key>: <secret>")',
  ]);
});

Deno.test("config: every problem is reported, in configuration.md order", () => {
  assert.deepEqual(
    problems({
      LIVEKIT_FULL_ACCESS_HOMESERVERS: " , ",
      LIVEKIT_JWT_BIND: ":1",
      LIVEKIT_JWT_PORT: "2",
      LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS: "-1",
      LIVEKIT_CS_API_URL_OVERRIDES: "example.com",
      LIVEKIT_JWT_VALIDITY_SECONDS: "30",
    }),
    [
      MUST_BE_SET,
      KEY_NOT_SET,
      SECRET_NOT_SET,
      URL_NOT_SET,
      "LIVEKIT_FULL_ACCESS_HOMESERVERS environment variable must be set to the homeserver(s) you intend to serve — see README for guidance",
      "LIVEKIT_JWT_BIND and LIVEKIT_JWT_PORT must not be set together",
      'LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS must be a non-negative integer, got "-1"',
      'failed parsing LIVEKIT_CS_API_URL_OVERRIDES: invalid entry "example.com", expected server_name=url',
      'LIVEKIT_JWT_VALIDITY_SECONDS must be an integer between 60 and 86400, got "30"',
    ],
  );
});

Deno.test("config: full-access list (D2)", () => {
  const fa = (v: string | undefined, extra: Record<string, string> = {}) => {
    const env: Record<string, string> = { ...BASE, ...extra };
    if (v === undefined) delete env.LIVEKIT_FULL_ACCESS_HOMESERVERS;
    else env.LIVEKIT_FULL_ACCESS_HOMESERVERS = v;
    return load(env).config.fullAccess;
  };
  assert.deepEqual(fa(undefined), { wildcard: true, explicit: new Set(), defaulted: true });
  assert.deepEqual(fa(""), { wildcard: true, explicit: new Set(), defaulted: true });
  assert.deepEqual(fa("a.org, b.org\tc.org"), {
    wildcard: false,
    explicit: new Set(["a.org", "b.org", "c.org"]),
    defaulted: false,
  });
  assert.deepEqual(fa("a.org,*").wildcard, true);
  assert.deepEqual(fa("a.org,*").explicit, new Set(["a.org"]));
  // Deprecated alias used only when the new name is unset or empty.
  assert.deepEqual(
    fa(undefined, { LIVEKIT_LOCAL_HOMESERVERS: "old.org" }).explicit,
    new Set(["old.org"]),
  );
  assert.deepEqual(
    fa("new.org", { LIVEKIT_LOCAL_HOMESERVERS: "old.org" }).explicit,
    new Set(["new.org"]),
  );
});

Deno.test("config: bind and port forms", () => {
  const bind = (env: Record<string, string>) => load({ ...BASE, ...env }).config.bind;
  assert.deepEqual(bind({ LIVEKIT_JWT_BIND: "127.0.0.1:9000" }), {
    host: "127.0.0.1",
    port: 9000,
    text: "127.0.0.1:9000",
  });
  assert.deepEqual(bind({ LIVEKIT_JWT_BIND: "[::1]:8080" }), {
    host: "::1",
    port: 8080,
    text: "[::1]:8080",
  });
  assert.deepEqual(bind({ LIVEKIT_JWT_BIND: "localhost:8080" }).host, "localhost");
  assert.deepEqual(bind({ LIVEKIT_JWT_PORT: "9001" }), { host: "", port: 9001, text: ":9001" });
  assert.deepEqual(bind({ LK_JWT_PORT: "9002" }), { host: "", port: 9002, text: ":9002" });
  assert.deepEqual(bind({ LK_JWT_PORT: "9002", LIVEKIT_JWT_BIND: ":9003" }).port, 9003);
  assert.deepEqual(problems({ ...BASE, LIVEKIT_JWT_BIND: "8080" }), [
    'LIVEKIT_JWT_BIND must be host:port, got "8080"',
  ]);
  assert.deepEqual(problems({ ...BASE, LIVEKIT_JWT_PORT: "0" }), [
    'LIVEKIT_JWT_PORT must be a port number, got "0"',
  ]);
  const { notes } = load({ ...BASE, LIVEKIT_JWT_PORT: "9001" });
  assert.ok(
    notes.some((n) =>
      n.level === "warn" &&
      n.message === "!!! LIVEKIT_JWT_PORT is deprecated, use LIVEKIT_JWT_BIND !!!"
    ),
  );
});

Deno.test("config: key and secret sources (§3)", () => {
  const keys = (env: Record<string, string>, files: Record<string, string>) => {
    const { config } = load({ LIVEKIT_URL: "ws://x", ...env }, files);
    return [config.livekitKey, config.livekitSecret.reveal()];
  };
  assert.deepEqual(
    keys({ LIVEKIT_KEY_FILE: "/k" }, { "/k": "APIkey: secretsecretsecretsecretsecretsecret\n" }),
    [
      "APIkey",
      "secretsecretsecretsecretsecretsecret",
    ],
  );
  assert.deepEqual(
    keys({ LIVEKIT_KEY_FROM_FILE: "/k", LIVEKIT_SECRET_FROM_FILE: "/s", LIVEKIT_KEY: "ignored" }, {
      "/k": "fromfile\n",
      "/s": " sec \r\n",
    }),
    ["fromfile", "sec"],
  );
  assert.deepEqual(
    keys({ LIVEKIT_KEY: "k", LIVEKIT_SECRET_FILE: "/old" }, { "/old": "oldsecret" }),
    ["k", "oldsecret"],
  );
  assert.deepEqual(
    keys({ LIVEKIT_KEY_FILE: "/konly", LIVEKIT_SECRET_FILE: "/old" }, {
      "/konly": "key1\n",
      "/old": "s1",
    }),
    ["key1", "s1"],
  );
  assert.deepEqual(problems({ LIVEKIT_URL: "ws://x", LIVEKIT_KEY_FILE: "/k" }, { "/k": "a:b:c" }), [
    "invalid key secret file format!",
  ]);
  assert.deepEqual(
    problems({ LIVEKIT_URL: "ws://x", LIVEKIT_KEY_FILE: "/k" }, { "/k": "nocolon" }),
    ["invalid key secret file format!"],
  );
  const missing = problems({
    LIVEKIT_URL: "ws://x",
    LIVEKIT_KEY: "k",
    LIVEKIT_SECRET_FROM_FILE: "/nope",
  });
  assert.equal(missing.length, 1);
  assert.match(missing[0]!, /^failed reading LIVEKIT_SECRET_FROM_FILE "\/nope": /);
});

Deno.test("config: weak secrets are warned about, never printed", () => {
  const { notes } = load({ ...BASE, LIVEKIT_SECRET: "short secret" });
  const text = notes.map((n) => n.message).join("\n");
  assert.match(text, /12 bytes long/);
  assert.match(text, /whitespace/);
  assert.ok(!text.includes("short secret"));
});

Deno.test("config: skip-verify only for the exact value (D11)", () => {
  assert.equal(
    load({ ...BASE, LIVEKIT_INSECURE_SKIP_VERIFY_TLS: "YES_I_KNOW_WHAT_I_AM_DOING" }).config
      .skipVerifyTls,
    true,
  );
  for (const v of ["true", "1", "yes", "YES_I_KNOW_WHAT_I_AM_DOING "]) {
    const { config, notes } = load({ ...BASE, LIVEKIT_INSECURE_SKIP_VERIFY_TLS: v });
    assert.equal(config.skipVerifyTls, false, v);
    assert.ok(notes.some((n) => n.message.includes("TLS verification stays on")));
  }
});

Deno.test("config: log level", () => {
  assert.equal(load({ ...BASE, LIVEKIT_LOG_LEVEL: "DEBUG" }).config.logLevel, "debug");
  assert.equal(load({ ...BASE, LIVEKIT_LOG_LEVEL: "warning" }).config.logLevel, "warn");
  const { config, notes } = load({ ...BASE, LIVEKIT_LOG_LEVEL: "loud" });
  assert.equal(config.logLevel, "info");
  assert.ok(
    notes.some((n) =>
      n.level === "warn" &&
      n.message.startsWith("Invalid log level in LIVEKIT_LOG_LEVEL, defaulting to info")
    ),
  );
});

Deno.test("config: overrides", () => {
  const { config } = load({
    ...BASE,
    LIVEKIT_CS_API_URL_OVERRIDES:
      " example.com = http://synapse.internal:8008/ ,127.0.0.1:8448=http://127.0.0.1:8008,example.com=https://later",
  });
  assert.deepEqual([...config.csApiOverrides], [["example.com", "https://later"], [
    "127.0.0.1:8448",
    "http://127.0.0.1:8008",
  ]]);
  assert.deepEqual(problems({ ...BASE, LIVEKIT_CS_API_URL_OVERRIDES: "a=http://x," }), [
    'failed parsing LIVEKIT_CS_API_URL_OVERRIDES: invalid entry "", expected server_name=url',
  ]);
  assert.deepEqual(problems({ ...BASE, LIVEKIT_CS_API_URL_OVERRIDES: "a=ftp://x" }), [
    'failed parsing LIVEKIT_CS_API_URL_OVERRIDES: invalid URL "ftp://x" for "a", expected an absolute http:// or https:// URL',
  ]);
  assert.deepEqual(problems({ ...BASE, LIVEKIT_FEDERATION_URL_OVERRIDES: "=http://x" }), [
    'failed parsing LIVEKIT_FEDERATION_URL_OVERRIDES: invalid entry "=http://x", expected server_name=url',
  ]);
});

Deno.test("config: sanity interval accepts + and 0", () => {
  assert.equal(
    load({ ...BASE, LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS: "+5" }).config.sanityCheckIntervalMs,
    5000,
  );
  assert.equal(
    load({ ...BASE, LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS: "0" }).config.sanityCheckIntervalMs,
    0,
  );
  assert.equal(problems({ ...BASE, LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS: " 5" }).length, 1);
});

Deno.test("config: Redis URL validation masks the password", () => {
  assert.deepEqual(problems({ ...BASE, LIVEKIT_REDIS_URL: "http://user:hunter2@host" }), [
    'Could not connect Redis store: store: invalid Redis URL "http://user:***@host": unsupported scheme "http", expected redis, rediss or unix',
  ]);
  assert.ok(load({ ...BASE, LIVEKIT_REDIS_URL: "redis://:pw@127.0.0.1:6379/2" }).config.redisUrl);
  assert.ok(load({ ...BASE, LIVEKIT_REDIS_URL: "unix:///run/redis.sock?db=1" }).config.redisUrl);
});

Deno.test("config: section 5 settings and their errors", () => {
  const { config } = load({
    ...BASE,
    LIVEKIT_RESTRICTED_SUBSCRIBE_ONLY: "TRUE",
    LIVEKIT_RATE_LIMIT_USER_PER_SECOND: "0",
    LIVEKIT_OUTBOUND_ALLOW: "10.0.0.0/8, 192.168.1.5 fd00::5 synapse.internal",
    LIVEKIT_TRUSTED_PROXIES: "",
  });
  assert.equal(config.restrictedSubscribeOnly, true);
  assert.equal(config.rateLimitUser.perSecond, 0);
  assert.equal(config.outboundAllow.cidrs.length, 3);
  assert.deepEqual([...config.outboundAllow.hosts], ["synapse.internal"]);
  assert.equal(config.trustedProxies.length, 0);
  assert.deepEqual(
    problems({
      ...BASE,
      LIVEKIT_MAX_JOBS: "0",
      LIVEKIT_RESTRICTED_SUBSCRIBE_ONLY: "maybe",
      LIVEKIT_TRUSTED_PROXIES: "10.0.0.0/33",
    }),
    [
      'LIVEKIT_RESTRICTED_SUBSCRIBE_ONLY must be true or false, got "maybe"',
      'LIVEKIT_MAX_JOBS must be an integer >= 1, got "0"',
      'LIVEKIT_TRUSTED_PROXIES must be a list of CIDR ranges, got "10.0.0.0/33"',
    ],
  );
});

Deno.test("config: flags win over variables (§1)", () => {
  const { env, rest } = envWithFlags([
    "--livekit-jwt-bind=:9000",
    "--livekit-url",
    "ws://flag",
    "extra",
  ], (n) => ({ LIVEKIT_JWT_BIND: ":1", LIVEKIT_URL: "ws://env" } as Record<string, string>)[n]);
  assert.equal(env("LIVEKIT_JWT_BIND"), ":9000");
  assert.equal(env("LIVEKIT_URL"), "ws://flag");
  assert.deepEqual(rest, ["extra"]);
});

Deno.test("config: LIVEKIT_FULL_ACCESS_ONLY needs an explicit list", () => {
  assert.equal(load({ ...BASE, LIVEKIT_FULL_ACCESS_ONLY: "true" }).config.fullAccessOnly, true);
  assert.equal(load(BASE).config.fullAccessOnly, false);
  assert.deepEqual(
    problems({
      ...BASE,
      LIVEKIT_FULL_ACCESS_HOMESERVERS: "a.org,*",
      LIVEKIT_FULL_ACCESS_ONLY: "1",
    }),
    [
      'LIVEKIT_FULL_ACCESS_ONLY must be false while LIVEKIT_FULL_ACCESS_HOMESERVERS lets every homeserver in, got "1"',
    ],
  );
  assert.deepEqual(problems({ ...BASE, LIVEKIT_FULL_ACCESS_ONLY: "yes" }), [
    'LIVEKIT_FULL_ACCESS_ONLY must be true or false, got "yes"',
  ]);
});
