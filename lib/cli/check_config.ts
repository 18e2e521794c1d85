/**
 * `lk-jwt-service check-config [--offline] [--<setting>=<value> ...]` (configuration.md §1,
 * "Extra commands"): validates the configuration exactly as the service does at startup (same
 * error texts, one per line on stderr, exit 1), reads the key files, then, unless `--offline`
 * is given, checks what the service will need at run time:
 *
 * - the LiveKit API at `LIVEKIT_URL` accepts the key and secret (`check_livekit.ts`);
 * - each homeserver listed explicitly in `LIVEKIT_FULL_ACCESS_HOMESERVERS` answers the OpenID
 *   userinfo request over federation and advertises MSC4140 on its client-server API
 *   (`check_homeserver.ts`);
 * - Redis answers `PING` and the listen address is free (`check_local.ts`).
 *
 * Output (stdout): `WARN` lines for the configuration warnings and banners, then one line per
 * check, `PASS <what>` or `FAIL <what>: <cause> — fix: <fix>`, printed in a fixed order while the
 * checks run concurrently, each under a 10 s deadline; a summary line last. Exit status 0 only
 * if every check passed, 1 otherwise, 2 for an unknown argument. No secret is ever printed.
 *
 * @module
 */
import { type Clock, systemClock } from "../clock.ts";
import { type Config, ConfigError, type ConfigNote, loadConfig } from "../config/config.ts";
import { parseCommandLine, withSettings } from "./args.ts";
import { silentLogger } from "../log.ts";
import { createCsApiResolver } from "../matrix/cs_api.ts";
import { createFederationDiscovery } from "../matrix/federation.ts";
import { createSystemResolver, type Resolver } from "../net/dns.ts";
import { createOutbound, type Outbound } from "../net/outbound.ts";
import { createOutboundPolicy } from "../net/ssrf.ts";
import { startupBanners } from "../service.ts";
import { discoveryFailureLog, homeserverChecks } from "./check_homeserver.ts";
import { liveKitCheck } from "./check_livekit.ts";
import { bindCheck, redisCheck } from "./check_local.ts";
import { appServiceChecks, appServiceNotices, appServiceTokenCheck } from "./check_appservice.ts";
import { loadYamlParser } from "../config/app_service.ts";
import {
  type Check,
  CHECK_TIMEOUT_MS,
  type CheckResult,
  pass,
  renderResult,
  runCheck,
} from "./check_result.ts";

/** Where a line goes: check results to stdout, configuration errors to stderr. */
export type OutputStream = "stdout" | "stderr";

/** Test seams and settings of {@linkcode runCheckConfig}. */
export interface CheckConfigOptions {
  /** Reads key, secret and CA files (default: `Deno.readTextFileSync`). */
  readTextFile?: (path: string) => string;
  /** Receives every output line (default: written to stdout / stderr). */
  write?: (line: string, stream: OutputStream) => void;
  clock?: Clock;
  /** Deadline of each check (default {@linkcode CHECK_TIMEOUT_MS}; at most 10 s). */
  timeoutMs?: number;
  /** Name resolution for the homeserver checks (default: the system resolver). */
  resolver?: Resolver;
  /** HTTP for the LiveKit check (default: `fetch` trusting `SSL_CERT_FILE`). */
  fetch?: typeof fetch;
}

function writeLine(line: string, stream: OutputStream): void {
  const file = stream === "stdout" ? Deno.stdout : Deno.stderr;
  let bytes = new TextEncoder().encode(`${line}\n`);
  while (bytes.length > 0) bytes = bytes.subarray(file.writeSync(bytes));
}

/** Lines printed before the checks: configuration warnings and banners (configuration.md §7). */
function warnings(config: Config, notes: readonly ConfigNote[]): CheckResult[] {
  const out: CheckResult[] = [];
  for (const note of notes) {
    if (note.level === "warn" || note.level === "error") {
      out.push({ status: "warn", what: note.message });
    }
  }
  for (const banner of startupBanners(config)) {
    for (const line of banner) out.push({ status: "warn", what: line });
  }
  return out;
}

function configurationPass(notes: readonly ConfigNote[]): CheckResult {
  const source = notes.find((n) => n.level === "info" && n.message.startsWith("LiveKit key from"));
  return pass(`configuration${source ? `: ${source.message}` : ""}`);
}

interface Network {
  outbound: Outbound;
  checks: Check[];
  notices: CheckResult[];
}

function networkChecks(
  config: Config,
  options: { clock: Clock; resolver?: Resolver; fetch?: typeof fetch },
): Network {
  const { clock } = options;
  const resolver = options.resolver ?? createSystemResolver({ clock, log: silentLogger });
  const outbound = createOutbound({
    policy: createOutboundPolicy(config),
    resolver,
    caCerts: config.extraCaCerts,
    log: silentLogger,
    clock,
  });
  const discovery = createFederationDiscovery({ outbound, resolver, clock, log: silentLogger });
  const failures = discoveryFailureLog();
  const csApi = createCsApiResolver({
    outbound,
    overrides: config.csApiOverrides,
    clock,
    log: failures.log,
  });
  const checks: Check[] = [liveKitCheck({ config, clock, fetch: options.fetch })];
  const notices: CheckResult[] = [];
  if (config.appService) {
    // app-service.md §7: through the own homeserver, with the as_token.
    notices.push(...appServiceNotices(config.appService));
    checks.push(...appServiceChecks(config.appService, { outbound, csApi, clock }));
  }
  const names = [...config.fullAccess.explicit];
  if (names.length === 0 && !config.appService) {
    notices.push({
      status: "warn",
      what: "no homeserver is listed by name in LIVEKIT_FULL_ACCESS_HOMESERVERS: homeserver " +
        "checks skipped",
    });
  }
  const deps = {
    outbound,
    discovery,
    csApi,
    federationOverrides: config.federationOverrides,
    csApiOverrides: config.csApiOverrides,
    discoveryFailure: failures.failure,
  };
  for (const name of names) checks.push(...homeserverChecks(deps, name));
  if (config.redisUrl || config.redisSentinel) {
    checks.push(redisCheck({
      url: config.redisUrl,
      password: config.redisPassword,
      sentinel: config.redisSentinel,
      clock,
      caCerts: config.extraCaCerts,
      skipVerifyTls: config.skipVerifyTls,
    }));
  }
  checks.push(bindCheck("LIVEKIT_JWT_BIND", config.bind));
  if (config.metricsBind) checks.push(bindCheck("LIVEKIT_METRICS_BIND", config.metricsBind));
  return { outbound, checks, notices };
}

/**
 * Runs `check-config`; resolves to the process exit status.
 *
 * @param args the arguments after `check-config` (`--offline`, `--<setting>=<value>` flags).
 * @param env the environment lookup (flags in `args` win over it, as for the service).
 */
export async function runCheckConfig(
  args: readonly string[],
  env: (name: string) => string | undefined,
  options: CheckConfigOptions = {},
): Promise<number> {
  const write = options.write ?? writeLine;
  const clock = options.clock ?? systemClock;
  const timeoutMs = Math.min(options.timeoutMs ?? CHECK_TIMEOUT_MS, CHECK_TIMEOUT_MS);
  const parsed = parseCommandLine(["check-config", ...args]);
  if (!parsed.ok) {
    write(`lk-jwt-service: ${parsed.error}`, "stderr");
    return 2;
  }
  const offline = parsed.line.offline;

  const settings = withSettings(parsed.line, env);
  const parseYaml = await loadYamlParser(settings);
  let loaded;
  try {
    loaded = loadConfig({
      env: settings,
      readTextFile: options.readTextFile ?? ((path) => Deno.readTextFileSync(path)),
      parseYaml,
    });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const problem of err.problems) write(problem, "stderr");
    write(`check-config: ${err.problems.length} configuration problem(s)`, "stdout");
    return 1;
  }
  const { config, notes } = loaded;
  for (const line of warnings(config, notes)) write(renderResult(line), "stdout");
  write(renderResult(configurationPass(notes)), "stdout");
  let offlineFailed = 0;
  if (config.appService) {
    const tokens = appServiceTokenCheck(config.appService);
    if (tokens.status === "fail") offlineFailed++;
    write(renderResult(tokens), "stdout");
  }
  if (offline) {
    write(
      "check-config: configuration valid; LiveKit API, homeservers, Redis and listen " +
        "addresses not checked (--offline)",
      "stdout",
    );
    return offlineFailed === 0 ? 0 : 1;
  }

  const network = networkChecks(config, {
    clock,
    resolver: options.resolver,
    fetch: options.fetch,
  });
  for (const notice of network.notices) write(renderResult(notice), "stdout");
  let passed = config.appService ? 2 - offlineFailed : 1;
  let failed = offlineFailed;
  try {
    const running = network.checks.map((check) => runCheck(check, { clock, timeoutMs }));
    for (const pending of running) {
      const result = await pending;
      if (result.status === "fail") failed++;
      else passed++;
      write(renderResult(result), "stdout");
    }
  } finally {
    await network.outbound.close();
  }
  write(`check-config: ${passed} passed, ${failed} failed`, "stdout");
  return failed === 0 ? 0 : 1;
}
