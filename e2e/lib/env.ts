/**
 * Fixed addresses, credentials and paths of the end-to-end stack (real-stack.md §1, §5.2, §7).
 * The stack always runs inside its own network namespace, so the ports are constants; the
 * run folder and binaries come from the environment set by `e2e/inside.sh`.
 *
 * @module
 */

/** Synapse server name: what `openid_token.matrix_server_name` carries (port included). */
export const SERVER_NAME = "localhost:8448";
/** Synapse client-server API over plain HTTP, used by the harness. */
export const SYNAPSE_URL = "http://127.0.0.1:8008";
/** Shared secret for admin registration (homeserver.yaml). */
export const SYNAPSE_REGISTRATION_SECRET = "e2e-only-shared-secret";

/**
 * Homeserver B of the app-service scenarios (homeserver-b.yaml.in): federates with A over TLS
 * (test CA), has its own SFU (7980) and its own service instance (8081).
 */
export const SERVER_NAME_B = "localhost:8449";
/** Homeserver B's client-server API over plain HTTP, used by the harness. */
export const SYNAPSE_B_URL = "http://127.0.0.1:8009";
/** The SFU of homeserver B. */
export const LIVEKIT_B_WS_URL = "ws://127.0.0.1:7980";
/** LiveKit HTTP base of homeserver B's SFU. */
export const LIVEKIT_B_HTTP_URL = "http://127.0.0.1:7980";
/** Key and secret of livekit-b.yaml. Test-only values. */
export const LIVEKIT_B_KEY = "e2e-key-b";
export const LIVEKIT_B_SECRET = "e2e-secret-b-0123456789abcdef012345";
/** The service instance of homeserver B (its SFU's webhook target and Synapse B's proxy_url). */
export const SERVICE_B_BIND = "127.0.0.1:8081";

/** LiveKit signalling URL handed to clients (the service's `LIVEKIT_URL`). */
export const LIVEKIT_WS_URL = "ws://127.0.0.1:7880";
/** LiveKit HTTP base for Twirp calls. */
export const LIVEKIT_HTTP_URL = "http://127.0.0.1:7880";
/** API key of livekit.yaml; also the webhook `api_key`. */
export const LIVEKIT_KEY = "e2e-key";
/** API secret of livekit.yaml. Test-only value. */
export const LIVEKIT_SECRET = "e2e-secret-0123456789abcdef0123456789";

/** Our service: fixed, because it is the SFU's webhook target. */
export const SERVICE_BIND = "127.0.0.1:8080";
/** Base URL of our service. */
export const SERVICE_URL = `http://${SERVICE_BIND}`;
/** nginx in front of the service, serving it under `/livekit/jwt`. */
export const PROXY_URL = "http://127.0.0.1:8088/livekit/jwt";
/** The SFU's signalling URL through nginx (`/livekit/sfu`). */
export const PROXY_SFU_URL = "ws://127.0.0.1:8088/livekit/sfu";
/** Caddy in front of the service, serving it under `/livekit/jwt`. */
export const CADDY_URL = "http://127.0.0.1:8087/livekit/jwt";
/** The SFU's signalling URL through Caddy (`/livekit/sfu`). */
export const CADDY_SFU_URL = "ws://127.0.0.1:8087/livekit/sfu";
/** Redis of the stack. */
export const REDIS_URL = "redis://127.0.0.1:6379/0";
/** Redis hash holding delegation jobs (delegation.md §10.1). */
export const REDIS_JOBS_KEY = "lk-jwt:jobs";

function required(name: string): string {
  const value = Deno.env.get(name);
  if (value === undefined || value === "") {
    throw new Error(`${name} is not set: run the e2e suite through e2e/run.sh`);
  }
  return value;
}

/** Paths of the running stack, read from the environment exported by `e2e/inside.sh`. */
export interface StackPaths {
  /** Repository root. */
  root: string;
  /** Run folder: logs, certificates, configs of this run. */
  run: string;
  /** Test CA that signed Synapse's TLS certificate. */
  caFile: string;
  /** Participant helper binary. */
  participantBin: string;
  /** Deno binary (the service launcher finds its own; this is for reference). */
  deno: string;
}

/** Reads {@linkcode StackPaths}; throws with a hint when not started through `e2e/run.sh`. */
export function stackPaths(): StackPaths {
  return {
    root: required("ROOT"),
    run: required("RUN"),
    caFile: required("E2E_CA_FILE"),
    participantBin: required("E2E_PARTICIPANT_BIN"),
    deno: required("E2E_DENO"),
  };
}

/** A short random suffix so every scenario uses fresh users and rooms. */
export function uniqueSuffix(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
