/**
 * Entry point: parses the command line (`serve` by default, `healthcheck`, `check-config`,
 * `help`, `--version`; unknown flags are usage errors), loads the configuration and wires the
 * service. All behaviour lives in `lib/`.
 *
 * @module
 */
import { ConfigError, loadConfig } from "./lib/config/config.ts";
import { type CommandLine, parseCommandLine, withSettings } from "./lib/cli/args.ts";
import { usageText } from "./lib/cli/usage.ts";
import { createLogger } from "./lib/log.ts";
import { loadYamlParser } from "./lib/config/app_service.ts";
import { startService } from "./lib/service.ts";
import { runHealthcheck } from "./lib/cli/healthcheck.ts";
import {
  explainPermissionError,
  permissionsSummary,
  revokeStartupPermissions,
} from "./lib/cli/permissions_report.ts";
import { describeError } from "./lib/log.ts";
import { VERSION } from "./lib/version.ts";

/** Files read only while loading the configuration. */
const STARTUP_FILES = [
  "LIVEKIT_KEY_FILE",
  "LIVEKIT_KEY_FROM_FILE",
  "LIVEKIT_SECRET_FROM_FILE",
  "LIVEKIT_SECRET_FILE",
  "SSL_CERT_FILE",
  "LIVEKIT_AS_REGISTRATION_FILE",
  "LIVEKIT_AS_TOKEN_FROM_FILE",
  "LIVEKIT_HS_TOKEN_FROM_FILE",
];

function envLookup(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

function stderr(line: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(line + "\n"));
}

async function serve(line: CommandLine): Promise<number> {
  const env = withSettings(line, envLookup);
  let loaded;
  try {
    loaded = loadConfig({
      env,
      readTextFile: (p) => Deno.readTextFileSync(p),
      parseYaml: await loadYamlParser(env),
    });
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const problem of err.problems) stderr(problem);
      return 1;
    }
    throw err;
  }
  const { config, notes } = loaded;
  const log = createLogger({ level: config.logLevel, format: config.logFormat });
  const permissions = permissionsSummary();
  let service;
  try {
    service = await startService(config, {
      log,
      notes,
      permissions,
      deploy: envLookup("DENO_DEPLOYMENT_ID") !== undefined,
    });
  } catch (err) {
    stderr(explainPermissionError(err, { purpose: "listen" }) ?? describeError(err));
    return 1;
  }
  // Everything that reads files or the environment has been built: drop those grants.
  const revoked = revokeStartupPermissions({
    readPaths: STARTUP_FILES.map((name) => env(name)).filter((p): p is string => !!p),
    env: true,
  });
  if (revoked.length > 0) log.info("Dropped start-up permissions", { revoked: revoked.join(", ") });
  let signals = 0;
  const onSignal = () => {
    signals++;
    if (signals > 1) Deno.exit(1);
    service.shutdown().then(() => Deno.exit(0));
  };
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    try {
      Deno.addSignalListener(sig, onSignal);
    } catch {
      // Platforms without signal support (Deno Deploy) stop the isolate themselves.
    }
  }
  await service.finished;
  return 0;
}

async function main(args: string[]): Promise<number> {
  const parsed = parseCommandLine(args);
  if (!parsed.ok) {
    stderr(`lk-jwt-service: ${parsed.error}`);
    return 2;
  }
  const line = parsed.line;
  switch (line.command) {
    case "healthcheck":
      return await runHealthcheck(withSettings(line, envLookup));
    case "check-config": {
      // Loaded on demand: the checks pull in clients the service itself may not need.
      const { runCheckConfig } = await import("./lib/cli/check_config.ts");
      return await runCheckConfig(args.slice(1), envLookup);
    }
    case "version":
      console.log(`lk-jwt-service ${VERSION}`);
      return 0;
    case "help":
      Deno.stdout.writeSync(new TextEncoder().encode(usageText(VERSION)));
      return 0;
    case "serve":
      return await serve(line);
  }
}

if (import.meta.main) {
  Deno.exitCode = await main(Deno.args);
}
