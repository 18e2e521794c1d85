/**
 * Generated-input tests of the configuration parser (configuration.md §2–§5;
 * lib/config/config.ts `loadConfig`): for random environments over the known variable names
 * and random file contents (or read failures of any kind), `loadConfig` either returns a
 * configuration or throws `ConfigError` whose problems are non-empty strings, never anything
 * else; the secret never appears in a problem or a note.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { CONFIG_VARIABLES, ConfigError, loadConfig } from "../../lib/config/config.ts";
import { parseRedisUrl } from "../../lib/config/redis_url.ts";

/** A secret nothing else produces, to search for in messages. */
const SECRET = "Zq7-SECRET-VALUE-4f0c-never-printed";
const FILES = ["/run/key", "/run/secret", "/run/ca.pem", "/missing"];

const plausible: Record<string, fc.Arbitrary<string>> = {
  LIVEKIT_URL: fc.oneof(
    fc.constantFrom(
      "wss://sfu.example.com",
      "ws://127.0.0.1:7880/livekit/sfu",
      "ftp://x",
      "wss://",
    ),
    fc.webUrl(),
  ),
  LIVEKIT_KEY: fc.constantFrom("devkey", " key ", ""),
  LIVEKIT_SECRET: fc.constantFrom(SECRET, ` ${SECRET}\n`, ""),
  LIVEKIT_KEY_FILE: fc.constantFrom(...FILES),
  LIVEKIT_KEY_FROM_FILE: fc.constantFrom(...FILES),
  LIVEKIT_SECRET_FROM_FILE: fc.constantFrom(...FILES),
  LIVEKIT_SECRET_FILE: fc.constantFrom(...FILES),
  LIVEKIT_FULL_ACCESS_HOMESERVERS: fc.oneof(
    fc.constantFrom("*", " , ", "example.com, *", "a.com b.com"),
    fc.array(fc.domain(), { maxLength: 3 }).map((d) => d.join(",")),
  ),
  LIVEKIT_JWT_BIND: fc.constantFrom(
    ":8080",
    "0.0.0.0:9000",
    "[::1]:80",
    "localhost:1",
    "8080",
    ":99999",
  ),
  LIVEKIT_JWT_PORT: fc.constantFrom("8080", "0", "65536", "x"),
  LK_JWT_PORT: fc.constantFrom("8080", "-1"),
  LIVEKIT_INSECURE_SKIP_VERIFY_TLS: fc.constantFrom("YES_I_KNOW_WHAT_I_AM_DOING", "true", ""),
  LIVEKIT_LOG_LEVEL: fc.constantFrom("debug", "WARNING", "loud"),
  LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS: fc.constantFrom(
    "0",
    "+30",
    "-1",
    "1e3",
    "99999999999999999999",
  ),
  LIVEKIT_CS_API_URL_OVERRIDES: fc.constantFrom("a=http://x", "a=", "=b", "a=ftp://x,", "a=b=c"),
  LIVEKIT_FEDERATION_URL_OVERRIDES: fc.constantFrom("a=https://x:8448/p", "a"),
  LIVEKIT_REDIS_URL: fc.oneof(
    fc.constantFrom(
      "redis://127.0.0.1:6379/0",
      `redis://user:${SECRET}@host/abc`,
      "unix:///run/redis.sock?db=2",
      "unix://",
      "rediss://",
      "http://x",
    ),
  ),
  LIVEKIT_TRUSTED_PROXIES: fc.constantFrom("10.0.0.0/8 ::1", "10.0.0.0/33", "", "x"),
  LIVEKIT_OUTBOUND_ALLOW: fc.constantFrom("synapse.internal, 10.0.0.5", "a/b", "[::1]"),
  LIVEKIT_METRICS_BIND: fc.constantFrom(":9100", "nope"),
};

function valueFor(name: string): fc.Arbitrary<string> {
  const random = fc.oneof(
    fc.string({ maxLength: 20 }),
    fc.string({ unit: "binary", maxLength: 20 }),
    fc.integer().map(String),
    fc.double().map(String),
  );
  const specific = plausible[name];
  return specific ? fc.oneof({ arbitrary: specific, weight: 3 }, random) : random;
}

const VALID_BASE = {
  LIVEKIT_URL: "wss://sfu.example.com",
  LIVEKIT_KEY: "devkey",
  LIVEKIT_SECRET: SECRET,
};

/** Random variables, half of the time on top of a valid minimum (so both outcomes occur). */
const env = fc.tuple(
  fc.boolean(),
  fc.uniqueArray(fc.constantFrom(...CONFIG_VARIABLES), { maxLength: 8 }).chain((names) =>
    fc.tuple(...names.map((n) => valueFor(n).map((v) => [n, v] as const)))
  ),
).map(([withBase, pairs]) => ({
  ...(withBase ? VALID_BASE : {}),
  ...Object.fromEntries(pairs),
} as Record<string, string>));

/** File contents, or a read failure that may be any thrown value. */
const files = fc.dictionary(
  fc.constantFrom(...FILES),
  fc.oneof(
    fc.constantFrom(`devkey: ${SECRET}\n`, `${SECRET}\n`, "devkey", "a:b:c", "", ":"),
    fc.string({ maxLength: 20 }),
    fc.record({ fails: fc.anything({ maxDepth: 1 }) }),
  ),
);

function run(vars: Record<string, string>, contents: Record<string, unknown>) {
  return loadConfig({
    env: (name) => vars[name],
    readTextFile: (path) => {
      const content = contents[path];
      if (content === undefined) throw new Deno.errors.NotFound(`No such file: ${path}`);
      if (typeof content === "object" && content !== null && "fails" in content) {
        throw (content as { fails: unknown }).fails;
      }
      return String(content);
    },
  });
}

Deno.test("fuzz config: loadConfig returns a config or throws ConfigError, nothing else", () => {
  let valid = 0;
  fc.assert(
    fc.property(env, files, (vars, contents) => {
      let result;
      try {
        result = run(vars, contents);
      } catch (err) {
        assert.ok(err instanceof ConfigError, `unexpected ${String(err)}`);
        assert.ok(err.problems.length > 0);
        for (const problem of err.problems) {
          assert.equal(typeof problem, "string");
          assert.ok(problem.length > 0);
          assert.ok(!problem.includes(SECRET), `secret in problem: ${problem}`);
        }
        return;
      }
      valid++;
      assert.ok(Object.isFrozen(result.config));
      assert.equal(result.config.livekitUrl, vars.LIVEKIT_URL);
      for (const note of result.notes) assert.ok(!note.message.includes(SECRET), note.message);
    }),
    { numRuns: 3000 },
  );
  assert.ok(valid > 0, "no generated environment was valid");
});

Deno.test("fuzz config: a valid base stays valid whatever unrelated variables hold", () => {
  const base = VALID_BASE;
  const noise = fc.dictionary(
    fc.constantFrom("LIVEKIT_UNKNOWN", "HOME", "LIVEKIT_url", "livekit_key", "LIVEKIT_URL_2"),
    fc.string({ maxLength: 10 }),
  );
  fc.assert(
    fc.property(noise, (extra) => {
      const { config } = run({ ...extra, ...base }, {});
      assert.equal(config.livekitKey, "devkey");
      assert.equal(config.livekitSecret.reveal(), SECRET);
    }),
    { numRuns: 300 },
  );
});

/** The URL quoted in the Redis problem message, or undefined when there is none. */
function quotedRedisUrl(problems: readonly string[]): string | undefined {
  for (const problem of problems) {
    const m = /invalid Redis URL ("(?:[^"\\]|\\.)*")/.exec(problem);
    if (m?.[1]) return JSON.parse(m[1]) as string;
  }
  return undefined;
}

function assertPasswordMasked(password: string, badDb: string): void {
  const raw = `redis://user:${password}@redis.internal:6379${badDb}`;
  let problems: string[] = [];
  try {
    run({ ...VALID_BASE, LIVEKIT_REDIS_URL: raw }, {});
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    problems = err.problems;
  }
  const shown = quotedRedisUrl(problems);
  // A `?` or `#` in an unencoded password ends the authority: the rest becomes the query or
  // fragment, the URL is valid and no message (hence no leak) is produced.
  if (shown === undefined && /[?#]/.test(password)) return;
  assert.ok(shown !== undefined, `no Redis problem for ${raw}`);
  let url: URL | undefined;
  try {
    url = new URL(shown);
  } catch {
    url = undefined;
  }
  const leaked = url === undefined ? shown.includes(password) : !["", "***"].includes(url.password);
  assert.ok(!leaked, `password ${JSON.stringify(password)} shown as ${JSON.stringify(shown)}`);
}

const badDb = fc.constantFrom("/abc", "/0x", "/-1");

Deno.test("fuzz config: a Redis password never survives masking in the startup error", () => {
  // Characters a password may contain unencoded in the userinfo of a URL.
  const passwordChar = fc.constantFrom(..."abcXYZ019-_.~!$&'()*+,;=:%".split(""));
  fc.assert(
    fc.property(
      fc.string({ unit: passwordChar, minLength: 1, maxLength: 16 }),
      badDb,
      assertPasswordMasked,
    ),
    { numRuns: 1000 },
  );
});

// Regression tests for lib/config/config.ts maskRedisUrl(): a password containing `@` or `/`
// unencoded (common in generated and base64 passwords) is printed in the startup error
// `Could not connect Redis store: store: invalid Redis URL "<url>": ...`: entirely when `/`
// makes the URL unparsable ("redis://user:abc/def+gh==@host:6379/0" → "not an absolute URL"
// with the password shown), in part after the first `@` otherwise ("redis://user:***@a@host…").
for (const password of ["@a", "a/a", "abc/def+gh=="]) {
  Deno.test({
    name: `fuzz config regression: Redis password ${JSON.stringify(password)} is masked`,
    fn: () => assertPasswordMasked(password, "/abc"),
  });
}

Deno.test({
  name: "fuzz config regression: Redis passwords with any URL character are masked",
  fn: () => {
    const passwordChar = fc.constantFrom(..."abcXYZ019-_.~!$&'()*+,;=:%@/#?".split(""));
    fc.assert(
      fc.property(
        fc.string({ unit: passwordChar, minLength: 1, maxLength: 16 }),
        badDb,
        assertPasswordMasked,
      ),
      { numRuns: 1000 },
    );
  },
});

// Regression tests for lib/config/config.ts redisUrlProblem(): it accepts Redis URLs that
// lib/config/redis_url.ts parseRedisUrl() refuses (`unix:///`, a database number of 2^31 or more,
// `?db=` that is not a number), so the service passes validation and then fails while starting
// the store with a bare `TypeError` instead of the configuration error
// `Could not connect Redis store: store: invalid Redis URL "<url>": <cause>`.
// Both now use one parser.
function assertRedisUrlAgreement(raw: string): void {
  let configAccepts = true;
  try {
    run({ ...VALID_BASE, LIVEKIT_REDIS_URL: raw }, {});
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    configAccepts = false;
  }
  let storeAccepts = true;
  try {
    parseRedisUrl(raw);
  } catch {
    storeAccepts = false;
  }
  assert.equal(
    configAccepts,
    storeAccepts,
    `${raw}: config ${configAccepts}, store ${storeAccepts}`,
  );
}

for (const raw of ["unix:///", "redis://h/99999999999", "unix:///x?db=abc"]) {
  Deno.test({
    name: `fuzz config regression: ${raw} is refused by the configuration`,
    fn: () => assertRedisUrlAgreement(raw),
  });
}

Deno.test("fuzz config: the configuration and the store agree on ordinary Redis URLs", () => {
  const host = fc.constantFrom("127.0.0.1", "redis.internal", "[::1]", "");
  const db = fc.constantFrom("", "/", "/0", "/15", "/x", "/2147483647");
  fc.assert(
    fc.property(fc.constantFrom("redis", "rediss", "http"), host, db, (scheme, h, d) => {
      assertRedisUrlAgreement(`${scheme}://${h}${h === "" ? "" : ":6379"}${d}`);
    }),
    { numRuns: 300 },
  );
});
