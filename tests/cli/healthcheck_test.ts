/**
 * Tests of `lk-jwt-service healthcheck` in-process (lib/cli/healthcheck.ts): the probe URL for
 * every row of configuration.md §8, exit status and reasons, the 3 s timeout.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  HEALTHCHECK_TIMEOUT_MS,
  healthcheckTarget,
  runHealthcheck,
} from "../../lib/cli/healthcheck.ts";
import { ManualClock } from "../support/manual_clock.ts";

function envOf(vars: Record<string, string>): (name: string) => string | undefined {
  return (name) => vars[name];
}

function urlFor(vars: Record<string, string>): string {
  const target = healthcheckTarget(envOf(vars));
  assert.ok(target.ok, JSON.stringify(target));
  return target.url;
}

Deno.test("healthcheckTarget() follows the configuration.md §8 table", () => {
  assert.equal(urlFor({}), "http://127.0.0.1:8080/healthz");
  assert.equal(urlFor({ LIVEKIT_JWT_BIND: ":8080" }), "http://127.0.0.1:8080/healthz");
  assert.equal(urlFor({ LIVEKIT_JWT_BIND: "0.0.0.0:9000" }), "http://127.0.0.1:9000/healthz");
  assert.equal(urlFor({ LIVEKIT_JWT_BIND: "127.0.0.1:9000" }), "http://127.0.0.1:9000/healthz");
  assert.equal(urlFor({ LIVEKIT_JWT_BIND: "[::]:8080" }), "http://[::1]:8080/healthz");
  assert.equal(urlFor({ LIVEKIT_JWT_BIND: "[::1]:8080" }), "http://[::1]:8080/healthz");
});

Deno.test("healthcheckTarget() keeps other hosts as they are", () => {
  assert.equal(urlFor({ LIVEKIT_JWT_BIND: "localhost:8080" }), "http://localhost:8080/healthz");
  assert.equal(urlFor({ LIVEKIT_JWT_BIND: "10.0.0.5:80" }), "http://10.0.0.5:80/healthz");
  assert.equal(urlFor({ LIVEKIT_JWT_BIND: "[fd00::5]:80" }), "http://[fd00::5]:80/healthz");
});

Deno.test("healthcheckTarget() takes LIVEKIT_JWT_BIND, then LIVEKIT_JWT_PORT, then LK_JWT_PORT", () => {
  assert.equal(urlFor({ LIVEKIT_JWT_PORT: "9001" }), "http://127.0.0.1:9001/healthz");
  assert.equal(urlFor({ LK_JWT_PORT: "9002" }), "http://127.0.0.1:9002/healthz");
  assert.equal(
    urlFor({ LIVEKIT_JWT_PORT: "9001", LK_JWT_PORT: "9002" }),
    "http://127.0.0.1:9001/healthz",
  );
  assert.equal(
    urlFor({ LIVEKIT_JWT_BIND: "127.0.0.1:9000", LK_JWT_PORT: "9002" }),
    "http://127.0.0.1:9000/healthz",
  );
  assert.equal(
    urlFor({ LIVEKIT_JWT_BIND: "", LK_JWT_PORT: "9002" }),
    "http://127.0.0.1:9002/healthz",
  );
});

Deno.test("healthcheckTarget() reports malformed values with the configuration texts", () => {
  assert.deepEqual(healthcheckTarget(envOf({ LIVEKIT_JWT_BIND: "8080" })), {
    ok: false,
    error: 'LIVEKIT_JWT_BIND must be host:port, got "8080"',
  });
  assert.deepEqual(healthcheckTarget(envOf({ LIVEKIT_JWT_PORT: "http" })), {
    ok: false,
    error: 'LIVEKIT_JWT_PORT must be a port number, got "http"',
  });
});

async function withServer(
  handler: () => Response,
  body: (port: number) => Promise<void>,
): Promise<void> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  try {
    await body(server.addr.port);
  } finally {
    await server.shutdown();
  }
}

Deno.test("runHealthcheck() exits 0 on 200 and prints nothing", async () => {
  await withServer(() => new Response("{}"), async (port) => {
    const lines: string[] = [];
    const code = await runHealthcheck(envOf({ LIVEKIT_JWT_BIND: `127.0.0.1:${port}` }), {
      write: (line) => lines.push(line),
    });
    assert.equal(code, 0);
    assert.deepEqual(lines, []);
  });
});

Deno.test("runHealthcheck() exits 1 with the status on any other answer", async () => {
  for (const status of [204, 302, 500, 503]) {
    await withServer(
      () => new Response(null, { status, headers: { location: "/healthz" } }),
      async (port) => {
        const lines: string[] = [];
        const code = await runHealthcheck(envOf({ LIVEKIT_JWT_PORT: String(port) }), {
          write: (line) => lines.push(line),
        });
        assert.equal(code, 1);
        assert.deepEqual(lines, [
          `healthcheck failed: GET http://127.0.0.1:${port}/healthz answered ${status}`,
        ]);
      },
    );
  }
});

Deno.test("runHealthcheck() exits 1 when nothing listens", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const lines: string[] = [];
  const code = await runHealthcheck(envOf({ LIVEKIT_JWT_BIND: `:${port}` }), {
    write: (line) => lines.push(line),
  });
  assert.equal(code, 1);
  assert.equal(lines.length, 1);
  assert.match(
    lines[0]!,
    new RegExp(`^healthcheck failed: GET http://127\\.0\\.0\\.1:${port}/healthz: `),
  );
});

Deno.test("runHealthcheck() gives up after 3 s", async () => {
  const clock = new ManualClock();
  let seenSignal: AbortSignal | undefined;
  const hangingFetch: typeof fetch = (_input, init) => {
    seenSignal = init?.signal ?? undefined;
    return new Promise<Response>((_resolve, reject) => {
      init?.signal?.addEventListener("abort", () => reject(init.signal?.reason));
    });
  };
  const lines: string[] = [];
  const result = runHealthcheck(envOf({}), {
    clock,
    fetch: hangingFetch,
    write: (line) => lines.push(line),
  });
  await clock.advance(HEALTHCHECK_TIMEOUT_MS - 1);
  assert.equal(seenSignal?.aborted, false);
  await clock.advance(1);
  assert.equal(await result, 1);
  assert.deepEqual(lines, [
    "healthcheck failed: GET http://127.0.0.1:8080/healthz: no answer within 3 s",
  ]);
  assert.equal(clock.pendingTimers, 0);
});

Deno.test("runHealthcheck() explains a permission refusal", async () => {
  const refusingFetch: typeof fetch = () =>
    Promise.reject(
      new TypeError("fetch failed", {
        cause: new Deno.errors.NotCapable(
          'Requires net access to "127.0.0.1:8080", run again with the --allow-net flag',
        ),
      }),
    );
  const lines: string[] = [];
  const code = await runHealthcheck(envOf({}), {
    fetch: refusingFetch,
    write: (l) => lines.push(l),
  });
  assert.equal(code, 1);
  assert.match(lines[0]!, /network access to 127\.0\.0\.1:8080 was refused/);
  assert.doesNotMatch(lines[0]!, /run again/);
});

Deno.test("runHealthcheck() reports a malformed bind address without probing", async () => {
  let called = false;
  const lines: string[] = [];
  const code = await runHealthcheck(envOf({ LIVEKIT_JWT_BIND: "nonsense" }), {
    fetch: () => {
      called = true;
      return Promise.resolve(new Response());
    },
    write: (line) => lines.push(line),
  });
  assert.equal(code, 1);
  assert.equal(called, false);
  assert.deepEqual(lines, [
    'healthcheck failed: LIVEKIT_JWT_BIND must be host:port, got "nonsense"',
  ]);
});
