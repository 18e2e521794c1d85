/**
 * Matrix server-name grammar (openid-and-discovery.md §2).
 *
 * `hostname [":" port]`, at most 255 bytes, where hostname is an IPv4 literal, a bracketed IPv6
 * literal or a DNS name of ASCII letters, digits, `-` and `.`, and port is 1–5 digits with a
 * value of 1–65535. Parsing never normalises: matching elsewhere uses the string as sent.
 *
 * @module
 */
import { parseIpv4, parseIpv6 } from "../net/ip.ts";

/** The parts of a valid server name. */
export interface ParsedServerName {
  /** The name exactly as given. */
  raw: string;
  /** Host as written, IPv6 with its brackets (usable as a URL authority host). */
  host: string;
  /** Host without IPv6 brackets (address literal or DNS name). */
  bareHost: string;
  port: number | undefined;
  /** Set when the host is an IP literal. */
  ip: "v4" | "v6" | undefined;
}

const DNS_NAME = /^[A-Za-z0-9.-]+$/;
const PORT = /^[0-9]{1,5}$/;

/** Parses a server name; undefined when it does not follow §2. */
export function parseServerName(text: string): ParsedServerName | undefined {
  if (text === "" || new TextEncoder().encode(text).length > 255) return undefined;
  let host: string;
  let portText: string | undefined;
  if (text.startsWith("[")) {
    const end = text.indexOf("]");
    if (end < 0) return undefined;
    host = text.slice(0, end + 1);
    const rest = text.slice(end + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) return undefined;
      portText = rest.slice(1);
    }
  } else {
    const colon = text.indexOf(":");
    host = colon < 0 ? text : text.slice(0, colon);
    portText = colon < 0 ? undefined : text.slice(colon + 1);
  }
  let port: number | undefined;
  if (portText !== undefined) {
    if (!PORT.test(portText)) return undefined;
    port = Number(portText);
    if (port < 1 || port > 65535) return undefined;
  }
  if (host.startsWith("[")) {
    const inner = host.slice(1, -1);
    if (parseIpv6(inner) === undefined) return undefined;
    return { raw: text, host, bareHost: inner, port, ip: "v6" };
  }
  if (parseIpv4(host) !== undefined) return { raw: text, host, bareHost: host, port, ip: "v4" };
  if (!DNS_NAME.test(host)) return undefined;
  return { raw: text, host, bareHost: host, port, ip: undefined };
}

/** Whether `text` is a valid server name (§2). */
export function isValidServerName(text: string): boolean {
  return parseServerName(text) !== undefined;
}
