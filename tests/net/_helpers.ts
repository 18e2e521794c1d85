/**
 * Shared helpers of the outbound, discovery and verification tests: a scripted resolver, a
 * dial map that sends every pinned connection to a loopback fake, a capturing logger.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Clock } from "../../lib/clock.ts";
import type { LogFields, Logger } from "../../lib/log.ts";
import { DnsError, type Resolver, type SrvRecord } from "../../lib/net/dns.ts";
import { parseCidr } from "../../lib/net/ip.ts";
import {
  createOutbound,
  type Outbound,
  OutboundError,
  type OutboundOptions,
} from "../../lib/net/outbound.ts";
import { NO_PROXIES } from "../../lib/net/proxy_env.ts";
import { allowAllPolicy, createOutboundPolicy, type OutboundPolicy } from "../../lib/net/ssrf.ts";
import { ManualClock } from "../support/manual_clock.ts";

/** Answers for {@linkcode scriptedResolver}: addresses, or a DNS failure code. */
export type LookupAnswer = string[] | "not_found" | "timeout" | "failure";

/** A resolver with fixed (mutable) answers that counts its queries. */
export interface ScriptedResolver extends Resolver {
  hosts: Map<string, LookupAnswer | LookupAnswer[]>;
  srvs: Map<string, SrvRecord[] | "failure">;
  lookups: string[];
  srvQueries: string[];
}

/**
 * `hosts` maps a name to its answer; a list of answers is consumed one per query (the last one
 * repeats), which models DNS rebinding. Unknown names are "not found".
 */
export function scriptedResolver(
  hosts: Record<string, LookupAnswer | LookupAnswer[]> = {},
  srvs: Record<string, SrvRecord[] | "failure"> = {},
): ScriptedResolver {
  const r: ScriptedResolver = {
    hosts: new Map(Object.entries(hosts)),
    srvs: new Map(Object.entries(srvs)),
    lookups: [],
    srvQueries: [],
    lookup(host) {
      r.lookups.push(host);
      if (/^[0-9.]+$/.test(host) || host.includes(":")) return Promise.resolve([host]);
      let answer = r.hosts.get(host);
      if (Array.isArray(answer) && answer.length > 0 && typeof answer[0] !== "string") {
        const list = answer as LookupAnswer[];
        answer = list.length > 1 ? list.shift() : list[0];
      }
      if (answer === undefined) answer = "not_found";
      if (typeof answer === "string") {
        return Promise.reject(new DnsError(answer, `${answer}: ${host}`));
      }
      return Promise.resolve([...(answer as string[])]);
    },
    srv(name) {
      r.srvQueries.push(name);
      const answer = r.srvs.get(name);
      if (answer === "failure") return Promise.reject(new DnsError("failure", `SERVFAIL ${name}`));
      return Promise.resolve((answer ?? []).map((x) => ({ ...x })));
    },
  };
  return r;
}

/** Records every dial and sends it to `port` on 127.0.0.1 (or per checked port via `ports`). */
export function loopbackDial(
  port: number | ((address: string, port: number) => number),
): {
  dial: (host: string, port: number) => { hostname: string; port: number };
  dials: string[];
} {
  const dials: string[] = [];
  return {
    dials,
    dial(host, p) {
      dials.push(`${host}:${p}`);
      return { hostname: "127.0.0.1", port: typeof port === "number" ? port : port(host, p) };
    },
  };
}

/** A logger that keeps lines for assertions. */
export function captureLogger(): Logger & {
  lines: { level: string; msg: string; fields: LogFields }[];
} {
  const lines: { level: string; msg: string; fields: LogFields }[] = [];
  const make = (base: LogFields): Logger => ({
    debug: (msg, f) => void lines.push({ level: "debug", msg, fields: { ...base, ...f } }),
    info: (msg, f) => void lines.push({ level: "info", msg, fields: { ...base, ...f } }),
    warn: (msg, f) => void lines.push({ level: "warn", msg, fields: { ...base, ...f } }),
    error: (msg, f) => void lines.push({ level: "error", msg, fields: { ...base, ...f } }),
    child: (f) => make({ ...base, ...f }),
    enabled: () => true,
  });
  return Object.assign(make({}), { lines });
}

/** `createOutbound` with test defaults (no proxies, allow-all policy, manual clock). */
export function testOutbound(
  overrides: Partial<OutboundOptions> & { resolver: Resolver },
): { outbound: Outbound; clock: Clock } {
  const clock = overrides.clock ?? new ManualClock();
  const policy: OutboundPolicy = overrides.policy ?? allowAllPolicy;
  const outbound = createOutbound({
    caCerts: [],
    log: overrides.log ?? captureLogger(),
    proxies: NO_PROXIES,
    ...overrides,
    policy,
    clock,
  });
  return { outbound, clock };
}

/** Polls `cond` (real time, short steps) until it holds; fails after ~5 s. */
export async function waitFor(cond: () => boolean, what = "condition"): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A guard with no full-access names or overrides, allowing the given CIDRs. */
export function policyAllowing(...cidrs: string[]): OutboundPolicy {
  return createOutboundPolicy({
    fullAccess: { wildcard: true, explicit: new Set(), defaulted: true },
    csApiOverrides: new Map(),
    outboundAllow: { cidrs: cidrs.map((c) => parseCidr(c)!), hosts: new Set() },
  });
}

/** Awaits `p` and asserts it fails with an OutboundError of `kind`. */
export async function rejectsKind(p: Promise<unknown>, kind: string): Promise<OutboundError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof OutboundError, `expected OutboundError, got ${err}`);
    assert.equal(err.kind, kind, err.message);
    return err;
  }
  assert.fail(`expected OutboundError ${kind}`);
}
