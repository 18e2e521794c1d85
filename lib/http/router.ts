/**
 * The request handler: exact-path routing, CORS and methods of the POST endpoints (http-api.md
 * §3), the per-IP limit, shutdown answers, error rendering and the access log (§1–§2).
 *
 * @module
 */
import { describeError } from "../log.ts";
import { explainPermissionError } from "../permission_errors.ts";
import { clientAddress } from "../policy/client_ip.ts";
import { ApiError, Errors } from "./errors.ts";
import type { AppDeps } from "./ports.ts";
import type { RequestContext } from "./context.ts";
import { handleToken } from "./token.ts";
import { handleDelegate } from "./delegate.ts";

/** CORS and content-type headers of the three POST endpoints (http-api.md §3). */
export const CORS_HEADERS: Readonly<Record<string, string>> = {
  "Content-Type": "application/json",
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Methods": "POST",
  "Access-Control-Allow-Headers":
    "Accept, Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token",
};

/** Budget for all outbound work of one request: verification may take 30 s, plus margin. */
export const REQUEST_DEADLINE_MS = 35_000;

type PostRoute = "/sfu/get" | "/get_token" | "/delegate_delayed_leave";
const POST_ROUTES = new Set<string>(["/sfu/get", "/get_token", "/delegate_delayed_leave"]);

/** Metric label values for paths: anything else is counted as `other`. */
const KNOWN_ROUTES = new Set<string>([...POST_ROUTES, "/sfu_webhook", "/healthz", "/readyz"]);

/** Extra routes wired by `main.ts` (readiness, later ones) without touching the router. */
export type ExtraRoutes = Record<string, (req: Request) => Response | Promise<Response>>;

function requestId(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 16);
}

function withHeaders(res: Response, headers: Record<string, string>): Response {
  for (const [k, v] of Object.entries(headers)) res.headers.set(k, v);
  return res;
}

/** Builds the service's `Deno.serve` handler. */
export function createHandler(
  deps: AppDeps,
  extra: ExtraRoutes = {},
): (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => Promise<Response> {
  const { log } = deps;

  async function post(route: PostRoute, req: Request, ctx: RequestContext): Promise<Response> {
    if (req.method === "OPTIONS") return new Response(null, { status: 200, headers: CORS_HEADERS });
    if (req.method !== "POST") throw Errors.methodNotAllowed("POST, OPTIONS");
    const wait = deps.limits.ip.take(ctx.clientIp);
    if (wait > 0) {
      ctx.fields.limit = "ip";
      deps.metrics.rateLimited.inc({ bucket: "ip" });
      throw Errors.rateLimited(wait);
    }
    if (deps.shuttingDown()) throw Errors.shuttingDown();
    if (route === "/delegate_delayed_leave") return await handleDelegate(deps, { req, ctx });
    return await handleToken(deps, {
      req,
      ctx,
      endpoint: route === "/sfu/get" ? "sfu_get" : "get_token",
    });
  }

  async function route(path: string, req: Request, ctx: RequestContext): Promise<Response> {
    // App-service mode (app-service.md §4); outside it these paths are unknown (404).
    const asRoute = deps.appService?.match(path);
    if (asRoute) return await deps.appService!.handle(asRoute, req, ctx);
    if (POST_ROUTES.has(path)) {
      try {
        return withHeaders(await post(path as PostRoute, req, ctx), CORS_HEADERS);
      } catch (err) {
        throw err instanceof ApiError ? err : Errors.internal(err);
      }
    }
    if (path === "/healthz") {
      if (req.method === "GET" || req.method === "HEAD") return new Response(null, { status: 200 });
      throw Errors.methodNotAllowed("GET, HEAD");
    }
    if (path === "/sfu_webhook") return await deps.delegation.handleWebhook(req);
    const extraRoute = extra[path];
    if (extraRoute) return await extraRoute(req);
    throw Errors.unrecognized();
  }

  return async (req, info) => {
    const started = deps.clock.monotonic();
    const url = new URL(req.url);
    const path = url.pathname;
    const peer = info.remoteAddr.hostname;
    // One controller per request, released when the handler returns: AbortSignal.timeout()
    // would keep a 35 s timer (and the request it references) alive after every response.
    const abort = new AbortController();
    const onClientGone = () => abort.abort(req.signal.reason);
    req.signal.addEventListener("abort", onClientGone, { once: true });
    const deadline = deps.clock.setTimer(
      REQUEST_DEADLINE_MS,
      () => abort.abort(new DOMException("request deadline passed", "TimeoutError")),
    );
    const ctx: RequestContext = {
      id: requestId(),
      clientIp: clientAddress(peer, req.headers.get("x-forwarded-for"), deps.config.trustedProxies),
      signal: abort.signal,
      fields: {},
    };
    let res: Response;
    let failure: ApiError | undefined;
    try {
      res = await route(path, req, ctx);
    } catch (err) {
      failure = err instanceof ApiError ? err : Errors.internal(err);
      res = failure.toResponse(POST_ROUTES.has(path) ? CORS_HEADERS : {});
    } finally {
      deadline.cancel();
      req.signal.removeEventListener("abort", onClientGone);
    }
    res = withHeaders(res, { "X-Request-Id": ctx.id });
    const seconds = (deps.clock.monotonic() - started) / 1000;
    const asLabel = deps.appService?.match(path)?.label;
    const routeLabel = KNOWN_ROUTES.has(path) ? path : asLabel ?? "other";
    deps.metrics.requests.inc({ route: routeLabel, status: String(res.status) });
    deps.metrics.requestDuration.observe({ route: routeLabel }, seconds);
    const fields = {
      request_id: ctx.id,
      method: req.method,
      path,
      status: res.status,
      duration_ms: Math.round(seconds * 10_000) / 10,
      remote: ctx.clientIp,
      origin: req.headers.get("origin") ?? undefined,
      ...ctx.fields,
      errcode: failure?.errcode,
    };
    if (path === "/healthz") log.debug("request", fields);
    else log.info("request", fields);
    if (failure && failure.status >= 500 && failure.status !== 503) {
      log.error("request failed", {
        request_id: ctx.id,
        path,
        error: failure.message,
        cause: failure.cause === undefined
          ? undefined
          : explainPermissionError(failure.cause) ?? describeError(failure.cause),
        server_name: ctx.fields.server_name,
        room: ctx.fields.room,
      });
    } else if (
      failure?.cause !== undefined &&
      (failure.status === 400 || (asLabel !== undefined && failure.status < 500))
    ) {
      log[failure.errcode === "M_NOT_JSON" ? "debug" : "warn"]("request refused", {
        request_id: ctx.id,
        path,
        error: failure.message,
        cause: describeError(failure.cause),
        server_name: ctx.fields.server_name,
      });
    }
    return res;
  };
}
