/**
 * The command-line parser shared by the launcher and the service (lib/cli/args.ts) and the
 * usage text (lib/cli/usage.ts): commands, setting flags derived from the variable table,
 * usage errors with suggestions.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  closest,
  editDistance,
  knownFlags,
  parseCommandLine,
  withSettings,
} from "../../lib/cli/args.ts";
import { usageText } from "../../lib/cli/usage.ts";
import { CONFIG_VARIABLES } from "../../lib/config/variables.ts";

function line(args: string[], variables?: readonly string[]) {
  const r = parseCommandLine(args, variables);
  if (!r.ok) throw new Error(r.error);
  return r.line;
}

function error(args: string[]): string {
  const r = parseCommandLine(args);
  assert.equal(r.ok, false, args.join(" "));
  return r.ok ? "" : r.error;
}

Deno.test("parseCommandLine(): commands and their spellings", () => {
  assert.equal(line([]).command, "serve");
  assert.equal(line(["serve"]).command, "serve");
  assert.equal(line(["check-config"]).command, "check-config");
  assert.equal(line(["healthcheck"]).command, "healthcheck");
  for (const v of [["--version"], ["version"], ["serve", "--version"]]) {
    assert.equal(line(v).command, "version");
  }
  for (const h of [["--help"], ["-h"], ["help"], ["check-config", "-h"], ["--version", "-h"]]) {
    assert.equal(line(h).command, "help", h.join(" "));
  }
  assert.equal(line(["check-config", "--offline"]).offline, true);
});

Deno.test("parseCommandLine(): every variable of the table is a flag; a flag wins", () => {
  for (const name of CONFIG_VARIABLES) {
    const flag = `--${name.toLowerCase().replaceAll("_", "-")}`;
    // Lower-case spellings (`https_proxy`) share the flag of the upper-case variable.
    assert.equal(line([`${flag}=x`]).settings.get(name.toUpperCase()), "x", flag);
  }
  const l = line(["check-config", "--livekit-jwt-bind", ":9000", "--livekit-url=wss://a=b"]);
  assert.equal(l.settings.get("LIVEKIT_JWT_BIND"), ":9000");
  assert.equal(l.settings.get("LIVEKIT_URL"), "wss://a=b");
  const env = withSettings(l, (n) => (n === "LIVEKIT_URL" ? "wss://env" : `env:${n}`));
  assert.equal(env("LIVEKIT_URL"), "wss://a=b");
  assert.equal(env("LIVEKIT_KEY"), "env:LIVEKIT_KEY");
  // Two spellings of one flag map to the upper-case variable.
  assert.equal(line(["--https-proxy=http://p:3128"]).settings.get("HTTPS_PROXY"), "http://p:3128");
  assert.equal(line(["--env-file=/etc/lk.env"]).envFile, "/etc/lk.env");
  assert.equal(line(["--env-file", "x.env"]).envFile, "x.env");
});

Deno.test("parseCommandLine(): a variable added to the table becomes a flag at once", () => {
  const variables = [...CONFIG_VARIABLES, "LIVEKIT_SOMETHING_NEW"];
  assert.equal(
    line(["--livekit-something-new=1"], variables).settings.get("LIVEKIT_SOMETHING_NEW"),
    "1",
  );
  assert.ok(knownFlags(variables).includes("--livekit-something-new"));
  assert.match(usageText("9.9.9", variables), /--livekit-something-new/);
  const r = parseCommandLine(["--livekit-something-nwe=1"], variables);
  assert.ok(!r.ok && r.error.includes("did you mean --livekit-something-new?"));
});

Deno.test("parseCommandLine(): usage errors name the closest flag or command", () => {
  const hint = ' (run "lk-jwt-service --help" for the commands and flags)';
  assert.equal(
    error(["--livekit-jwt-bnd=127.0.0.1:18099"]),
    `unknown flag --livekit-jwt-bnd; did you mean --livekit-jwt-bind?${hint}`,
  );
  assert.equal(
    error(["--livekit_full_access_homeservers=x"]),
    `unknown flag --livekit_full_access_homeservers; did you mean --livekit-full-access-homeservers?${hint}`,
  );
  assert.equal(error(["--versoin"]), `unknown flag --versoin; did you mean --version?${hint}`);
  assert.equal(error(["-v"]), `unknown flag -v${hint}`);
  assert.equal(error(["--zzzzzz"]), `unknown flag --zzzzzz${hint}`);
  assert.equal(
    error(["--redis-url=x"]),
    `unknown flag --redis-url; did you mean --livekit-redis-url?${hint}`,
  );
  assert.equal(
    error(["helthcheck"]),
    `unknown command "helthcheck"; did you mean healthcheck?${hint}`,
  );
  assert.equal(error(["serve", "extra"]), `unexpected argument "extra"${hint}`);
  assert.equal(
    error(["--livekit-url", "--offline"]),
    `--livekit-url needs a value: --livekit-url=<value>${hint}`,
  );
  assert.equal(error(["--offline"]), `--offline only applies to check-config${hint}`);
});

Deno.test("editDistance() and closest()", () => {
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(editDistance("bind", "bnid"), 1, "an adjacent swap is one edit");
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(closest("--ofline", ["--offline", "--help"]), "--offline");
  assert.equal(closest("--xyz", ["--offline", "--help"]), undefined);
});

Deno.test("usageText(): commands, flags once each, the environment file and where to read more", () => {
  const text = usageText("1.2.3");
  assert.match(text, /^lk-jwt-service 1\.2\.3: /);
  for (const word of ["serve", "check-config", "--offline", "healthcheck", "--version", "-h"]) {
    assert.ok(text.includes(word), word);
  }
  assert.equal(text.match(/--https-proxy/g)?.length, 1);
  assert.match(text, /LIVEKIT_ENV_FILE=<path>/);
  assert.match(text, /Exit status: 0 success, 1 configuration or start-up failure, 2 usage error/);
  for (const l of text.split("\n")) assert.ok(l.length <= 100, l);
});
