/**
 * `check-config` in app-service mode (app-service.md §7): the tokens, then through the own
 * homeserver with the as_token — that Synapse accepts it (`whoami`), that `is_joined` answers
 * (the scope is granted), that `fed_proxy` exists for this registration, and, when the
 * registration has a `url`, a ping round trip (Synapse calls this service's
 * `/_matrix/app/v1/ping` with the hs_token, so the running service must be up).
 *
 * @module
 */
import type { AppServiceConfig } from "../config/config.ts";
import {
  createHomeserverClient,
  type HomeserverClient,
  HomeserverError,
} from "../appservice/homeserver.ts";
import type { Clock } from "../clock.ts";
import { silentLogger } from "../log.ts";
import type { CsApiResolver } from "../matrix/cs_api.ts";
import type { Outbound } from "../net/outbound.ts";
import { type Check, type CheckResult, errorMessage, fail, pass } from "./check_result.ts";
import { IS_JOINED_SCOPE } from "../config/app_service.ts";

/** A made-up room and user: the homeserver must answer `{"joined": false}`. */
const PROBE_LOCALPART = "lk-jwt-service-check-config";

function hintOf(err: unknown, fallback: string): string {
  return err instanceof HomeserverError && err.hint ? err.hint : fallback;
}

/** The token line (no network). */
export function appServiceTokenCheck(config: AppServiceConfig): CheckResult {
  const what = `app-service tokens (from ${config.source}, homeserver ${config.serverName})`;
  if (config.asToken.reveal() === config.hsToken.reveal()) {
    return fail(
      what,
      "the as_token and the hs_token are equal",
      "generate two different random tokens (e.g. `openssl rand -hex 32`) in the registration " +
        "file and restart Synapse and this service",
    );
  }
  return pass(what);
}

/** Notices printed before the checks (what is skipped and why). */
export function appServiceNotices(config: AppServiceConfig): CheckResult[] {
  const out: CheckResult[] = [];
  if (config.id === undefined) {
    out.push({
      status: "warn",
      what: "LIVEKIT_AS_ID is not set (and no registration file): ping check skipped",
    });
  } else if (config.registration && !config.registration.url) {
    out.push({
      status: "warn",
      what: "the registration file has no url: ping check skipped (Synapse pings only " +
        "application services with a url)",
    });
  }
  return out;
}

/** The network checks through the homeserver. */
export function appServiceChecks(
  config: AppServiceConfig,
  deps: { outbound: Outbound; csApi: CsApiResolver; clock: Clock },
): Check[] {
  const hs: HomeserverClient = createHomeserverClient({
    outbound: deps.outbound,
    csApi: deps.csApi,
    appService: config,
    clock: deps.clock,
    log: silentLogger,
  });
  const server = config.serverName;
  const checks: Check[] = [
    {
      what: `homeserver ${server} accepts the as_token`,
      timeoutFix: `make the client-server API of ${server} reachable from this host, or set ` +
        `LIVEKIT_CS_API_URL_OVERRIDES=${server}=<Synapse client API URL>`,
      async run(signal) {
        const what = `homeserver ${server} accepts the as_token`;
        try {
          const user = await hs.whoami(signal);
          return pass(`${what} (as ${user})`);
        } catch (err) {
          return fail(
            what,
            errorMessage(err),
            hintOf(err, `check that ${server}'s client-server API is reachable`),
          );
        }
      },
    },
    {
      what: "is_joined (MSC4502) answered",
      timeoutFix: `make the client-server API of ${server} reachable from this host`,
      async run(signal) {
        const what = "is_joined (MSC4502) answered";
        try {
          await hs.isJoined(`!${PROBE_LOCALPART}:${server}`, {
            mxid: `@${PROBE_LOCALPART}:${server}`,
          }, signal);
          return pass(`${what}: scope ${IS_JOINED_SCOPE} granted`);
        } catch (err) {
          return fail(
            what,
            errorMessage(err),
            hintOf(
              err,
              `add io.element.msc4502.scopes: ["${IS_JOINED_SCOPE}"] to the registration file ` +
                "and set experimental_features.msc4502_enabled: true",
            ),
          );
        }
      },
    },
    {
      what: "fed_proxy (MSC4512) reachable",
      timeoutFix: `make the client-server API of ${server} reachable from this host`,
      async run(signal) {
        const what = "fed_proxy (MSC4512) reachable";
        try {
          // Addressed to the homeserver itself: Synapse refuses it without sending anything.
          await hs.fedProxy({
            destination: server,
            path: "/_matrix/federation/v1/rtc/livekit/get_token",
            body: {},
          }, signal);
          return pass(what);
        } catch (err) {
          if (
            err instanceof HomeserverError &&
            err.details.errcode?.endsWith("M_FEDPROXY_DESTINATION_DENIED")
          ) {
            return pass(what);
          }
          return fail(
            what,
            errorMessage(err),
            hintOf(err, "set experimental_features.msc4512_enabled: true in homeserver.yaml"),
          );
        }
      },
    },
  ];
  const id = config.id;
  if (id !== undefined && (!config.registration || config.registration.url)) {
    checks.push({
      what: `ping through ${server}`,
      timeoutFix: "start the service at the registration's url (Synapse waits for it)",
      async run(signal) {
        const what = `ping through ${server}`;
        try {
          const ms = await hs.ping(id, `lk-jwt-service-check-config-${Date.now()}`, signal);
          return pass(`${what}: ${Number.isNaN(ms) ? "?" : ms} ms`);
        } catch (err) {
          const status = err instanceof HomeserverError ? err.details.status : undefined;
          return fail(
            what,
            errorMessage(err),
            status === 403
              ? "the registration id must match LIVEKIT_AS_ID / the registration file's id"
              : "start this service at the registration's url (reachable from Synapse) with " +
                "the same hs_token as the registration file",
          );
        }
      },
    });
  }
  return checks;
}
