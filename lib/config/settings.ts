/**
 * Parsers for the composite settings of configuration.md: the full-access list (§2, D2), the bind
 * address and its deprecated forms (§2, §4), CIDR lists and `LIVEKIT_OUTBOUND_ALLOW` (§5), and the
 * Redis URL checks and masking (delegation.md §10.3). Each pushes its problems and notes in the
 * wording of configuration.md.
 *
 * @module
 */
import { type Cidr, parseCidr, parseIp } from "../net/ip.ts";
import { parseRedisUrl } from "./redis_url.ts";
import type { ConfigNote, FullAccess } from "./config.ts";
import { type BindAddress, parseBind, parsePort, quote, splitList } from "./parse.ts";

/** Human-readable text of a caught error (file-read causes in config messages). */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** `LIVEKIT_FULL_ACCESS_HOMESERVERS` with its deprecated alias (D2). */
export function parseFullAccess(
  env: (name: string) => string | undefined,
  problems: string[],
  notes: ConfigNote[],
): FullAccess {
  let raw = env("LIVEKIT_FULL_ACCESS_HOMESERVERS") ?? "";
  const legacy = env("LIVEKIT_LOCAL_HOMESERVERS") ?? "";
  if (legacy !== "") {
    if (raw === "") {
      raw = legacy;
      notes.push({
        level: "warn",
        message: "LIVEKIT_LOCAL_HOMESERVERS is deprecated, use LIVEKIT_FULL_ACCESS_HOMESERVERS",
      });
    } else {
      notes.push({
        level: "warn",
        message:
          "LIVEKIT_LOCAL_HOMESERVERS is deprecated and ignored because LIVEKIT_FULL_ACCESS_HOMESERVERS is set",
      });
    }
  }
  if (raw === "") return { wildcard: true, explicit: new Set(), defaulted: true };
  const names = splitList(raw);
  if (names.length === 0) {
    problems.push(
      "LIVEKIT_FULL_ACCESS_HOMESERVERS environment variable must be set to the homeserver(s) you intend to serve — see README for guidance",
    );
    return { wildcard: false, explicit: new Set(), defaulted: false };
  }
  return {
    wildcard: names.includes("*"),
    explicit: new Set(names.filter((n) => n !== "*")),
    defaulted: false,
  };
}

/** `LIVEKIT_JWT_BIND`, `LIVEKIT_JWT_PORT` and `LK_JWT_PORT`. */
export function parseBindSettings(
  env: (name: string) => string | undefined,
  problems: string[],
  notes: ConfigNote[],
): BindAddress & { text: string } {
  const bind = env("LIVEKIT_JWT_BIND") ?? "";
  const port = env("LIVEKIT_JWT_PORT") ?? "";
  const old = env("LK_JWT_PORT") ?? "";
  const fallback = { host: "", port: 8080, text: ":8080" };
  if (old !== "") {
    if (bind !== "" || port !== "") {
      notes.push({
        level: "warn",
        message:
          "LK_JWT_PORT is deprecated and ignored because LIVEKIT_JWT_BIND or LIVEKIT_JWT_PORT is set",
      });
    } else {
      notes.push({ level: "warn", message: "LK_JWT_PORT is deprecated, use LIVEKIT_JWT_BIND" });
    }
  }
  if (bind !== "" && port !== "") {
    problems.push("LIVEKIT_JWT_BIND and LIVEKIT_JWT_PORT must not be set together");
    return fallback;
  }
  if (bind !== "") {
    const parsed = parseBind(bind);
    if (!parsed) {
      problems.push(`LIVEKIT_JWT_BIND must be host:port, got ${quote(bind)}`);
      return fallback;
    }
    return { ...parsed, text: bind };
  }
  const portText = port !== "" ? port : old;
  if (port !== "") {
    notes.push({
      level: "warn",
      message: "!!! LIVEKIT_JWT_PORT is deprecated, use LIVEKIT_JWT_BIND !!!",
    });
  }
  if (portText !== "") {
    const p = parsePort(portText);
    if (p === undefined) {
      const name = port !== "" ? "LIVEKIT_JWT_PORT" : "LK_JWT_PORT";
      problems.push(`${name} must be a port number, got ${quote(portText)}`);
      return fallback;
    }
    return { host: "", port: p, text: `:${p}` };
  }
  return fallback;
}

/** A comma/whitespace list of CIDR ranges. */
export function parseCidrList(name: string, raw: string, problems: string[]): Cidr[] {
  const out: Cidr[] = [];
  for (const piece of splitList(raw)) {
    const cidr = parseCidr(piece);
    if (!cidr) {
      problems.push(`${name} must be a list of CIDR ranges, got ${quote(piece)}`);
      continue;
    }
    out.push(cidr);
  }
  return out;
}

const HOST_RE =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/;

/** `LIVEKIT_OUTBOUND_ALLOW`: CIDRs, addresses and host names. */
export function parseOutboundAllow(raw: string, problems: string[]) {
  const cidrs: Cidr[] = [];
  const hosts = new Set<string>();
  for (const piece of splitList(raw)) {
    const cidr = parseCidr(piece);
    if (cidr) cidrs.push(cidr);
    else if (!piece.includes("/") && parseIp(piece) === undefined && HOST_RE.test(piece)) {
      hosts.add(piece.toLowerCase().replace(/\.$/, ""));
    } else {
      problems.push(
        `LIVEKIT_OUTBOUND_ALLOW must be a list of CIDR ranges, addresses and host names, got ${
          quote(piece)
        }`,
      );
    }
  }
  return { cidrs, hosts };
}

/** Why a Redis URL is unusable, or undefined if it is fine (delegation.md §10.3). */
export function redisUrlProblem(raw: string): string | undefined {
  try {
    parseRedisUrl(raw);
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/**
 * The Redis URL with its credentials replaced by `***`, for messages. Everything between
 * `scheme://` and the last `@` is user information (a password may itself contain `@` or `/`);
 * a user name before the first `:` is kept.
 */
export function maskRedisUrl(raw: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)(.*)@([^@]*)$/is.exec(raw);
  if (!m) return raw;
  const userinfo = m[2]!;
  const colon = userinfo.indexOf(":");
  const user = colon < 0 ? "" : userinfo.slice(0, colon);
  return `${m[1]}${user}:***@${m[3]}`;
}
