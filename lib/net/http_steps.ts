/**
 * Redirect and body-reading steps of the outbound client (openid-and-discovery.md §8.4, §8.5):
 * which `Location` may be followed, and reading a response body under a byte cap.
 *
 * @module
 */
import { OutboundError, redactUrl } from "./outbound_error.ts";

/** Which redirects a request follows (§8.4). */
export interface RedirectPolicy {
  maxHops: number;
  httpsOnly: boolean;
  /** Only to the same host name (an `http`→`https` upgrade is allowed). */
  sameHostOnly: boolean;
  /** Statuses that are followed, e.g. `[301, 302, 303, 307, 308]` or `[307, 308]`. */
  statuses: readonly number[];
}

/** Follow-everything policy of the `.well-known` fetches (§4, §9). */
export const WELL_KNOWN_REDIRECTS: RedirectPolicy = {
  maxHops: 5,
  httpsOnly: true,
  sameHostOnly: false,
  statuses: [301, 302, 303, 307, 308],
};

/**
 * The next URL of a redirect, or an `OutboundError("redirect")` when the policy forbids it:
 * unsupported scheme, not https, https→http downgrade, another host, a loop, too many hops.
 */
export function nextHop(
  current: URL,
  res: { headers: Headers },
  opts: { policy: RedirectPolicy; visited: Set<string> },
): URL {
  const { policy, visited } = opts;
  const location = res.headers.get("location") ?? "";
  const fail = (why: string) =>
    new OutboundError("redirect", `redirect from ${redactUrl(current)} refused: ${why}`, {
      url: redactUrl(current),
    });
  let next: URL;
  try {
    next = new URL(location, current);
  } catch {
    throw fail("invalid Location");
  }
  next.hash = "";
  if (next.protocol !== "https:" && next.protocol !== "http:") throw fail("unsupported scheme");
  if (policy.httpsOnly && next.protocol !== "https:") throw fail("not https");
  if (current.protocol === "https:" && next.protocol !== "https:") throw fail("https downgrade");
  if (policy.sameHostOnly && next.hostname.toLowerCase() !== current.hostname.toLowerCase()) {
    throw fail("different host");
  }
  if (visited.has(next.href)) throw fail("redirect loop");
  if (visited.size > policy.maxHops) throw fail(`more than ${policy.maxHops} redirects`);
  return next;
}

/** Reads the whole body, failing with `too_large` (body cancelled) beyond `max` bytes. */
export async function readBody(res: Response, max: number, url: URL): Promise<Uint8Array> {
  const declared = Number(res.headers.get("content-length") ?? "NaN");
  const tooLarge = () =>
    new OutboundError("too_large", `response from ${redactUrl(url)} exceeds ${max} bytes`, {
      url: redactUrl(url),
    });
  if (Number.isFinite(declared) && declared > max) {
    await res.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  const body = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    body.set(c, offset);
    offset += c.byteLength;
  }
  return body;
}
