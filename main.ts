/**
 * Entry point: dispatches the command (`serve` by default, `healthcheck`, `check-config`,
 * `--version`), loads the configuration and wires the service. All behaviour lives in `lib/`.
 *
 * @module
 */
import { ConfigError, envWithFlags, loadConfig } from "./lib/config/config.ts";
import { createLogger } from "./lib/log.ts";
import { startService } from "./lib/service.ts";
import { runHealthcheck } from "./lib/cli/healthcheck.ts";
import { permissionsSummary } from "./lib/cli/permissions_report.ts";
import { VERSION } from "./lib/version.ts";

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

async function serve(args: string[]): Promise<number> {
  const { env } = envWithFlags(args, envLookup);
  let loaded;
  try {
    loaded = loadConfig({ env, readTextFile: (p) => Deno.readTextFileSync(p) });
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
  // Configuration is read: drop what is no longer needed (least privilege).
  await Deno.permissions.revoke({ name: "env" }).catch(() => {});
  if (!config.redisUrl?.reveal().startsWith("unix:")) {
    await Deno.permissions.revoke({ name: "read" }).catch(() => {});
  }
  let service;
  try {
    service = await startService(config, { log, notes, permissions });
  } catch (err) {
    stderr(err instanceof Error ? err.message : String(err));
    return 1;
  }
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
  const [command, ...rest] = args;
  const invokedAs = Deno.execPath().endsWith("-healthcheck") ? "healthcheck" : undefined;
  switch (invokedAs ?? command) {
    case "healthcheck":
      return await runHealthcheck(envLookup);
    case "--version":
    case "version":
      console.log(`lk-jwt-service ${VERSION}`);
      return 0;
    case "serve":
      return await serve(rest);
    default:
      return await serve(args);
  }
}

if (import.meta.main) {
  Deno.exitCode = await main(Deno.args);
}
