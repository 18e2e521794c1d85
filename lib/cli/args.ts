/**
 * The command line of `lk-jwt-service` (configuration.md §1 "CLI flags" and "Extra commands"):
 * one parser shared by the launcher's permission step (`flags.ts`) and the service's entry
 * (`main.ts`), so both accept and refuse exactly the same arguments.
 *
 * Grammar: `[command] [--<setting>=<value> | --<setting> <value> | --env-file=<path> |
 * --offline | --help | -h | --version] ...`. The known setting flags are derived from
 * {@linkcode CONFIG_VARIABLES}, so a variable added there is a flag at once. Anything else is a
 * usage error (exit status 2) that names the closest known flag or command: a mistyped
 * `--livekit-jwt-bnd` must never start the service on its default address.
 *
 * @module
 */
import { CONFIG_VARIABLES, settingFlag } from "../config/variables.ts";

/** What the process is asked to do. */
export type Command = "serve" | "check-config" | "healthcheck" | "version" | "help";

/** A valid command line. */
export interface CommandLine {
  command: Command;
  /** Settings given as flags, by variable name; they win over the environment. */
  settings: ReadonlyMap<string, string>;
  /** `check-config --offline`: configuration and key files only. */
  offline: boolean;
  /** `--env-file=<path>`: read by the launcher before Deno starts (see `bin/lk-jwt-service`). */
  envFile: string | undefined;
}

/** Parse outcome: the command line, or the usage error to print before exiting with 2. */
export type ParseResult = { ok: true; line: CommandLine } | { ok: false; error: string };

/** Words accepted as the first argument. */
const COMMAND_WORDS: Readonly<Record<string, Command>> = {
  "serve": "serve",
  "check-config": "check-config",
  "healthcheck": "healthcheck",
  "help": "help",
  "version": "version",
};

/** Flags that are not settings. */
const OPTION_FLAGS = ["--env-file", "--offline", "--help", "--version"] as const;

/** Every flag the command line knows, settings first (for suggestions and the usage text). */
export function knownFlags(variables: readonly string[] = CONFIG_VARIABLES): string[] {
  return [...new Set([...variables.map(settingFlag), ...OPTION_FLAGS])];
}

/** Flag → variable; the first spelling wins (`--https-proxy` → `HTTPS_PROXY`, not `https_proxy`). */
function flagTable(variables: readonly string[]): Map<string, string> {
  const table = new Map<string, string>();
  for (const name of variables) {
    const flag = settingFlag(name);
    if (!table.has(flag)) table.set(flag, name);
  }
  return table;
}

/** Edit distance (insertions, deletions, substitutions, adjacent swaps) between two words. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => {
    const row = new Array<number>(cols).fill(0);
    row[0] = i;
    return row;
  });
  for (let j = 0; j < cols; j++) d[0]![j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      }
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate closest to `word`, or undefined when none is close enough to be a plausible
 * typo (at most a third of the word's length, and at least 2 edits are always tolerated).
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(word, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const tolerated = Math.max(2, Math.floor(word.length / 3));
  return bestDistance <= tolerated ? best : undefined;
}

/** How a mistyped flag is spelled once case and `_` are normalised (`--LIVEKIT_URL`). */
function normaliseFlag(flag: string): string {
  return "--" + flag.replace(/^-+/, "").toLowerCase().replaceAll("_", "-");
}

const HINT = 'run "lk-jwt-service --help" for the commands and flags';

/** A typo of a known flag, or a known flag's unambiguous last words (`--jwt-bind`). */
function suggestFlag(flag: string, candidates: readonly string[]): string | undefined {
  const normalised = normaliseFlag(flag);
  const near = closest(normalised, candidates);
  if (near !== undefined) return near;
  const tail = `-${normalised.slice(2)}`;
  const endings = candidates.filter((c) => c.endsWith(tail));
  return endings.length === 1 ? endings[0] : undefined;
}

function unknownFlag(flag: string, candidates: readonly string[]): string {
  const suggestion = suggestFlag(flag, candidates);
  return `unknown flag ${flag}${suggestion ? `; did you mean ${suggestion}?` : ""} (${HINT})`;
}

function unknownCommand(word: string): string {
  const suggestion = closest(word.toLowerCase(), Object.keys(COMMAND_WORDS));
  return `unknown command ${JSON.stringify(word)}${
    suggestion ? `; did you mean ${suggestion}?` : ""
  } (${HINT})`;
}

/**
 * Parses the arguments of `lk-jwt-service` (without the program name).
 *
 * @param args the process arguments.
 * @param variables the settings that exist as flags (default: {@linkcode CONFIG_VARIABLES}).
 * @returns the command line, or the usage error.
 * @example
 * ```ts
 * const r = parseCommandLine(["--livekit-jwt-bnd=:9000"]);
 * // r.ok === false; r.error names --livekit-jwt-bind
 * ```
 */
export function parseCommandLine(
  args: readonly string[],
  variables: readonly string[] = CONFIG_VARIABLES,
): ParseResult {
  const byFlag = flagTable(variables);
  const candidates = knownFlags(variables);
  const settings = new Map<string, string>();
  let command: Command | undefined;
  let offline = false;
  let envFile: string | undefined;
  let help = false;
  let version = false;

  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "-h" || arg === "--help") {
      help = true;
      continue;
    }
    if (arg === "--version") {
      version = true;
      continue;
    }
    if (arg === "--offline") {
      offline = true;
      continue;
    }
    if (!arg.startsWith("-")) {
      if (command === undefined && i === 0) {
        const word = COMMAND_WORDS[arg];
        if (word === undefined) return { ok: false, error: unknownCommand(arg) };
        command = word;
        continue;
      }
      return { ok: false, error: `unexpected argument ${JSON.stringify(arg)} (${HINT})` };
    }
    const eq = arg.indexOf("=");
    const flag = eq < 0 ? arg : arg.slice(0, eq);
    const variable = byFlag.get(flag);
    if (variable === undefined && flag !== "--env-file") {
      return { ok: false, error: unknownFlag(flag, candidates) };
    }
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else {
      const next = args[i + 1];
      if (next === undefined || next.startsWith("--")) {
        return { ok: false, error: `${flag} needs a value: ${flag}=<value> (${HINT})` };
      }
      value = next;
      i++;
    }
    if (variable === undefined) envFile = value;
    else settings.set(variable, value);
  }

  if (help) command = "help";
  else if (version) command = "version";
  command ??= "serve";
  if (offline && command !== "check-config") {
    return { ok: false, error: `--offline only applies to check-config (${HINT})` };
  }
  return { ok: true, line: { command, settings, offline, envFile } };
}

/** The environment with the command line's settings applied (a flag wins, configuration.md §1). */
export function withSettings(
  line: CommandLine,
  env: (name: string) => string | undefined,
): (name: string) => string | undefined {
  return (name) => line.settings.get(name) ?? env(name);
}
