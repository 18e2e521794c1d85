/**
 * The client address used for the per-IP rate limit (http-api.md §10): the peer address, or the
 * right-most `X-Forwarded-For` entry that is not itself a trusted proxy when the peer is one of
 * `LIVEKIT_TRUSTED_PROXIES`.
 *
 * @module
 */
import { type Cidr, cidrContains, parseIp } from "../net/ip.ts";

function trusted(proxies: readonly Cidr[], address: string): boolean {
  const ip = parseIp(address);
  return ip !== undefined && proxies.some((c) => cidrContains(c, ip.value));
}

/** Returns the address a request is attributed to. */
export function clientAddress(
  peer: string,
  forwardedFor: string | null,
  proxies: readonly Cidr[],
): string {
  if (forwardedFor === null || !trusted(proxies, peer)) return peer;
  const hops = forwardedFor.split(",").map((h) => h.trim()).filter((h) => h !== "");
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!;
    if (parseIp(hop) === undefined) return peer;
    if (!trusted(proxies, hop)) return hop;
  }
  return hops[0] ?? peer;
}
