/**
 * LiveKit key and secret resolution (configuration.md §3), including the deprecated
 * `LIVEKIT_SECRET_FILE` and the v0.2.2 key-only `LIVEKIT_KEY_FILE`.
 *
 * @module
 */
import type { ConfigNote, ConfigSources } from "./config.ts";
import { quote } from "./parse.ts";

/** Resolved key and secret, or the first problem found. */
export interface ResolvedKeys {
  key: string;
  secret: string;
  problem?: string;
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
    } else {
      key = get("LIVEKIT_KEY");
      keySource = "LIVEKIT_KEY";
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
    } else if (secretFileOld !== "") {
      notes.push({
        level: "warn",
        message: "LIVEKIT_SECRET_FILE is deprecated, use LIVEKIT_SECRET_FROM_FILE",
      });
      const s = reader(sources, "LIVEKIT_SECRET_FILE", secretFileOld);
      if (typeof s !== "string") return { key: "", secret: "", problem: s.problem };
      secret = s;
      secretSource = `file ${quote(secretFileOld)}`;
    } else {
      secret = get("LIVEKIT_SECRET");
      secretSource = "LIVEKIT_SECRET";
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
  return { key, secret };
}
