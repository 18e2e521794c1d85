/**
 * The app-service paths (app-service.md §3, §4, §5.4) in front of their handlers: the method
 * gate, then the hs_token check before any body is read, then shutdown, then the endpoint.
 *
 * No CORS headers here: browsers reach these endpoints only through Synapse, which answers
 * preflights itself and adds its own CORS headers (ours would replace them). No per-IP limit
 * either: every request comes from the homeserver, which rate-limits users and origins itself.
 *
 * Also the two endpoints Synapse itself calls: `POST /_matrix/app/v1/ping` answers `{}`, and
 * `PUT /_matrix/app/v1/transactions/{txnId}` hands the events to membership enforcement and
 * answers `{}`; a repeated transaction ID is answered without processing it again.
 *
 * @module
 */
import type { RequestContext } from "../http/context.ts";
import { Errors } from "../http/errors.ts";
import { readBodyLimited } from "../http/body.ts";
import { jsonResponse } from "../http/token.ts";
import { LruCache } from "../matrix/cache.ts";
import { describeError } from "../log.ts";
import type { AppServiceDeps } from "./deps.ts";
import { handleClientDelegate } from "./delegate.ts";
import { handleClientGetToken, handleFederationGetToken } from "./get_token.ts";
import { type AppServiceRoute, checkHsToken, matchAppServicePath } from "./inbound.ts";
import type { TransactionEvent } from "./ports.ts";

/**
 * Largest transaction body: Synapse sends up to 100 events (64 KiB each at most) plus
 * ephemeral and to-device events; a refused transaction would be retried forever.
 */
export const MAX_TRANSACTION_BODY = 16 * 1024 * 1024;
/** Transaction IDs remembered for de-duplication. */
const REMEMBERED_TRANSACTIONS = 1_000;
/**
 * Budget of all outbound work of one forwarded request: Synapse gives the service 30 s and then
 * answers the client itself, so ours must end first (two `is_joined` and two relays could
 * otherwise add up to 40 s).
 */
export const APP_SERVICE_DEADLINE_MS = 25_000;

/** The app-service paths as the router sees them. */
export interface AppServiceRoutes {
  match(path: string): AppServiceRoute | undefined;
  handle(route: AppServiceRoute, req: Request, ctx: RequestContext): Promise<Response>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The events of a transaction body that have the fields membership enforcement reads. */
export function transactionEvents(doc: unknown): TransactionEvent[] {
  if (!isRecord(doc) || !Array.isArray(doc.events)) return [];
  const out: TransactionEvent[] = [];
  for (const raw of doc.events) {
    if (!isRecord(raw)) continue;
    const { type, room_id: roomId, sender } = raw;
    if (typeof type !== "string" || typeof roomId !== "string" || typeof sender !== "string") {
      continue;
    }
    const content = isRecord(raw.content) ? raw.content : {};
    out.push({
      type,
      roomId,
      sender,
      stateKey: typeof raw.state_key === "string" ? raw.state_key : undefined,
      membership: typeof content.membership === "string" ? content.membership : undefined,
      raw,
    });
  }
  return out;
}

/** Builds the app-service routes. */
export function createAppServiceRoutes(deps: AppServiceDeps): AppServiceRoutes {
  const seen = new LruCache<string, true>(REMEMBERED_TRANSACTIONS);

  async function transaction(
    route: AppServiceRoute,
    req: Request,
    ctx: RequestContext,
  ): Promise<Response> {
    const txnId = route.txnId ?? "";
    ctx.fields.txn_id = txnId;
    const bytes = await readBodyLimited(req, { maxBytes: MAX_TRANSACTION_BODY });
    if (seen.get(txnId)) {
      deps.metrics.transactions.inc({ result: "duplicate" });
      return jsonResponse({});
    }
    let doc: unknown;
    try {
      doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    } catch (err) {
      throw Errors.notJson(err);
    }
    const events = transactionEvents(doc);
    ctx.fields.events = events.length;
    try {
      await deps.membership.handleEvents(events);
    } catch (err) {
      // Not remembered: the homeserver retries the transaction.
      deps.log.error("Processing a homeserver transaction failed", {
        request_id: ctx.id,
        err: describeError(err),
      });
      throw Errors.internal(err);
    }
    seen.set(txnId, true);
    deps.metrics.transactions.inc({ result: "processed" });
    deps.metrics.transactions.inc({ result: "events" }, events.length);
    return jsonResponse({});
  }

  return {
    match: matchAppServicePath,
    async handle(route, req, ctx) {
      if (req.method === "OPTIONS") {
        return new Response(null, { status: 200, headers: { "Content-Type": "application/json" } });
      }
      if (req.method !== route.method) {
        return new Response(null, {
          status: 405,
          headers: { "Content-Type": "application/json", Allow: `${route.method}, OPTIONS` },
        });
      }
      checkHsToken(req.headers.get("authorization"), deps.appService.hsToken);
      if (deps.shuttingDown()) throw Errors.shuttingDown();
      ctx.fields.endpoint = route.endpoint;
      const abort = new AbortController();
      const onAbort = () => abort.abort(ctx.signal.reason);
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      const timer = deps.clock.setTimer(
        APP_SERVICE_DEADLINE_MS,
        () => abort.abort(new DOMException("app-service deadline passed", "TimeoutError")),
      );
      try {
        return await endpoint(route, req, { ...ctx, signal: abort.signal });
      } finally {
        timer.cancel();
        ctx.signal.removeEventListener("abort", onAbort);
      }
    },
  };

  async function endpoint(
    route: AppServiceRoute,
    req: Request,
    ctx: RequestContext,
  ): Promise<Response> {
    switch (route.endpoint) {
      case "cs_get_token":
        return await handleClientGetToken(deps, req, ctx);
      case "ss_get_token":
        return await handleFederationGetToken(deps, req, ctx);
      case "cs_delegate":
        return await handleClientDelegate(deps, req, ctx);
      case "ping":
        await readBodyLimited(req, { maxBytes: 64 * 1024 });
        return jsonResponse({});
      case "transactions":
        return await transaction(route, req, ctx);
    }
  }
}
