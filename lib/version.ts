/**
 * Build identity of the service, used in `User-Agent` headers and `--version`.
 *
 * @module
 */
import denoJson from "../deno.json" with { type: "json" };

/** Semantic version from `deno.json`. */
export const VERSION: string = denoJson.version;

/** `User-Agent` of every outbound request (openid-and-discovery.md §4, delegation.md §4). */
export const USER_AGENT = `lk-jwt-service/${VERSION}`;
