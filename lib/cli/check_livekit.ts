/**
 * `check-config`: is the LiveKit RoomService API reachable at `LIVEKIT_URL` and does it accept
 * the configured key and secret? (configuration.md §1; the API itself is tokens-and-rooms.md §6.)
 *
 * The probe is a harmless `GetParticipant` for a random room that cannot exist, with a
 * `roomAdmin` token for that room: LiveKit answers `404 not_found` only after it accepted the
 * token, `401 unauthenticated` when key or secret differ from its `keys:`. Any other answer
 * (plain 404, 502, a redirect, no connection) means the URL or the proxy routing of
 * `<prefix>/twirp/` is wrong. Nothing is created or changed on the SFU.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { Config } from "../config/config.ts";
import { mintAdminToken } from "../livekit/jwt.ts";
import { encodeRoomParticipantIdentity } from "../livekit/protobuf.ts";
import { parseTwirpError, twirpExchange } from "../livekit/room_service.ts";
import { type Check, type CheckResult, errorMessage, fail, pass } from "./check_result.ts";
import { explainPermissionError } from "./permissions_report.ts";

const KEYS_FIX = "LIVEKIT_KEY/LIVEKIT_SECRET must match a `keys:` entry of livekit.yaml " +
  "(key on the left, secret on the right; files: LIVEKIT_KEY_FILE, LIVEKIT_KEY_FROM_FILE, " +
  "LIVEKIT_SECRET_FROM_FILE)";

/** Options of {@linkcode liveKitCheck}. */
export interface LiveKitCheckOptions {
  config: Pick<Config, "livekitApiBase" | "livekitKey" | "livekitSecret" | "extraCaCerts">;
  clock: Clock;
  /** Test seam; defaults to `fetch` with a client trusting `SSL_CERT_FILE`. */
  fetch?: typeof fetch;
}

function routingFix(base: string): string {
  const url = new URL(base);
  const prefix = url.pathname.replace(/\/+$/, "");
  return `route ${prefix}/twirp/ on ${url.host} to LiveKit's HTTP port (7880 by default) in the ` +
    "reverse proxy, or correct the host, port and path of LIVEKIT_URL";
}

function transportFix(base: string, cause: string): string {
  if (/certificate|\btls\b|handshake|\bssl\b/i.test(cause)) {
    return `the TLS certificate of ${new URL(base).host} is not trusted: add its CA with ` +
      "SSL_CERT_FILE=<ca.pem>, or give the SFU's proxy a certificate valid for that name";
  }
  if (/dns error|failed to lookup|name or service not known|not known/i.test(cause)) {
    return `${new URL(base).hostname} does not resolve from this host: fix DNS or the host ` +
      "name in LIVEKIT_URL";
  }
  return `check that LiveKit (or its reverse proxy) listens at ${new URL(base).host} and is ` +
    "reachable from this host (firewall, port), and that LIVEKIT_URL names it (ws:// → http://, " +
    "wss:// → https://, same host, port and path)";
}

function randomRoom(clock: Clock): string {
  let suffix = "";
  for (let i = 0; i < 4; i++) {
    suffix += Math.floor(clock.random() * 0x10000).toString(16).padStart(4, "0");
  }
  return `lk-jwt-service-check-config-${suffix}`;
}

/** Interprets the SFU's answer to the probe. */
function judge(
  what: string,
  options: { base: string; key: string; status: number; body: Uint8Array; location: string | null },
): CheckResult {
  const { base, key, status } = options;
  const { code, msg } = parseTwirpError(options.body);
  const described = `${status}${code ? ` ${code}` : ""}${msg ? ` (${msg})` : ""}`;
  if ((status === 404 && code === "not_found") || (status >= 200 && status <= 299)) {
    return pass(`${what}: key ${JSON.stringify(key)} accepted`);
  }
  if (status === 401) {
    return fail(what, `LiveKit API answered ${described}`, KEYS_FIX);
  }
  if (status === 403) {
    return fail(
      what,
      `LiveKit API answered ${described}`,
      "the key was accepted but refused a roomAdmin grant: use a key of livekit.yaml `keys:` " +
        "without restrictions",
    );
  }
  if (status >= 300 && status <= 399) {
    return fail(
      what,
      `answered ${status} redirecting to ${options.location ?? "(no Location)"}`,
      "set LIVEKIT_URL to the final address (wss:// when the proxy redirects to https://); API " +
        "calls do not follow redirects",
    );
  }
  const kind = status === 404
    ? "no LiveKit Twirp route there"
    : status >= 502 && status <= 504
    ? "the reverse proxy could not reach LiveKit"
    : "unexpected answer";
  return fail(what, `answered ${described}: ${kind}`, routingFix(base));
}

/** The LiveKit API check (configuration.md §1: "LiveKit URL reachable, key/secret accepted"). */
export function liveKitCheck(options: LiveKitCheckOptions): Check {
  const { config, clock } = options;
  const base = config.livekitApiBase;
  const what = `LiveKit API ${base}/twirp`;
  return {
    what,
    timeoutFix: transportFix(base, ""),
    async run(signal): Promise<CheckResult> {
      const client = options.fetch ? undefined : Deno.createHttpClient({
        caCerts: config.extraCaCerts.length > 0 ? [...config.extraCaCerts] : undefined,
      });
      const doFetch: typeof fetch = options.fetch ??
        ((input, init) => fetch(input, { ...init, client }));
      const room = randomRoom(clock);
      const token = mintAdminToken({
        key: config.livekitKey,
        secret: config.livekitSecret,
        grant: { roomAdmin: true, room },
        nowSeconds: Math.floor(clock.now() / 1000),
      });
      try {
        // The service's own Twirp call path (lib/livekit/room_service.ts), response cap included.
        const res = await twirpExchange(doFetch, {
          apiBase: base,
          method: "GetParticipant",
          token,
          body: encodeRoomParticipantIdentity({ room, identity: "check-config" }),
          signal,
        });
        return judge(what, {
          base,
          key: config.livekitKey,
          status: res.status,
          body: res.body,
          location: res.location,
        });
      } catch (err) {
        const cause = errorMessage(err);
        const permission = explainPermissionError(err);
        if (permission) return fail(what, "refused by the process permissions", permission);
        return fail(what, `cannot reach the API: ${cause}`, transportFix(base, cause));
      } finally {
        client?.close();
      }
    },
  };
}
