/**
 * Every `405` of the running service carries `Allow` and the Matrix error body (http-api.md §2:
 * errors are JSON; the Matrix client-server API answers a known endpoint asked with the wrong
 * method with `405 M_UNRECOGNIZED`), on the client port and on the metrics listener.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startFakeSfu } from "../fakes/sfu.ts";
import { baseEnv, freePort, spawnService } from "../support/service.ts";

const BODY = { errcode: "M_UNRECOGNIZED", error: "Unrecognized request" };

Deno.test("process: every 405 has Allow and the Matrix JSON body", async () => {
  const sfu = startFakeSfu();
  const metricsPort = freePort();
  const svc = await spawnService({
    env: { ...baseEnv(sfu.wsUrl), LIVEKIT_METRICS_BIND: `127.0.0.1:${metricsPort}` },
  });
  try {
    const cases: Array<[string, string, string]> = [
      [`${svc.url}/sfu/get`, "GET", "POST, OPTIONS"],
      [`${svc.url}/get_token`, "PUT", "POST, OPTIONS"],
      [`${svc.url}/delegate_delayed_leave`, "DELETE", "POST, OPTIONS"],
      [`${svc.url}/sfu_webhook`, "GET", "POST"],
      [`${svc.url}/healthz`, "POST", "GET, HEAD"],
      [`${svc.url}/readyz`, "POST", "GET, HEAD"],
      [`http://127.0.0.1:${metricsPort}/metrics`, "POST", "GET, HEAD"],
    ];
    for (const [url, method, allow] of cases) {
      const res = await fetch(url, { method });
      const what = `${method} ${new URL(url).pathname}`;
      assert.equal(res.status, 405, what);
      assert.equal(res.headers.get("allow"), allow, what);
      assert.equal(res.headers.get("content-type"), "application/json", what);
      assert.equal(await res.text(), `${JSON.stringify(BODY)}\n`, what);
    }
  } finally {
    await svc.stop();
    await sfu.close();
  }
});
