/**
 * Outbound failures and their classification (openid-and-discovery.md §1 "the log line must say
 * why", §8). Messages say what failed and where, and never carry a query string: the userinfo
 * URL contains the access token.
 *
 * @module
 */
import { DnsError } from "./dns.ts";

/** Why an outbound request failed. */
export type OutboundFailure =
  | "dns"
  | "connect"
  | "tls"
  | "timeout"
  | "blocked"
  | "too_large"
  | "redirect"
  | "aborted"
  | "other";

/** A failed outbound request; the message says what and where, never a query string. */
export class OutboundError extends Error {
  readonly kind: OutboundFailure;
  /** The URL (without query) the failure happened on. */
  readonly url: string | undefined;
  /** The address that was being contacted, when known. */
  readonly address: string | undefined;

  constructor(
    kind: OutboundFailure,
    message: string,
    options?: { url?: string; address?: string },
  ) {
    super(message);
    this.name = "OutboundError";
    this.kind = kind;
    this.url = options?.url;
    this.address = options?.address;
  }
}

/** A URL for messages and logs: no query, no fragment, no credentials. */
export function redactUrl(url: URL | string): string {
  try {
    const u = typeof url === "string" ? new URL(url) : url;
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return "<invalid url>";
  }
}

/** Removes query strings from URLs quoted inside an error text. */
function scrub(text: string): string {
  return text.replace(/(https?:\/\/[^\s?#)]*)[?#][^\s)]*/g, "$1");
}

function causeText(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let i = 0; i < 5 && current !== undefined && current !== null; i++) {
    parts.push(current instanceof Error ? current.message : String(current));
    current = current instanceof Error ? current.cause : undefined;
  }
  return scrub(parts.join(": "));
}

/**
 * Maps a failure of a connection, TLS or DNS onto an {@linkcode OutboundError} kind;
 * the message keeps URLs without their query.
 */
export function classifyFailure(
  err: unknown,
  ctx: {
    timedOut: boolean;
    callerAborted: boolean;
    url: URL;
    /** The address being contacted. */
    address?: string;
  },
): OutboundError {
  const { url } = ctx;
  const where = redactUrl(url);
  if (err instanceof OutboundError) return err;
  if (ctx.timedOut) {
    return new OutboundError("timeout", `request to ${where} timed out`, { url: where });
  }
  if (ctx.callerAborted) {
    return new OutboundError("aborted", `request to ${where} was aborted`, { url: where });
  }
  if (err instanceof DnsError) {
    return new OutboundError("dns", `cannot resolve ${url.hostname}: ${err.message}`, {
      url: where,
    });
  }
  const text = causeText(err);
  const address = ctx.address;
  // Classify on the text without URLs (a host name may contain "tls" or "ssl").
  const probe = text.replace(/https?:\/\/[^\s)]*/g, "<url>");
  let kind: OutboundFailure = "other";
  if (/certificate|\btls\b|handshake|\bssl\b/i.test(probe)) kind = "tls";
  else if (/dns error|failed to lookup|name or service not known/i.test(probe)) kind = "dns";
  else if (/\(Connect\)|connection refused|tunnel|connect error/i.test(probe)) kind = "connect";
  return new OutboundError(kind, `request to ${where} failed: ${text}`, { url: where, address });
}
