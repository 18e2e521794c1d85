/**
 * Full-access classification (tokens-and-rooms.md §5, D2): exact, case-sensitive match of the
 * server name as sent, or `*` anywhere in the list. OpenID verification already forced the
 * verified `sub` onto that server, so this classifies the verified user's homeserver.
 *
 * @module
 */
import type { FullAccess } from "../config/config.ts";
import type { ServerName } from "../ids.ts";

/** The two classes of verified users. */
export type AccessClass = "full" | "restricted";

/** Classifies a verified user by the server name of their OpenID token. */
export function classify(fullAccess: FullAccess, server: ServerName): AccessClass {
  return fullAccess.wildcard || fullAccess.explicit.has(server) ? "full" : "restricted";
}

/** Whether the name is listed literally (exempt from the per-server rate limit, §8.3 allowances). */
export function isExplicitlyListed(fullAccess: FullAccess, server: string): boolean {
  return fullAccess.explicit.has(server);
}
