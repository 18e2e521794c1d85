/**
 * `GET /readyz`: readiness, as opposed to `/healthz` liveness (http-api.md §12). Ready means the
 * LiveKit API answered recently with our credentials, Redis (if configured) answers, job
 * restore is done and, with several replicas, this replica holds its lease (replicas.md R9);
 * otherwise `503` with a JSON body naming what is not ready.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { LiveKitIdentity, LiveKitRoomAlias } from "../ids.ts";
import { Errors } from "./errors.ts";

/**
 * An SFU answer younger than this counts as "recently"; older, `/readyz` asks the SFU itself, so a
 * vanished SFU turns readiness off within one probe period (Kubernetes probes every 10 s).
 */
export const LIVEKIT_FRESH_MS = 5_000;

/** What readiness looks at. */
export interface ReadinessSources {
  clock: Clock;
  livekit: {
    lastAccepted(): number | undefined;
    getParticipant(room: LiveKitRoomAlias, identity: LiveKitIdentity): Promise<unknown>;
  };
  delegation: () => {
    redis: "disabled" | "connected" | "unavailable";
    restoreDone: boolean;
    replica?: { lease: boolean };
  };
}

/** Builds the `/readyz` handler. */
export function createReadiness(sources: ReadinessSources): (req: Request) => Promise<Response> {
  const { clock, livekit } = sources;
  let probing: Promise<unknown> | undefined;

  async function livekitState(): Promise<string> {
    const fresh = () => {
      const at = livekit.lastAccepted();
      return at !== undefined && clock.monotonic() - at < LIVEKIT_FRESH_MS;
    };
    if (fresh()) return "ok";
    // Nothing recent: ask the SFU about a participant that does not exist. A `not_found` answer
    // proves the URL routes to LiveKit and the key/secret are accepted.
    probing ??= livekit.getParticipant(
      "lk-jwt-service-readiness" as LiveKitRoomAlias,
      "readiness" as LiveKitIdentity,
    ).finally(() => (probing = undefined));
    await probing;
    return fresh() ? "ok" : "no recent answer from the LiveKit API with our credentials";
  }

  return async (req) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      return Errors.methodNotAllowed("GET, HEAD").toResponse();
    }
    const d = sources.delegation();
    const checks: Record<string, string> = {
      livekit: await livekitState(),
      redis: d.redis === "unavailable"
        ? "not answering"
        : d.redis === "disabled"
        ? "disabled"
        : "ok",
      restore: d.restoreDone ? "ok" : "job restore not finished",
    };
    if (d.replica) checks.replica = d.replica.lease ? "ok" : "no replica lease";
    const notReady = Object.entries(checks)
      .filter(([, v]) => v !== "ok" && v !== "disabled")
      .map(([k]) => k);
    const body = JSON.stringify({ ready: notReady.length === 0, not_ready: notReady, checks }) +
      "\n";
    return new Response(req.method === "HEAD" ? null : body, {
      status: notReady.length === 0 ? 200 : 503,
      headers: { "Content-Type": "application/json" },
    });
  };
}
