/**
 * App-service mode settings (app-service.md §2): the tokens shared with the homeserver, from the
 * registration YAML (`LIVEKIT_AS_REGISTRATION_FILE`) or from `LIVEKIT_AS_TOKEN` /
 * `LIVEKIT_HS_TOKEN` (each also `*_FROM_FILE`), the homeserver's server name, the registration
 * `id` for the ping check, the metadata grant of app-service tokens, and the period of the
 * membership enforcement sweep (§8).
 *
 * The mode is on when the as_token, the hs_token and `LIVEKIT_HS_SERVER_NAME` are all non-empty;
 * some but not all is a startup error naming what is missing. The YAML parser is loaded only when
 * a registration file is configured ({@linkcode loadYamlParser}): it costs several MiB of memory.
 *
 * Facts the registration file tells beyond the tokens (the `io.element.msc4512.*` and
 * `io.element.msc4502.scopes` keys Synapse 1.163 reads, `rate_limited`, `url`, the users
 * namespace) are kept as {@linkcode RegistrationFacts} so startup and `check-config` can point at
 * a registration Synapse would accept but that cannot work with this service.
 *
 * @module
 */
import { Secret, type ServerName, serverName as toServerName } from "../ids.ts";
import { isValidServerName } from "../matrix/server_name.ts";
import type { ConfigNote } from "./config.ts";
import { parseBoolean, parseInteger, quote } from "./parse.ts";

/** The scope Synapse requires for `is_joined` (MSC4502). */
export const IS_JOINED_SCOPE = "urn:matrix:client:io.element.msc4502:rooms:is_joined";
/** The only proxy prefix Synapse lets an application service claim (MSC4512). */
export const PROXY_PREFIX = "rtc/livekit";
/** Default and largest `LIVEKIT_MEMBERSHIP_CHECK_INTERVAL_SECONDS` (app-service.md §2, §8). */
export const MEMBERSHIP_CHECK_DEFAULT_S = 30;
export const MEMBERSHIP_CHECK_MAX_S = 86_400;

/** A parsed YAML document (the `yaml` package's `parse`). */
export type YamlParser = (text: string) => unknown;

/** What the registration file says beyond the tokens (for warnings and `check-config`). */
export interface RegistrationFacts {
  /** `url`: a string, `null` (explicitly none) or undefined (key absent). */
  url: string | null | undefined;
  rateLimited: boolean | undefined;
  proxyPrefix: string | undefined;
  proxyUrl: string | undefined;
  scopes: readonly string[];
  /** `namespaces.users[].regex` values. */
  userRegexes: readonly string[];
}

/** App-service mode, validated. */
export interface AppServiceConfig {
  asToken: Secret<"as_token">;
  hsToken: Secret<"hs_token">;
  /** `LIVEKIT_HS_SERVER_NAME`: the homeserver this service is registered with. */
  serverName: ServerName;
  /** Registration `id` (from the file, else `LIVEKIT_AS_ID`); needed for the ping check. */
  id: string | undefined;
  /** Path of the registration file, when the tokens came from one. */
  registrationFile: string | undefined;
  registration: RegistrationFacts | undefined;
  /** `canUpdateOwnMetadata` of app-service tokens (`LIVEKIT_CAN_UPDATE_OWN_METADATA`). */
  canUpdateOwnMetadata: boolean;
  /** Membership sweep period (`LIVEKIT_MEMBERSHIP_CHECK_INTERVAL_SECONDS`); 0 = no sweep. */
  membershipCheckIntervalMs: number;
  /** Where the tokens came from, for the startup log (never the values). */
  source: string;
}

/** The inputs of {@linkcode parseAppService} (the loader's sources). */
export interface AppServiceSources {
  env: (name: string) => string | undefined;
  readTextFile: (path: string) => string;
  /** Needed only when `LIVEKIT_AS_REGISTRATION_FILE` is set. */
  parseYaml?: YamlParser;
}

const TRIM = /^[ \t\r\n]+|[ \t\r\n]+$/g;

function trim(value: string): string {
  return value.replace(TRIM, "");
}

/** Loads the YAML parser when the configuration needs it (a registration file is set). */
export async function loadYamlParser(
  env: (name: string) => string | undefined,
): Promise<YamlParser | undefined> {
  if ((env("LIVEKIT_AS_REGISTRATION_FILE") ?? "") === "") return undefined;
  const { parse } = await import("yaml");
  return (text) => parse(text);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message.split("\n")[0]! : String(err);
}

function stringList(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}

function facts(doc: Record<string, unknown>): RegistrationFacts {
  const url = doc.url;
  const namespaces = isRecord(doc.namespaces) ? doc.namespaces : {};
  const users = Array.isArray(namespaces.users) ? namespaces.users : [];
  const str = (v: unknown) => (typeof v === "string" ? v : undefined);
  return {
    url: typeof url === "string" ? url : url === null ? null : undefined,
    rateLimited: typeof doc.rate_limited === "boolean" ? doc.rate_limited : undefined,
    proxyPrefix: str(doc["io.element.msc4512.proxy_prefix"])?.replace(/\/+$/, ""),
    proxyUrl: str(doc["io.element.msc4512.proxy_url"])?.replace(/\/+$/, ""),
    scopes: stringList(doc["io.element.msc4502.scopes"]),
    userRegexes: users.flatMap((
      u,
    ) => (isRecord(u) && typeof u.regex === "string" ? [u.regex] : [])),
  };
}

interface Tokens {
  asToken: string;
  hsToken: string;
  id: string | undefined;
  registration: RegistrationFacts | undefined;
  source: string;
}

function fromRegistration(
  path: string,
  sources: AppServiceSources,
  problems: string[],
): Tokens | undefined {
  const name = "LIVEKIT_AS_REGISTRATION_FILE";
  let text: string;
  try {
    text = sources.readTextFile(path);
  } catch (err) {
    problems.push(`failed reading ${name} ${quote(path)}: ${errorText(err)}`);
    return undefined;
  }
  let doc: unknown;
  try {
    if (!sources.parseYaml) throw new Error("no YAML parser loaded");
    doc = sources.parseYaml(text);
  } catch (err) {
    problems.push(`failed parsing ${name} ${quote(path)}: ${errorText(err)}`);
    return undefined;
  }
  if (!isRecord(doc)) {
    problems.push(`${name} ${quote(path)} must be a YAML mapping`);
    return undefined;
  }
  const missing = ["as_token", "hs_token"].filter((key) =>
    typeof doc[key] !== "string" || trim(doc[key] as string) === ""
  );
  for (const key of missing) {
    problems.push(`${name} ${quote(path)} has no ${key} (a non-empty string)`);
  }
  if (missing.length > 0) return undefined;
  return {
    asToken: trim(doc.as_token as string),
    hsToken: trim(doc.hs_token as string),
    id: typeof doc.id === "string" && doc.id !== "" ? doc.id : undefined,
    registration: facts(doc),
    source: `file ${quote(path)}`,
  };
}

function tokenFrom(
  sources: AppServiceSources,
  variable: "LIVEKIT_AS_TOKEN" | "LIVEKIT_HS_TOKEN",
  problems: string[],
): { value: string; source: string } {
  const file = sources.env(`${variable}_FROM_FILE`) ?? "";
  if (file !== "") {
    try {
      return { value: trim(sources.readTextFile(file)), source: `file ${quote(file)}` };
    } catch (err) {
      problems.push(`failed reading ${variable}_FROM_FILE ${quote(file)}: ${errorText(err)}`);
      return { value: "", source: "" };
    }
  }
  return { value: trim(sources.env(variable) ?? ""), source: variable };
}

/** Registration warnings: a file Synapse accepts but with which this service cannot work. */
export function registrationWarnings(
  reg: RegistrationFacts,
  serverName: string,
): string[] {
  const out: string[] = [];
  if (reg.proxyPrefix !== PROXY_PREFIX || !reg.proxyUrl) {
    out.push(
      `the registration file should set io.element.msc4512.proxy_prefix: ${PROXY_PREFIX} and ` +
        "io.element.msc4512.proxy_url (this service's address): without them Synapse forwards " +
        "no rtc/livekit request",
    );
  }
  if (!reg.scopes.includes(IS_JOINED_SCOPE)) {
    out.push(
      `the registration file should list ${IS_JOINED_SCOPE} in io.element.msc4502.scopes: ` +
        "without it every token request fails (Synapse answers is_joined with 403)",
    );
  }
  if (reg.rateLimited !== false) {
    out.push(
      "the registration file should set rate_limited: false: otherwise Synapse rate-limits " +
        "the delayed-event restarts this service makes for delegated users",
    );
  }
  if (reg.userRegexes.length === 0) {
    out.push(
      "the registration file should claim the local users (namespaces.users: [{regex: " +
        `'@.*:${serverName.replaceAll(".", "\\\\.")}', exclusive: false}]): ` +
        "delegate_delayed_leave acts as the user and Synapse refuses users outside the namespace",
    );
  }
  return out;
}

/**
 * Reads the app-service settings; pushes problems in the wording of app-service.md §2 and
 * notes for the startup log. Returns undefined when the mode is off (or misconfigured).
 */
export function parseAppService(
  sources: AppServiceSources,
  problems: string[],
  notes: ConfigNote[],
): AppServiceConfig | undefined {
  const get = (name: string) => sources.env(name) ?? "";
  const start = problems.length;
  let canUpdateOwnMetadata = false;
  const rawMeta = get("LIVEKIT_CAN_UPDATE_OWN_METADATA");
  if (rawMeta !== "") {
    const b = parseBoolean(rawMeta);
    if (b === undefined) {
      problems.push(`LIVEKIT_CAN_UPDATE_OWN_METADATA must be true or false, got ${quote(rawMeta)}`);
    } else canUpdateOwnMetadata = b;
  }
  let membershipCheckIntervalMs = MEMBERSHIP_CHECK_DEFAULT_S * 1000;
  const rawCheck = get("LIVEKIT_MEMBERSHIP_CHECK_INTERVAL_SECONDS");
  if (rawCheck !== "") {
    const n = parseInteger(rawCheck);
    if (n === undefined || n > MEMBERSHIP_CHECK_MAX_S) {
      problems.push(
        `LIVEKIT_MEMBERSHIP_CHECK_INTERVAL_SECONDS must be an integer between 0 and ${MEMBERSHIP_CHECK_MAX_S}, got ${
          quote(rawCheck)
        }`,
      );
    } else membershipCheckIntervalMs = n * 1000;
  }

  const file = get("LIVEKIT_AS_REGISTRATION_FILE");
  let tokens: Tokens;
  if (file !== "") {
    const read = fromRegistration(file, sources, problems);
    for (const variable of ["LIVEKIT_AS_TOKEN", "LIVEKIT_HS_TOKEN"]) {
      if (get(variable) !== "" || get(`${variable}_FROM_FILE`) !== "") {
        notes.push({
          level: "warn",
          message: `${variable}* is ignored because LIVEKIT_AS_REGISTRATION_FILE is set`,
        });
      }
    }
    if (read === undefined) return undefined;
    tokens = read;
  } else {
    const as = tokenFrom(sources, "LIVEKIT_AS_TOKEN", problems);
    const hs = tokenFrom(sources, "LIVEKIT_HS_TOKEN", problems);
    if (problems.length > start) return undefined;
    const id = get("LIVEKIT_AS_ID");
    tokens = {
      asToken: as.value,
      hsToken: hs.value,
      id: id === "" ? undefined : id,
      registration: undefined,
      source: as.source === hs.source ? as.source : `${as.source} and ${hs.source}`,
    };
  }
  const server = get("LIVEKIT_HS_SERVER_NAME");
  const present = {
    "LIVEKIT_AS_TOKEN* (or LIVEKIT_AS_REGISTRATION_FILE)": tokens.asToken !== "",
    "LIVEKIT_HS_TOKEN* (or LIVEKIT_AS_REGISTRATION_FILE)": tokens.hsToken !== "",
    "LIVEKIT_HS_SERVER_NAME": server !== "",
  };
  const missing = Object.entries(present).filter(([, ok]) => !ok).map(([name]) => name);
  if (missing.length === 3) return undefined;
  if (missing.length > 0) {
    problems.push(
      `app-service mode needs the as_token, the hs_token and LIVEKIT_HS_SERVER_NAME; missing: ${
        missing.join(", ")
      }`,
    );
    return undefined;
  }
  if (!isValidServerName(server)) {
    problems.push(
      `LIVEKIT_HS_SERVER_NAME must be a Matrix server name (host[:port]), got ${quote(server)}`,
    );
    return undefined;
  }
  if (problems.length > start) return undefined;
  if (tokens.asToken === tokens.hsToken) {
    notes.push({
      level: "warn",
      message:
        "the app service's as_token and hs_token are equal: generate two different random tokens",
    });
  }
  for (
    const warning of tokens.registration ? registrationWarnings(tokens.registration, server) : []
  ) {
    notes.push({ level: "warn", message: warning });
  }
  return {
    asToken: new Secret("as_token", tokens.asToken),
    hsToken: new Secret("hs_token", tokens.hsToken),
    serverName: toServerName(server),
    id: tokens.id,
    registrationFile: file === "" ? undefined : file,
    registration: tokens.registration,
    canUpdateOwnMetadata,
    membershipCheckIntervalMs,
    source: tokens.source,
  };
}
