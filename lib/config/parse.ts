/**
 * Small parsers shared by the configuration loader: lists, integers, booleans, override maps
 * and bind addresses. Each returns a value or an error text in the exact wording of
 * configuration.md.
 *
 * @module
 */

/** `"<value>"` with JSON-style escapes, as configuration.md quotes values in messages. */
export function quote(value: string): string {
  return JSON.stringify(value);
}

/** Splits on commas and any whitespace, dropping empty pieces. */
export function splitList(value: string): string[] {
  return value.split(/[\s,]+/u).filter((piece) => piece.length > 0);
}

/** Parses a decimal integer with optional leading `+` and no spaces, or returns undefined. */
export function parseInteger(value: string): number | undefined {
  if (!/^\+?[0-9]+$/.test(value)) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Parses a non-negative decimal number (`0.5`, `50`), or returns undefined. */
export function parseDecimal(value: string): number | undefined {
  if (!/^\+?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$/.test(value)) return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

/** `true`/`false` (case-insensitive), `1`/`0`. */
export function parseBoolean(value: string): boolean | undefined {
  const v = value.toLowerCase();
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  return undefined;
}

/** Result of a parse that may fail with a message. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * Parses `server_name=url` override lists (`LIVEKIT_CS_API_URL_OVERRIDES`,
 * `LIVEKIT_FEDERATION_URL_OVERRIDES`; configuration.md §2). Later duplicates win.
 */
export function parseOverrides(name: string, value: string): Parsed<Map<string, string>> {
  const result = new Map<string, string>();
  if (value.trim() === "") return { ok: true, value: result };
  for (const entry of value.split(",")) {
    const eq = entry.indexOf("=");
    const key = eq < 0 ? "" : entry.slice(0, eq).trim();
    const url = eq < 0 ? "" : entry.slice(eq + 1).trim();
    if (eq < 0 || key === "" || url === "") {
      return {
        ok: false,
        error: `failed parsing ${name}: invalid entry ${quote(entry)}, expected server_name=url`,
      };
    }
    if (!isHttpUrl(url)) {
      return {
        ok: false,
        error: `failed parsing ${name}: invalid URL ${quote(url)} for ${
          quote(key)
        }, expected an absolute http:// or https:// URL`,
      };
    }
    result.set(key, url.replace(/\/+$/, ""));
  }
  return { ok: true, value: result };
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === "http:" || url.protocol === "https:") && url.host !== "";
  } catch {
    return false;
  }
}

/** A listen address. `host` is `""` for all interfaces. */
export interface BindAddress {
  host: string;
  port: number;
}

/** Parses `host:port`, `:port`, `[v6]:port` (configuration.md §2); port 0–65535. */
export function parseBind(value: string): BindAddress | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.%a-zA-Z0-9]+)\]|([^\s:[\]]*)):([0-9]{1,5})$/.exec(value);
  if (!m) return undefined;
  const port = Number(m[3]);
  // Port 0 asks the kernel for a free port (tests); the `Listening` log line tells which.
  if (port > 65535) return undefined;
  return { host: m[1] ?? m[2] ?? "", port };
}

/** Parses a port number 1–65535. */
export function parsePort(value: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(value)) return undefined;
  const port = Number(value);
  return port >= 1 && port <= 65535 ? port : undefined;
}
