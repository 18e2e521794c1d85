/**
 * Tests of the run-time permission helpers (lib/cli/permissions_report.ts): the startup
 * summary, the messages replacing `NotCapable` stack traces, and narrowing after the
 * configuration is read, both in this (all-permissions) process and under the launcher's flags.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  explainPermissionError,
  isPermissionError,
  permissionsSummary,
  revokeStartupPermissions,
} from "../../lib/cli/permissions_report.ts";
import { SERVICE_VARIABLES } from "../../lib/config/permissions.ts";
import type { ReportProbeOutput } from "./fixtures/report_probe.ts";

const LAUNCHER = new URL("../../bin/lk-jwt-service", import.meta.url).pathname;
const PROBE = new URL("./fixtures/report_probe.ts", import.meta.url).pathname;

function notCapable(kind: string, target: string): Error {
  return new Deno.errors.NotCapable(
    `Requires ${kind} access to "${target}", run again with the --allow-${kind} flag`,
  );
}

Deno.test("explainPermissionError() names the setting to change for each kind", () => {
  const net = explainPermissionError(notCapable("net", "10.1.2.3:6379"));
  assert.match(net ?? "", /^network access to 10\.1\.2\.3:6379 was refused/);
  assert.match(net ?? "", /LIVEKIT_OUTBOUND_ALLOW/);
  assert.doesNotMatch(net ?? "", /run again/);
  const wrapped = explainPermissionError(
    new TypeError("fetch failed", { cause: notCapable("net", "10.1.2.3:6379") }),
  );
  assert.equal(wrapped, net, "the cause chain of a fetch TypeError is searched");
  assert.match(explainPermissionError(notCapable("net", "0.0.0.0:8080")) ?? "", /LIVEKIT_JWT_BIND/);
  assert.match(
    explainPermissionError(notCapable("net", "127.0.0.1:9000"), { purpose: "listen" }) ?? "",
    /^listening on 127\.0\.0\.1:9000 was refused.*LIVEKIT_JWT_BIND/,
  );
  assert.match(
    explainPermissionError(notCapable("net", "unix:/run/redis.sock")) ?? "",
    /unix socket \/run\/redis\.sock.*LIVEKIT_REDIS_URL/,
  );
  assert.match(
    explainPermissionError(notCapable("read", "/run/secrets/key")) ?? "",
    /^reading "\/run\/secrets\/key" was refused.*LIVEKIT_KEY_FILE/,
  );
  assert.match(explainPermissionError(notCapable("write", "/x")) ?? "", /writes nothing/);
  assert.match(explainPermissionError(notCapable("env", "FOO")) ?? "", /FOO was refused/);
  assert.match(
    explainPermissionError(notCapable("sys", "hostname")) ?? "",
    /^sys access to "hostname" was refused/,
  );
});

Deno.test("explainPermissionError() ignores errors that are not permission refusals", () => {
  assert.equal(explainPermissionError(new TypeError("fetch failed")), undefined);
  assert.equal(explainPermissionError(new Deno.errors.PermissionDenied("EACCES")), undefined);
  assert.equal(explainPermissionError(undefined), undefined);
  assert.equal(isPermissionError(new Error("boom")), false);
  assert.equal(isPermissionError(notCapable("net", "a:1")), true);
});

Deno.test("permissionsSummary() says so when everything is granted, and revoke leaves it alone", () => {
  // This test process runs with -A (like Deno Deploy).
  assert.equal(permissionsSummary(), "all granted (no restrictions)");
  assert.equal(
    permissionsSummary({ read: ["/etc/hosts"], net: ["127.0.0.1:1"] }),
    "all granted (no restrictions); read /etc/hosts granted, net 127.0.0.1:1 granted",
  );
  assert.deepEqual(revokeStartupPermissions({ readPaths: ["/etc/hosts"], env: true }), []);
  assert.equal(Deno.permissions.querySync({ name: "env" }).state, "granted");
});

Deno.test("permission helpers under the launcher's flags", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const keyFile = `${dir}/keys`;
    await Deno.writeTextFile(keyFile, "key: secret-value\n");
    const child = new Deno.Command(LAUNCHER, {
      env: {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        LK_JWT_ENTRY: PROBE,
        LIVEKIT_URL: "ws://127.0.0.1:7880",
        LIVEKIT_JWT_BIND: "127.0.0.1:8080",
        LIVEKIT_KEY_FILE: keyFile,
      },
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const input = JSON.stringify({ keyFile, netProbes: ["127.0.0.1:7880", "10.0.0.9:80"] });
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(input));
    await writer.close();
    const out = await child.output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    const report = JSON.parse(new TextDecoder().decode(out.stdout)) as ReportProbeOutput;
    assert.equal(
      report.summary,
      "net=open outbound, special-purpose ranges denied " +
        `env=${SERVICE_VARIABLES.length} service variables ` +
        "read=restricted write=restricted run=restricted ffi=restricted sys=restricted " +
        "import=restricted; " +
        `read ${keyFile} granted, net 127.0.0.1:7880 granted, net 10.0.0.9:80 denied`,
    );
    assert.doesNotMatch(JSON.stringify(report), /secret-value/);
    assert.match(report.fetchRefused ?? "", /^network access to 127\.0\.0\.2:8080 was refused/);
    assert.match(report.listenRefused ?? "", /^listening on 127\.0\.0\.5:0 was refused/);
    assert.match(report.readRefused ?? "", /^reading "\/etc\/passwd" was refused/);
    assert.deepEqual(report.revoked, [`read ${keyFile}`, "env"]);
    assert.equal(report.envAfter, undefined, "env reads yield undefined after revocation");
    assert.match(report.keyAfter ?? "", /^reading ".*keys" was refused/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
