/**
 * `check-config`: the homeservers named explicitly in `LIVEKIT_FULL_ACCESS_HOMESERVERS`
 * (configuration.md §1). Two checks per name, both through the service's own discovery and
 * outbound client, so they see what the service will see:
 *
 * - federation: resolve the name (openid-and-discovery.md §3–§5, or its
 *   `LIVEKIT_FEDERATION_URL_OVERRIDES` entry) and send the userinfo request (§6) with a made-up
 *   token. A Matrix `401` (`M_UNKNOWN_TOKEN` / `M_UNAUTHORIZED`) proves the endpoint answers.
 * - client-server API: `LIVEKIT_CS_API_URL_OVERRIDES` or `/.well-known/matrix/client` (§9), then
 *   `GET <base>/_matrix/client/versions` must advertise `org.matrix.msc4140` (delayed events,
 *   needed for delegation; Synapse advertises it when `max_event_delay_duration` is set).
 *
 * @module
 */
import type { ServerName } from "../ids.ts";
import type { LogFields, Logger } from "../log.ts";
import type { CsApiResolver } from "../matrix/cs_api.ts";
import { parseServerName } from "../matrix/server_name.ts";
import {
  type Destination,
  DiscoveryError,
  type FederationDiscovery,
} from "../matrix/federation.ts";
import { type Outbound, OutboundError, type OutboundResponse, redactUrl } from "../net/outbound.ts";
import { type Check, type CheckResult, errorMessage, fail, pass } from "./check_result.ts";
import { explainPermissionError } from "./permissions_report.ts";

const USERINFO_PATH = "/_matrix/federation/v1/openid/userinfo";
const REQUEST_TIMEOUT_MS = 10_000;
const MAX_BODY = 64 * 1024;
/** Not a real token: a homeserver must refuse it. */
const BOGUS_TOKEN = "lk-jwt-service-check-config-not-a-token";

/** What the homeserver checks use. */
export interface HomeserverCheckDeps {
  outbound: Outbound;
  discovery: FederationDiscovery;
  csApi: CsApiResolver;
  federationOverrides: ReadonlyMap<string, string>;
  csApiOverrides: ReadonlyMap<string, string>;
  /** Why the CS API discovery of a name failed last (captured from the resolver's log). */
  discoveryFailure: (serverName: string) => string | undefined;
}

/** A URL for output: no query, credentials or trailing `/`. */
function shown(url: string): string {
  return redactUrl(url).replace(/\/+$/, "");
}

function errcodeOf(body: Uint8Array): string | undefined {
  try {
    const doc: unknown = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return undefined;
    const code = (doc as Record<string, unknown>).errcode;
    return typeof code === "string" ? code : undefined;
  } catch {
    return undefined;
  }
}

function overrideFix(variable: string, name: string): string {
  return `${variable}=${name}=https://<host>:<port>`;
}

function transportFix(err: OutboundError, name: string, where: string): string {
  const permission = explainPermissionError(err);
  if (permission) return permission;
  switch (err.kind) {
    case "tls":
      return `the certificate served at ${where} is not trusted: add its CA with ` +
        `SSL_CERT_FILE=<ca.pem> (private CA, self-signed), or serve a certificate valid for ${name}`;
    case "dns":
      return `fix DNS for ${name} (A/AAAA, SRV _matrix-fed._tcp) or set ` +
        overrideFix("LIVEKIT_FEDERATION_URL_OVERRIDES", name);
    case "blocked":
      return `the address is private: names listed in LIVEKIT_FULL_ACCESS_HOMESERVERS may use ` +
        "private addresses; otherwise add it to LIVEKIT_OUTBOUND_ALLOW";
    default:
      return `make ${where} reachable from this host (firewall, federation listener on port ` +
        `8448 or a /.well-known/matrix/server delegation), or point ` +
        `${overrideFix("LIVEKIT_FEDERATION_URL_OVERRIDES", name)} at the homeserver listener ` +
        "that serves the openid resource";
  }
}

function judgeUserinfo(
  what: string,
  res: OutboundResponse,
  ctx: { name: string; where: string },
): CheckResult {
  const errcode = errcodeOf(res.body);
  const described = `${res.status}${errcode ? ` ${errcode}` : ""}`;
  if (res.status === 401 && (errcode === "M_UNKNOWN_TOKEN" || errcode === "M_UNAUTHORIZED")) {
    return pass(`${what}: userinfo answers at ${ctx.where} (${described} for a made-up token)`);
  }
  const listenerFix = `enable the federation (or openid) resource on the homeserver listener ` +
    `that ${ctx.where} reaches (Synapse: listeners[].resources[].names), or point ` +
    `${overrideFix("LIVEKIT_FEDERATION_URL_OVERRIDES", ctx.name)} at a listener that has it`;
  if (res.status === 403 || res.status === 404) {
    return fail(what, `userinfo at ${ctx.where} answered ${described}`, listenerFix);
  }
  if (res.status === 401) {
    return fail(
      what,
      `userinfo at ${ctx.where} answered 401 without a Matrix error`,
      `let ${USERINFO_PATH} through the reverse proxy without authentication`,
    );
  }
  if (res.status >= 200 && res.status <= 299) {
    return fail(
      what,
      `userinfo at ${ctx.where} accepted a made-up access token`,
      `check that ${ctx.where} is the Matrix homeserver of ${ctx.name} ` +
        "(/.well-known/matrix/server, LIVEKIT_FEDERATION_URL_OVERRIDES)",
    );
  }
  return fail(
    what,
    `userinfo at ${ctx.where} answered ${described}`,
    `check the homeserver and its reverse proxy for ${USERINFO_PATH}; ${listenerFix}`,
  );
}

async function userinfoCheck(
  deps: HomeserverCheckDeps,
  ctx: { name: string; what: string; signal: AbortSignal },
): Promise<CheckResult> {
  const { name, what, signal } = ctx;
  const query = `?access_token=${BOGUS_TOKEN}`;
  const override = deps.federationOverrides.get(name);
  if (override !== undefined) {
    const base = override.replace(/\/+$/, "");
    const where = `${shown(base)} (LIVEKIT_FEDERATION_URL_OVERRIDES)`;
    try {
      const res = await deps.outbound.request({
        url: `${base}${USERINFO_PATH}${query}`,
        timeoutMs: REQUEST_TIMEOUT_MS,
        maxBodyBytes: MAX_BODY,
        signal,
      });
      return judgeUserinfo(what, res, { name, where });
    } catch (err) {
      if (!(err instanceof OutboundError)) throw err;
      return fail(what, err.message, transportFix(err, name, shown(base)));
    }
  }
  let destinations: Destination[];
  try {
    destinations = await deps.discovery.resolve(name, signal);
  } catch (err) {
    if (!(err instanceof DiscoveryError)) throw err;
    return fail(
      what,
      `federation discovery failed: ${err.message}`,
      `publish DNS for ${name} (A/AAAA, or SRV _matrix-fed._tcp) or a ` +
        `https://${name}/.well-known/matrix/server delegation, or set ` +
        overrideFix("LIVEKIT_FEDERATION_URL_OVERRIDES", name),
    );
  }
  const failures: string[] = [];
  let last: { err: OutboundError; where: string } | undefined;
  for (const dest of destinations) {
    const host = dest.address.includes(":") ? `[${dest.address}]` : dest.address;
    const where = `${host}:${dest.port}`;
    try {
      const res = await deps.outbound.request({
        url: `https://${dest.hostHeader}${USERINFO_PATH}${query}`,
        timeoutMs: REQUEST_TIMEOUT_MS,
        maxBodyBytes: MAX_BODY,
        guard: { serverName: name },
        connectTo: {
          address: dest.address,
          port: dest.port,
          host: dest.resolvedName ?? dest.tlsName,
        },
        signal,
      });
      return judgeUserinfo(what, res, { name, where: `https://${dest.hostHeader} (${where})` });
    } catch (err) {
      if (!(err instanceof OutboundError)) throw err;
      failures.push(err.message);
      last = { err, where };
      if (signal.aborted) break;
    }
  }
  if (!last) return fail(what, `no destination for ${name}`, "see federation discovery");
  // Prefer the TLS failure (the most actionable one) when addresses failed differently.
  const tls = failures.find((f) => /certificate|\btls\b/i.test(f));
  const cause = tls ?? failures.join("; ");
  const err = tls && last.err.kind !== "tls" ? new OutboundError("tls", tls) : last.err;
  return fail(what, `userinfo unreachable: ${cause}`, transportFix(err, name, last.where));
}

function advertisesDelayedEvents(body: Uint8Array): boolean | undefined {
  try {
    const doc: unknown = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return undefined;
    const features = (doc as Record<string, unknown>).unstable_features;
    if (typeof features !== "object" || features === null || Array.isArray(features)) {
      return false;
    }
    return (features as Record<string, unknown>)["org.matrix.msc4140"] === true;
  } catch {
    return undefined;
  }
}

async function csApiCheck(
  deps: HomeserverCheckDeps,
  ctx: { name: string; what: string; signal: AbortSignal },
): Promise<CheckResult> {
  const { name, what, signal } = ctx;
  const overridden = deps.csApiOverrides.has(name);
  const base = await deps.csApi.resolve(name as ServerName, signal);
  if (!base) {
    const url = `https://${name}/.well-known/matrix/client`;
    const reason = deps.discoveryFailure(name) ?? "no usable answer";
    const why = reason.includes(url) ? reason : `${url}: ${reason}`;
    return fail(
      what,
      `discovery failed: ${why}`,
      `serve https://${name}/.well-known/matrix/client with ` +
        `{"m.homeserver":{"base_url":"https://<client API host>"}}, or set ` +
        overrideFix("LIVEKIT_CS_API_URL_OVERRIDES", name),
    );
  }
  const source = overridden ? "LIVEKIT_CS_API_URL_OVERRIDES" : ".well-known/matrix/client";
  const label = `${shown(base.baseUrl)} (${source})`;
  const baseFix = overridden
    ? `correct the ${name} entry of LIVEKIT_CS_API_URL_OVERRIDES`
    : `correct m.homeserver.base_url in https://${name}/.well-known/matrix/client or set ` +
      overrideFix("LIVEKIT_CS_API_URL_OVERRIDES", name);
  let res: OutboundResponse;
  try {
    res = await deps.outbound.request({
      url: `${base.baseUrl}/_matrix/client/versions`,
      timeoutMs: REQUEST_TIMEOUT_MS,
      maxBodyBytes: MAX_BODY,
      ...(base.guarded ? { guard: { serverName: name } } : {}),
      signal,
    });
  } catch (err) {
    if (!(err instanceof OutboundError)) throw err;
    const permission = explainPermissionError(err);
    const fix = permission ??
      (err.kind === "tls"
        ? `add the CA of ${shown(base.baseUrl)} with SSL_CERT_FILE=<ca.pem>, or ${baseFix}`
        : `make ${shown(base.baseUrl)} reachable from this host, or ${baseFix}`);
    return fail(what, `${label}: ${errorMessage(err)}`, fix);
  }
  if (res.status !== 200) {
    return fail(
      what,
      `GET ${shown(base.baseUrl)}/_matrix/client/versions answered ${res.status}`,
      `the base URL must be the client-server API root (without /_matrix): ${baseFix}`,
    );
  }
  const advertised = advertisesDelayedEvents(res.body);
  if (advertised === undefined) {
    return fail(
      what,
      `${label}: /_matrix/client/versions is not a JSON object`,
      `the base URL must be the client-server API root: ${baseFix}`,
    );
  }
  if (!advertised) {
    return fail(
      what,
      `${label} does not advertise unstable feature org.matrix.msc4140 (delayed events)`,
      "enable delayed events on the homeserver: Synapse needs max_event_delay_duration " +
        "(e.g. 24h) in homeserver.yaml; without them delegated leave events cannot work",
    );
  }
  return pass(`${what}: ${label} advertises org.matrix.msc4140 (delayed events)`);
}

/** The two checks of one explicitly listed full-access homeserver (one when it is invalid). */
export function homeserverChecks(deps: HomeserverCheckDeps, name: string): Check[] {
  if (!parseServerName(name)) {
    const what = `homeserver ${JSON.stringify(name)}`;
    const result = fail(
      what,
      "not a valid server name (openid-and-discovery.md §2: host[:port])",
      "list server names in LIVEKIT_FULL_ACCESS_HOMESERVERS exactly as they appear in user IDs " +
        "(@user:example.com → example.com; no scheme, no path)",
    );
    return [{ what, timeoutFix: "", run: () => Promise.resolve(result) }];
  }
  const fedWhat = `homeserver ${name} federation`;
  const csWhat = `homeserver ${name} client-server API`;
  return [
    {
      what: fedWhat,
      timeoutFix: `make ${name} answer over federation from this host, or set ` +
        overrideFix("LIVEKIT_FEDERATION_URL_OVERRIDES", name),
      run: (signal) => userinfoCheck(deps, { name, what: fedWhat, signal }),
    },
    {
      what: csWhat,
      timeoutFix: `make the client-server API of ${name} reachable from this host, or set ` +
        overrideFix("LIVEKIT_CS_API_URL_OVERRIDES", name),
      run: (signal) => csApiCheck(deps, { name, what: csWhat, signal }),
    },
  ];
}

/**
 * A logger that remembers why client-server API discovery failed per server name (the resolver
 * reports it only in its debug log) and forwards nothing else.
 */
export function discoveryFailureLog(): {
  log: Logger;
  failure: (name: string) => string | undefined;
} {
  const failures = new Map<string, string>();
  const record = (_msg: string, fields?: LogFields) => {
    const name = fields?.server_name;
    const error = fields?.error;
    if (typeof name === "string" && typeof error === "string") failures.set(name, error);
  };
  const log: Logger = {
    debug: record,
    info: () => {},
    warn: record,
    error: () => {},
    child: () => log,
    enabled: () => true,
  };
  return { log, failure: (name) => failures.get(name) };
}
