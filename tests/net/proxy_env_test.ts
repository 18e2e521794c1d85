import assert from "node:assert/strict";
import { proxyFor, readProxySettings } from "../../lib/net/proxy_env.ts";

function settings(env: Record<string, string>) {
  return readProxySettings((name) => env[name]);
}

Deno.test("HTTPS_PROXY for https, HTTP_PROXY for http, uppercase first, lowercase honoured", () => {
  const s = settings({ HTTPS_PROXY: "http://p1:3128", http_proxy: "http://p2:3128" });
  assert.equal(proxyFor(s, new URL("https://hs.example/x")), "http://p1:3128");
  assert.equal(proxyFor(s, new URL("http://hs.example/x")), "http://p2:3128");
  const lower = settings({ https_proxy: "http://p3:3128" });
  assert.equal(proxyFor(lower, new URL("https://hs.example/")), "http://p3:3128");
  assert.equal(proxyFor(settings({}), new URL("https://hs.example/")), undefined);
});

Deno.test("NO_PROXY: *, domain suffixes, leading dots, IPs, CIDRs and ports", () => {
  const s = settings({
    HTTPS_PROXY: "http://proxy:3128",
    NO_PROXY: "internal.example, .corp.example,10.0.0.0/8 192.168.1.5 svc.example:8448 [::1]",
  });
  const via = (u: string) => proxyFor(s, new URL(u));
  assert.equal(via("https://internal.example/"), undefined);
  assert.equal(via("https://a.internal.example/"), undefined);
  assert.equal(via("https://notinternal.example/"), "http://proxy:3128");
  assert.equal(via("https://x.corp.example/"), undefined);
  assert.equal(via("https://corp.example/"), undefined);
  assert.equal(via("https://10.2.3.4/"), undefined);
  assert.equal(via("https://192.168.1.5/"), undefined);
  assert.equal(via("https://192.168.1.6/"), "http://proxy:3128");
  assert.equal(via("https://svc.example:8448/"), undefined);
  assert.equal(via("https://svc.example/"), "http://proxy:3128");
  assert.equal(via("https://[::1]:8448/"), undefined);
  assert.equal(
    proxyFor(settings({ HTTPS_PROXY: "http://p", NO_PROXY: "*" }), new URL("https://a/")),
    undefined,
  );
});
