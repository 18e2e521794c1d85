/**
 * The text of `lk-jwt-service --help` (also `-h` and `help`): commands, flags, the environment
 * file and where each setting is documented. The setting flags are listed from
 * {@linkcode CONFIG_VARIABLES}, so the help never falls behind the configuration.
 *
 * @module
 */
import { CONFIG_VARIABLES, settingFlag } from "../config/variables.ts";

/** Width the flag list is wrapped to. */
const WIDTH = 100;

function wrap(words: readonly string[], indent: string): string[] {
  const lines: string[] = [];
  let line = indent;
  for (const word of words) {
    if (line.length > indent.length && line.length + 1 + word.length > WIDTH) {
      lines.push(line);
      line = indent;
    }
    line += line.length > indent.length ? ` ${word}` : word;
  }
  if (line.length > indent.length) lines.push(line);
  return lines;
}

/**
 * The usage text, newline-terminated.
 *
 * @param version the version printed in the first line.
 * @param variables the settings that exist as flags (default: {@linkcode CONFIG_VARIABLES}).
 */
export function usageText(
  version: string,
  variables: readonly string[] = CONFIG_VARIABLES,
): string {
  const lines = [
    `lk-jwt-service ${version}: MatrixRTC authorization service for LiveKit`,
    "",
    "Usage: lk-jwt-service [command] [--<setting>=<value> ...] [--env-file=<path>]",
    "",
    "Commands:",
    "  serve                 run the service (default)",
    "  check-config          validate the configuration and read the key files, then check the",
    "                        LiveKit API, the listed homeservers, Redis and the listen address;",
    "                        one PASS/FAIL line with a fix per check, exit 0 only if all pass",
    "    --offline           configuration and key files only, no network",
    "  healthcheck           GET /healthz on the configured listen address, exit 0 on 200",
    "  help, --help, -h      this text",
    "  version, --version    print the version",
    "",
    "Settings: each environment variable of the service is also a flag, lowercase with - for _",
    "(LIVEKIT_JWT_BIND -> --livekit-jwt-bind=:9000); a flag wins over the variable. README.md,",
    'section "Configuration", describes every one. Prefer the *_FROM_FILE variables for secrets:',
    "command lines are visible to other users of the machine.",
    ...wrap([...new Set(variables.map(settingFlag))], "  "),
    "",
    "Environment file: .env in the working directory is read when present; LIVEKIT_ENV_FILE=<path>",
    "or --env-file=<path> names another file. Variables set in the environment win over the file.",
    "",
    "Exit status: 0 success, 1 configuration or start-up failure, 2 usage error.",
  ];
  return lines.join("\n") + "\n";
}
