/**
 * Per-request facts gathered while handling, for the access log line (http-api.md §1) and the
 * failure line that says the real cause.
 *
 * @module
 */
import type { LogFields } from "../log.ts";

/** Mutable request facts; handlers fill them in as they learn them. */
export interface RequestContext {
  readonly id: string;
  readonly clientIp: string;
  /** Deadline for all outbound work of this request; aborted when the client goes away. */
  readonly signal: AbortSignal;
  fields: LogFields;
  /** Internal cause of a failure, logged and never sent. */
  cause?: unknown;
}
