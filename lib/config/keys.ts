/**
 * LiveKit key and secret resolution (configuration.md §3), including the deprecated
 * `LIVEKIT_SECRET_FILE` and the v0.2.2 key-only `LIVEKIT_KEY_FILE`.
 *
 * @module
 */
import type { ConfigNote, ConfigSources } from "./config.ts";
import { quote } from "./parse.ts";

/** Where a key or secret came from: a variable, or the file a variable names. */
export interface KeyOrigin {
  variable: string;
  path?: string;
}

/** Resolved key and secret, or the first problem found. */
export interface ResolvedKeys {
  key: string;
  secret: string;
  problem?: string;
  /** Source of the key (set whenever no `problem` is reported). */
  keyOrigin?: KeyOrigin;
  /** Source of the secret (set whenever no `problem` is reported). */
  secretOrigin?: KeyOrigin;
}

const TRIM = /^[ \r\n]+|[ \r\n]+$/g;

function trim(value: string): string {
  return value.replace(TRIM, "");
}

function reader(sources: ConfigSources, name: string, path: string): string | { problem: string } {
  try {
    return sources.readTextFile(path);
  } catch (err) {
    const cause = err instanceof Error ? err.message : String(err);
    return { problem: `failed reading ${name} ${quote(path)}: ${cause}` };
  }
}

/** Applies configuration.md §3 rules 1–6; pushes INFO/WARN notes, never values. */
export function resolveKeys(sources: ConfigSources, notes: ConfigNote[]): ResolvedKeys {
  const get = (name: string) => sources.env(name) ?? "";
  const keyFile = get("LIVEKIT_KEY_FILE");
  const secretFileOld = get("LIVEKIT_SECRET_FILE");
  let key: string;
  let secret: string;
  let keySource: string;
  let secretSource: string;
  let keyOrigin: KeyOrigin;
  let secretOrigin: KeyOrigin;

  if (keyFile !== "") {
    const content = reader(sources, "LIVEKIT_KEY_FILE", keyFile);
    if (typeof content !== "string") return { key: "", secret: "", problem: content.problem };
    const parts = content.split(":");
    for (
      const other of [
        "LIVEKIT_KEY",
        "LIVEKIT_SECRET",
        "LIVEKIT_KEY_FROM_FILE",
        "LIVEKIT_SECRET_FROM_FILE",
      ]
    ) {
      if (get(other) !== "") {
        notes.push({
          level: "warn",
          message: `${other} is ignored because LIVEKIT_KEY_FILE is set`,
        });
      }
    }
    if (parts.length === 2) {
      key = parts[0]!;
      secret = parts[1]!;
      keySource = secretSource = `file ${quote(keyFile)}`;
      keyOrigin = secretOrigin = { variable: "LIVEKIT_KEY_FILE", path: keyFile };
    } else if (parts.length === 1 && secretFileOld !== "") {
      notes.push({
        level: "warn",
        message: "LIVEKIT_SECRET_FILE is deprecated, use LIVEKIT_SECRET_FROM_FILE",
      });
      const s = reader(sources, "LIVEKIT_SECRET_FILE", secretFileOld);
      if (typeof s !== "string") return { key: "", secret: "", problem: s.problem };
      key = content;
      secret = s;
      keySource = `file ${quote(keyFile)}`;
      secretSource = `file ${quote(secretFileOld)}`;
      keyOrigin = { variable: "LIVEKIT_KEY_FILE", path: keyFile };
      secretOrigin = { variable: "LIVEKIT_SECRET_FILE", path: secretFileOld };
    } else {
      return { key: "", secret: "", problem: "invalid key secret file format!" };
    }
  } else {
    const keyFromFile = get("LIVEKIT_KEY_FROM_FILE");
    if (keyFromFile !== "") {
      const k = reader(sources, "LIVEKIT_KEY_FROM_FILE", keyFromFile);
      if (typeof k !== "string") return { key: "", secret: "", problem: k.problem };
      key = k;
      keySource = `file ${quote(keyFromFile)}`;
      keyOrigin = { variable: "LIVEKIT_KEY_FROM_FILE", path: keyFromFile };
    } else {
      key = get("LIVEKIT_KEY");
      keySource = "LIVEKIT_KEY";
      keyOrigin = { variable: "LIVEKIT_KEY" };
    }
    const secretFromFile = get("LIVEKIT_SECRET_FROM_FILE");
    if (secretFromFile !== "") {
      if (secretFileOld !== "") {
        notes.push({
          level: "warn",
          message:
            "LIVEKIT_SECRET_FILE is deprecated and ignored because LIVEKIT_SECRET_FROM_FILE is set",
        });
      }
      const s = reader(sources, "LIVEKIT_SECRET_FROM_FILE", secretFromFile);
      if (typeof s !== "string") return { key: "", secret: "", problem: s.problem };
      secret = s;
      secretSource = `file ${quote(secretFromFile)}`;
      secretOrigin = { variable: "LIVEKIT_SECRET_FROM_FILE", path: secretFromFile };
    } else if (secretFileOld !== "") {
      notes.push({
        level: "warn",
        message: "LIVEKIT_SECRET_FILE is deprecated, use LIVEKIT_SECRET_FROM_FILE",
      });
      const s = reader(sources, "LIVEKIT_SECRET_FILE", secretFileOld);
      if (typeof s !== "string") return { key: "", secret: "", problem: s.problem };
      secret = s;
      secretSource = `file ${quote(secretFileOld)}`;
      secretOrigin = { variable: "LIVEKIT_SECRET_FILE", path: secretFileOld };
    } else {
      secret = get("LIVEKIT_SECRET");
      secretSource = "LIVEKIT_SECRET";
      secretOrigin = { variable: "LIVEKIT_SECRET" };
    }
  }
  key = trim(key);
  secret = trim(secret);
  if (key !== "" && secret !== "") {
    notes.push({
      level: "info",
      message: `LiveKit key from ${keySource}, secret from ${secretSource}`,
    });
    const bytes = new TextEncoder().encode(secret).length;
    if (bytes < 32) {
      notes.push({
        level: "warn",
        message:
          `LiveKit secret is ${bytes} bytes long; LiveKit rejects secrets shorter than 32 bytes outside dev mode`,
      });
    }
    if (/[^\x21-\x7e]/.test(secret)) {
      notes.push({
        level: "warn",
        message:
          "LiveKit secret contains non-ASCII characters or whitespace; LiveKit may reject it",
      });
    }
  }
  return { key, secret, keyOrigin, secretOrigin };
}

function emptyLine(what: "key" | "secret", origin: KeyOrigin | undefined, raw: string): string {
  const alternatives = what === "key"
    ? "LIVEKIT_KEY_FROM_FILE or LIVEKIT_KEY_FILE"
    : "LIVEKIT_SECRET_FROM_FILE or LIVEKIT_KEY_FILE";
  const plain = what === "key" ? "LIVEKIT_KEY" : "LIVEKIT_SECRET";
  if (origin === undefined || origin.path === undefined) {
    return raw === ""
      ? `${plain} is not set: the LiveKit API ${what} (or set ${alternatives})`
      : `${plain} is blank: the LiveKit API ${what} must not be only spaces or line breaks`;
  }
  if (origin.variable === "LIVEKIT_KEY_FILE") {
    return `LIVEKIT_KEY_FILE ${quote(origin.path)} holds an empty ${what} ` +
      '(expected one line "<key>: <secret>")';
  }
  return `${origin.variable} ${quote(origin.path)} is empty: it must hold the LiveKit API ${what}`;
}

/**
 * Our lines after the reference text `LIVEKIT_KEY* / LIVEKIT_SECRET* and LIVEKIT_URL must be
 * set` (configuration.md §3 rule 5): one per missing item, naming the variable or file to fix.
 */
export function missingKeyLines(
  keys: ResolvedKeys,
  livekitUrl: string,
  env: (name: string) => string | undefined,
): string[] {
  const lines: string[] = [];
  if (keys.key === "") lines.push(emptyLine("key", keys.keyOrigin, env("LIVEKIT_KEY") ?? ""));
  if (keys.secret === "") {
    lines.push(emptyLine("secret", keys.secretOrigin, env("LIVEKIT_SECRET") ?? ""));
  }
  if (livekitUrl === "") {
    lines.push(
      "LIVEKIT_URL is not set: the SFU's WebSocket URL that clients connect to, e.g. " +
        "LIVEKIT_URL=wss://sfu.example.com",
    );
  }
  return lines;
}
