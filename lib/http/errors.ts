/**
 * The one error type that reaches clients. Handlers throw {@linkcode ApiError}; the router
 * renders it as `{"errcode","error"}` + newline (http-api.md §2) and logs its internal `cause`,
 * which is never sent.
 *
 * @module
 */

/** Matrix error codes this service answers with (http-api.md §13). */
export type ErrCode =
  | "M_NOT_JSON"
  | "M_BAD_JSON"
  | "M_UNAUTHORIZED"
  | "M_FORBIDDEN"
  | "M_UNRECOGNIZED"
  | "M_TOO_LARGE"
  | "M_LIMIT_EXCEEDED"
  | "M_UNKNOWN"
  // App-service endpoints (app-service.md §3, §5).
  | "M_MISSING_TOKEN"
  | "M_UNKNOWN_TOKEN"
  | "M_INVALID_PARAM";

/** A client-visible Matrix error with an optional internal cause for the log. */
export class ApiError extends Error {
  readonly status: number;
  readonly errcode: ErrCode;
  /** For 429: milliseconds until the client may retry. */
  readonly retryAfterMs: number | undefined;
  /** For 405: the methods the path serves (`Allow` header). */
  readonly allow: string | undefined;

  constructor(
    status: number,
    errcode: ErrCode,
    message: string,
    options?: { cause?: unknown; retryAfterMs?: number; allow?: string },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ApiError";
    this.status = status;
    this.errcode = errcode;
    this.retryAfterMs = options?.retryAfterMs;
    this.allow = options?.allow;
  }

  /** The exact JSON body, newline-terminated. */
  body(): string {
    const obj: Record<string, string | number> = { errcode: this.errcode, error: this.message };
    if (this.retryAfterMs !== undefined) obj.retry_after_ms = this.retryAfterMs;
    return JSON.stringify(obj) + "\n";
  }

  /** Renders the error as a response with the given extra headers. */
  toResponse(headers: HeadersInit = {}): Response {
    const h = new Headers(headers);
    h.set("Content-Type", "application/json");
    if (this.retryAfterMs !== undefined) {
      h.set("Retry-After", String(Math.max(1, Math.ceil(this.retryAfterMs / 1000))));
    }
    if (this.allow !== undefined) h.set("Allow", this.allow);
    return new Response(this.body(), { status: this.status, headers: h });
  }
}

/** Exact messages of http-api.md §13, in one place. */
export const Messages = {
  notJson: "Error reading request",
  missingRoom: "Missing room parameter",
  missingOpenIdLegacy: "Missing OpenID token parameters",
  missingRoomOrSlot: "The request body is missing `room_id` or `slot_id`",
  missingMemberToken:
    "The request body `member` is missing a `id`, `claimed_user_id` or `claimed_device_id`",
  missingOpenIdToken:
    "The request body `openid_token` is missing a `access_token` or `matrix_server_name`",
  missingMemberDelegate:
    "The request body `member` is missing `id`, `claimed_user_id` or `claimed_device_id`",
  missingOpenIdDelegate:
    "The request body `openid_token` is missing `access_token` or `matrix_server_name`",
  missingDelay: "The request body is missing `delay_id` or `delay_timeout`",
  invalidDelayId: "The request body contains an invalid `delay_id`",
  delegationRestricted: "Delegation of delayed events is only supported for full access users",
  csApiUnresolved: "Unable to resolve client-server API",
  tooManyJobsUser: "Too many delegated delayed events for this user",
  tooManyJobs: "Too many delegated delayed events",
  unauthorized: "The request could not be authorised.",
  unrecognized: "Unrecognized request",
  tooLarge: "Request body too large",
  rateLimited: "Too many requests",
  internal: "Internal Server Error",
  createRoomFailed: "Unable to create room on SFU",
  shuttingDown: "Service is shutting down",
} as const;

/** Constructors for each catalogue entry. */
export const Errors = {
  notJson: (cause?: unknown) => new ApiError(400, "M_NOT_JSON", Messages.notJson, { cause }),
  badJson: (message: string, cause?: unknown) =>
    new ApiError(400, "M_BAD_JSON", message, { cause }),
  unauthorized: (cause?: unknown) =>
    new ApiError(401, "M_UNAUTHORIZED", Messages.unauthorized, { cause }),
  forbidden: (message: string) => new ApiError(403, "M_FORBIDDEN", message),
  unrecognized: () => new ApiError(404, "M_UNRECOGNIZED", Messages.unrecognized),
  /**
   * A known path asked with a method it does not serve: `405` with `Allow` and the Matrix body
   * the client-server API prescribes for it (`M_UNRECOGNIZED`, as for unknown paths).
   */
  methodNotAllowed: (allow: string) =>
    new ApiError(405, "M_UNRECOGNIZED", Messages.unrecognized, { allow }),
  tooLarge: () => new ApiError(413, "M_TOO_LARGE", Messages.tooLarge),
  rateLimited: (retryAfterMs: number) =>
    new ApiError(429, "M_LIMIT_EXCEEDED", Messages.rateLimited, { retryAfterMs }),
  internal: (cause?: unknown) => new ApiError(500, "M_UNKNOWN", Messages.internal, { cause }),
  createRoomFailed: (cause?: unknown) =>
    new ApiError(500, "M_UNKNOWN", Messages.createRoomFailed, { cause }),
  shuttingDown: () => new ApiError(503, "M_UNKNOWN", Messages.shuttingDown),
};
