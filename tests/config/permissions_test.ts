/**
 * Tests of the permission flag derivation (lib/config/permissions.ts): the carve-outs of every
 * configured destination, environment and file lists, skip-verify and the strict host list.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Cidr, cidrContains, parseCidr, parseIp } from "../../lib/net/ip.ts";
import { DENIED_IPV4_RANGES } from "../../lib/config/net_ranges.ts";
import {
  collectDestinations,
  hostsToResolve,
  parseResolvConf,
  permissionFlags,
  type PermissionInputs,
  serverNameHost,
  SERVICE_VARIABLES,
} from "../../lib/config/permissions.ts";
import { CONFIG_VARIABLES } from "../../lib/config/config.ts";

function cidr(text: string): Cidr {
  const c = parseCidr(text);
  assert.ok(c, `bad CIDR ${text}`);
  return c;
}

function ip(text: string): bigint {
  const a = parseIp(text);
  assert.ok(a, `bad address ${text}`);
  return a.value;
}

function envOf(vars: Record<string, string>): PermissionInputs["env"] {
  return (name) => vars[name];
}

function flagValue(flags: readonly string[], name: string): string[] | undefined {
  const flag = flags.find((f) => f === name || f.startsWith(`${name}=`));
  if (flag === undefined) return undefined;
  return flag === name ? [] : flag.slice(name.length + 1).split(",");
}

/** Whether Deno would refuse `address` under these flags (deny entries in Deno syntax). */
function denied(flags: readonly string[], address: string): boolean {
  const entries = flagValue(flags, "--deny-net") ?? [];
  const value = ip(address);
  return entries.some((entry) => {
    const text = entry.startsWith("[") ? entry.slice(1, -1) : entry;
    return cidrContains(cidr(text), value);
  });
}

function plan(vars: Record<string, string>, extra: Partial<PermissionInputs> = {}) {
  return permissionFlags({ env: envOf(vars), ...extra });
}

Deno.test("permissionFlags() grants exactly the service variables and ignores the rest", () => {
  const { flags } = plan({});
  assert.deepEqual(flagValue(flags, "--allow-env"), [...SERVICE_VARIABLES]);
  for (const name of CONFIG_VARIABLES) assert.ok(SERVICE_VARIABLES.includes(name));
  assert.ok(SERVICE_VARIABLES.includes("BUF_BIGINT_DISABLE"));
  assert.ok(SERVICE_VARIABLES.includes("REDIS_DEBUG_MAINTENANCE"));
  assert.ok(flags.includes("--ignore-env"));
  assert.ok(!flags.some((f) => f.startsWith("--allow-all") || f === "-A"));
});

Deno.test("permissionFlags() opens outbound net but denies every special-purpose IPv4 range", () => {
  const { flags } = plan({});
  assert.ok(flags.includes("--allow-net"));
  for (const range of DENIED_IPV4_RANGES) {
    const base = range.split("/")[0]!;
    const probe = base === "0.0.0.0" ? "0.0.0.1" : base.replace(/0$/, "9");
    assert.ok(denied(flags, probe), `${probe} (${range}) should be denied`);
  }
  for (
    const address of ["169.254.169.254", "100.100.100.200", "127.0.0.1", "::1", "fd00:ec2::254"]
  ) {
    assert.ok(denied(flags, address), `${address} should be denied`);
  }
  assert.ok(!denied(flags, "8.8.8.8"));
  assert.ok(!denied(flags, "2001:4860::1"));
});

Deno.test("permissionFlags() carves out the SFU, Redis and name servers", () => {
  const { flags, notes } = plan(
    {
      LIVEKIT_URL: "wss://sfu.internal:7880",
      LIVEKIT_REDIS_URL: "redis://:pw@10.9.9.9:6379/0",
    },
    { resolved: new Map([["sfu.internal", ["10.1.2.3", "fd00::3"]]]), nameServers: ["127.0.0.53"] },
  );
  assert.deepEqual(notes, []);
  assert.ok(!denied(flags, "10.1.2.3"));
  assert.ok(denied(flags, "10.1.2.4"));
  assert.ok(!denied(flags, "10.9.9.9"));
  assert.ok(!denied(flags, "127.0.0.53"));
  assert.ok(denied(flags, "127.0.0.54"));
  assert.ok(!flags.join(" ").includes("pw"), "the Redis password never appears");
});

Deno.test("permissionFlags() carves out explicitly listed homeservers but not '*'", () => {
  const resolved = new Map([["hs.internal", ["192.168.5.5"]]]);
  const listed = plan({ LIVEKIT_FULL_ACCESS_HOMESERVERS: "hs.internal, 10.7.7.7:8448 *" }, {
    resolved,
  });
  assert.ok(!denied(listed.flags, "192.168.5.5"));
  assert.ok(!denied(listed.flags, "10.7.7.7"));
  const star = plan({ LIVEKIT_FULL_ACCESS_HOMESERVERS: "*" }, { resolved });
  assert.ok(denied(star.flags, "192.168.5.5"));
  const legacy = plan({ LIVEKIT_LOCAL_HOMESERVERS: "[fd00::8]:8448 [::1]" });
  assert.ok(!denied(legacy.flags, "::1"));
});

Deno.test("permissionFlags() carves out override keys and targets", () => {
  const { flags } = plan({
    LIVEKIT_CS_API_URL_OVERRIDES:
      "10.0.0.1:8448=http://10.0.0.2:8008/base,example.com=https://cs.internal",
    LIVEKIT_FEDERATION_URL_OVERRIDES: "other.example=https://172.16.0.9:8448",
  }, { resolved: new Map([["cs.internal", ["10.0.0.3"]]]) });
  for (const address of ["10.0.0.1", "10.0.0.2", "10.0.0.3", "172.16.0.9"]) {
    assert.ok(!denied(flags, address), address);
  }
  assert.ok(denied(flags, "10.0.0.4"));
});

Deno.test("permissionFlags() carves out LIVEKIT_OUTBOUND_ALLOW ranges, addresses and names", () => {
  const { flags } = plan({ LIVEKIT_OUTBOUND_ALLOW: "10.20.0.0/16, 192.168.1.5 ::1 db.internal" }, {
    resolved: new Map([["db.internal", ["172.20.0.2"]]]),
  });
  assert.ok(!denied(flags, "10.20.255.1"));
  assert.ok(denied(flags, "10.21.0.1"));
  assert.ok(!denied(flags, "192.168.1.5"));
  assert.ok(!denied(flags, "::1"));
  assert.ok(!denied(flags, "172.20.0.2"));
});

Deno.test("permissionFlags() carves out the configured HTTP proxies", () => {
  const { flags } = plan({ HTTPS_PROXY: "http://10.3.0.1:3128", http_proxy: "172.16.3.3:8080" });
  assert.ok(!denied(flags, "10.3.0.1"));
  assert.ok(!denied(flags, "172.16.3.3"));
  assert.ok(denied(flags, "10.3.0.2"));
});

Deno.test("permissionFlags() grants the listen addresses (no loopback pinning proxy any more)", () => {
  const all = plan({});
  assert.ok(!denied(all.flags, "0.0.0.0"), ":8080 listens on all interfaces");
  assert.ok(!denied(all.flags, "::"));
  assert.ok(denied(all.flags, "0.0.0.1"));
  assert.ok(denied(all.flags, "127.84.48.1"));
  const local = plan({ LIVEKIT_JWT_BIND: "127.0.0.1:9000", LIVEKIT_METRICS_BIND: "[::1]:9100" });
  assert.ok(!denied(local.flags, "127.0.0.1"));
  assert.ok(!denied(local.flags, "::1"));
  assert.ok(denied(local.flags, "0.0.0.0"), "no wildcard when a host is given");
  assert.ok(denied(local.flags, "::"));
  const port = plan({ LK_JWT_PORT: "9000" });
  assert.ok(!denied(port.flags, "0.0.0.0"));
  const v4only = plan({ LIVEKIT_JWT_BIND: "0.0.0.0:9000" });
  assert.ok(!denied(v4only.flags, "0.0.0.0"));
  assert.ok(denied(v4only.flags, "::"));
  const named = plan({ LIVEKIT_JWT_BIND: "localhost:9000" }, {
    resolved: new Map([["localhost", ["127.0.0.1"]]]),
  });
  assert.ok(!denied(named.flags, "127.0.0.1"));
});

Deno.test("permissionFlags() lists names that did not resolve instead of failing", () => {
  const { flags, notes, unresolved } = plan({ LIVEKIT_URL: "wss://sfu.internal" });
  assert.ok(flags.includes("--allow-net"));
  assert.deepEqual(unresolved, ["LIVEKIT_URL: sfu.internal"]);
  assert.deepEqual(notes, []);
});

Deno.test("permissionFlags() offline: environment and files only, no network", () => {
  const { flags, unresolved } = plan({
    LIVEKIT_URL: "wss://sfu.internal",
    LIVEKIT_KEY_FILE: "/run/keys",
    LIVEKIT_INSECURE_SKIP_VERIFY_TLS: "YES_I_KNOW_WHAT_I_AM_DOING",
  }, { offline: true });
  assert.ok(flags.includes("--allow-read=/run/keys"));
  assert.ok(!flags.some((f) => /net|certificate/.test(f)), flags.join(" "));
  assert.deepEqual(unresolved, []);
});

Deno.test("permissionFlags() skips invalid values so the service reports them itself", () => {
  const { flags } = plan({
    LIVEKIT_URL: "not a url",
    LIVEKIT_CS_API_URL_OVERRIDES: "garbage",
    LIVEKIT_JWT_BIND: "nonsense",
    LIVEKIT_REDIS_URL: "ftp://x",
    LIVEKIT_OUTBOUND_ALLOW: "10.0.0.0/99",
  });
  assert.ok(flags.includes("--allow-net"));
  assert.ok(denied(flags, "10.0.0.1"));
});

Deno.test("permissionFlags() adds skip-verify only for the exact value", () => {
  const flag = "--unsafely-ignore-certificate-errors";
  const on = plan({ LIVEKIT_INSECURE_SKIP_VERIFY_TLS: "YES_I_KNOW_WHAT_I_AM_DOING" });
  assert.ok(on.flags.includes(flag));
  for (
    const value of [
      "",
      "true",
      "1",
      "yes",
      "yes_i_know_what_i_am_doing",
      " YES_I_KNOW_WHAT_I_AM_DOING",
    ]
  ) {
    const off = plan({ LIVEKIT_INSECURE_SKIP_VERIFY_TLS: value });
    assert.ok(!off.flags.some((f) => f.startsWith(flag)), JSON.stringify(value));
  }
  assert.ok(!plan({}).flags.some((f) => f.startsWith(flag)));
});

Deno.test("permissionFlags() grants reads of the configured files and resolver files only", () => {
  assert.equal(flagValue(plan({}).flags, "--allow-read"), undefined);
  const { flags } = plan({
    LIVEKIT_KEY_FILE: "/run/secrets/keys",
    LIVEKIT_KEY_FROM_FILE: "key.txt",
    LIVEKIT_SECRET_FROM_FILE: "/run/secrets/secret",
    LIVEKIT_SECRET_FILE: "/old/secret",
    SSL_CERT_FILE: "/etc/ssl/private-ca.pem",
  }, { resolverFiles: ["/etc/hosts", "/etc/resolv.conf"] });
  assert.deepEqual(flagValue(flags, "--allow-read"), [
    "/run/secrets/keys",
    "key.txt",
    "/run/secrets/secret",
    "/old/secret",
    "/etc/ssl/private-ca.pem",
    "/etc/hosts",
    "/etc/resolv.conf",
  ]);
  assert.equal(flagValue(flags, "--allow-write"), undefined);
});

Deno.test("permissionFlags() grants a unix Redis socket read and write, and notes unlistable paths", () => {
  const unix = plan({ LIVEKIT_REDIS_URL: "unix:///run/redis/redis.sock" });
  assert.deepEqual(flagValue(unix.flags, "--allow-read"), ["/run/redis/redis.sock"]);
  assert.deepEqual(flagValue(unix.flags, "--allow-write"), ["/run/redis/redis.sock"]);
  const comma = plan({ LIVEKIT_KEY_FILE: "/run/a,b" });
  assert.equal(flagValue(comma.flags, "--allow-read"), undefined);
  assert.equal(comma.notes.length, 1);
  assert.match(comma.notes[0]!, /LIVEKIT_KEY_FILE path "\/run\/a,b" contains a comma/);
});

Deno.test("permissionFlags() strict mode lists exactly the configured hosts", () => {
  const { flags } = plan({
    LIVEKIT_URL: "wss://sfu.example.com",
    LIVEKIT_REDIS_URL: "redis://10.9.9.9",
    LIVEKIT_FULL_ACCESS_HOMESERVERS: "example.com [fd00::8]:8448",
    LIVEKIT_OUTBOUND_ALLOW: "10.20.0.0/16 fd00::/8",
    LIVEKIT_JWT_BIND: "127.0.0.1:9000",
  }, {
    strict: true,
    resolved: new Map([["sfu.example.com", ["203.0.113.7"]], ["example.com", ["198.51.100.2"]]]),
    nameServers: ["127.0.0.53"],
  });
  assert.equal(flagValue(flags, "--deny-net"), undefined);
  assert.deepEqual(flagValue(flags, "--allow-net"), [
    "sfu.example.com:443",
    "203.0.113.7:443",
    "10.9.9.9:6379",
    "example.com",
    "198.51.100.2",
    "[fd00::8]",
    "127.0.0.1:9000",
    "10.20.0.0/16",
    "127.0.0.53:53",
  ]);
  const { notes } = plan({ LIVEKIT_OUTBOUND_ALLOW: "fd00::/8" }, { strict: true });
  assert.deepEqual(notes, ["LIVEKIT_OUTBOUND_ALLOW: fd00::/8 cannot be granted (IPv6 range)"]);
});

Deno.test("hostsToResolve() lists DNS names once and skips IP literals", () => {
  const env = envOf({
    LIVEKIT_URL: "ws://localhost:7880",
    LIVEKIT_REDIS_URL: "redis://10.0.0.5",
    LIVEKIT_FULL_ACCESS_HOMESERVERS: "Example.COM, localhost:8448, [::1]:8448, *",
    LIVEKIT_OUTBOUND_ALLOW: "db.internal 10.0.0.0/8",
    LIVEKIT_JWT_BIND: "localhost:8080",
  });
  assert.deepEqual(hostsToResolve(env), ["localhost", "example.com", "db.internal"]);
  assert.ok(collectDestinations(env).some((d) => d.listen && d.host === "localhost"));
});

Deno.test("serverNameHost() takes the host of host[:port] and [v6][:port]", () => {
  assert.equal(serverNameHost("example.com"), "example.com");
  assert.equal(serverNameHost("example.com:8448"), "example.com");
  assert.equal(serverNameHost("[::1]:8448"), "::1");
  assert.equal(serverNameHost("[fd00::8]"), "fd00::8");
  assert.equal(serverNameHost("1.2.3.4:80"), "1.2.3.4");
  assert.equal(serverNameHost("::1"), undefined);
  assert.equal(serverNameHost(""), undefined);
});

Deno.test("parseResolvConf() returns the name server addresses", () => {
  const text = "# comment\nsearch example.com\nnameserver 127.0.0.53\n nameserver fe80::1%eth0\n" +
    "nameserver bogus\noptions edns0\n";
  assert.deepEqual(parseResolvConf(text), ["127.0.0.53", "fe80::1"]);
});

Deno.test("permissions: Sentinel addresses are destinations; announced nodes need LIVEKIT_OUTBOUND_ALLOW", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  const vars = {
    LIVEKIT_URL: "wss://sfu.example.com",
    LIVEKIT_REDIS_SENTINELS: "10.1.2.3:26379,[fd00::9]:26380",
    LIVEKIT_REDIS_SENTINEL_MASTER: "mymaster",
  };
  const dests = collectDestinations(env(vars));
  assert.ok(dests.some((d) => d.host === "10.1.2.3" && d.port === 26379));
  assert.ok(dests.some((d) => d.host === "fd00::9" && d.port === 26380));
  const plan = permissionFlags({ env: env(vars) });
  const deny = plan.flags.find((f) => f.startsWith("--deny-net="))!.slice("--deny-net=".length);
  const sentinel = parseIp("10.1.2.3")!.value;
  for (const entry of deny.split(",")) {
    const cidr = parseCidr(entry);
    if (cidr) assert.ok(!cidrContains(cidr, sentinel), `${entry} denies the Sentinel`);
  }
  assert.ok(plan.notes.some((n) => n.includes("LIVEKIT_OUTBOUND_ALLOW")));
  const allowed = permissionFlags({ env: env({ ...vars, LIVEKIT_OUTBOUND_ALLOW: "10.0.0.0/8" }) });
  assert.ok(!allowed.notes.some((n) => n.includes("LIVEKIT_REDIS_SENTINELS")));
});
