/**
 * Outbound HTTP proxies from `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` (and their lowercase
 * forms; openid-and-discovery.md §8.6, configuration.md §5).
 *
 * How they are honoured:
 * - `https:` URLs use `HTTPS_PROXY`, `http:` URLs use `HTTP_PROXY` (uppercase wins over
 *   lowercase when both are set). No proxy variable → direct connections.
 * - `NO_PROXY` is a comma/whitespace list: `*` (no proxy at all), host names (matching the host
 *   and its subdomains; a leading `.` is ignored), IP addresses and CIDR ranges; an entry may
 *   carry `:port`, which then must match too.
 * - A request that goes through a proxy is a `CONNECT` tunnel to the host name
 *   (lib/net/dial.ts; only `http://` proxies), so it cannot be pinned to an address.
 *   The SSRF guard still runs first: IP literals are checked directly, host names are resolved
 *   locally and every address must pass (best effort: when the local resolver cannot resolve
 *   the name, the request is handed to the proxy, which must enforce its own policy).
 *
 * @module
 */
import { cidrContains, parseCidr, parseIp } from "./ip.ts";

/** Parsed proxy settings. */
export interface ProxySettings {
  httpsProxy: string | undefined;
  httpProxy: string | undefined;
  noProxy: readonly string[];
}

/** No proxies. */
export const NO_PROXIES: ProxySettings = {
  httpsProxy: undefined,
  httpProxy: undefined,
  noProxy: [],
};

/** Reads the proxy variables through `env`. */
export function readProxySettings(env: (name: string) => string | undefined): ProxySettings {
  const pick = (upper: string) => {
    const v = env(upper) || env(upper.toLowerCase());
    return v && v.trim() !== "" ? v.trim() : undefined;
  };
  const noProxy = (pick("NO_PROXY") ?? "").split(/[\s,]+/).filter((s) => s !== "");
  return { httpsProxy: pick("HTTPS_PROXY"), httpProxy: pick("HTTP_PROXY"), noProxy };
}

/** Reads the process environment; variables the process may not read count as unset. */
export function processEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

function splitEntry(entry: string): { host: string; port: string | undefined } {
  if (entry.startsWith("[")) {
    const end = entry.indexOf("]");
    const rest = entry.slice(end + 1);
    return { host: entry.slice(1, end), port: rest.startsWith(":") ? rest.slice(1) : undefined };
  }
  const colon = entry.lastIndexOf(":");
  if (colon > 0 && entry.indexOf(":") === colon) {
    return { host: entry.slice(0, colon), port: entry.slice(colon + 1) };
  }
  return { host: entry, port: undefined };
}

function bypasses(entry: string, host: string, port: string): boolean {
  if (entry === "*") return true;
  const { host: rawHost, port: entryPort } = splitEntry(entry.toLowerCase());
  if (entryPort !== undefined && entryPort !== port) return false;
  const hostIp = parseIp(host);
  if (rawHost.includes("/") || parseIp(rawHost)) {
    const cidr = parseCidr(rawHost);
    return cidr !== undefined && hostIp !== undefined && cidrContains(cidr, hostIp.value);
  }
  const name = rawHost.replace(/^\*?\./, "");
  return name !== "" && (host === name || host.endsWith(`.${name}`));
}

/** The proxy URL to use for `url`, or undefined for a direct connection. */
export function proxyFor(settings: ProxySettings, url: URL): string | undefined {
  const proxy = url.protocol === "https:" ? settings.httpsProxy : settings.httpProxy;
  if (!proxy) return undefined;
  const host = url.hostname.toLowerCase().replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "");
  const port = url.port !== "" ? url.port : url.protocol === "https:" ? "443" : "80";
  return settings.noProxy.some((e) => bypasses(e, host, port)) ? undefined : proxy;
}
