/**
 * Branded identifiers and opaque secrets.
 *
 * Matrix and LiveKit identifiers are all plain strings on the wire; brands keep a room alias
 * from being passed where an identity is expected. Values are made only by the functions that
 * validate or derive them (decoders, hashing), never by ad-hoc casts in handlers.
 *
 * @module
 */

declare const brand: unique symbol;

/** A string tagged with a compile-time brand `B`. */
export type Brand<T, B extends string> = T & { readonly [brand]: B };

/** `openid_token.matrix_server_name` exactly as sent (never normalised, openid-and-discovery.md §2). */
export type ServerName = Brand<string, "ServerName">;
/** A Matrix user ID as verified by the homeserver (`sub` of userinfo). */
export type UserId = Brand<string, "UserId">;
/** LiveKit room name derived from the Matrix room and slot (tokens-and-rooms.md §2). */
export type LiveKitRoomAlias = Brand<string, "LiveKitRoomAlias">;
/** LiveKit participant identity (tokens-and-rooms.md §2). */
export type LiveKitIdentity = Brand<string, "LiveKitIdentity">;

/** Brands a server name taken from a decoded request. */
export function serverName(value: string): ServerName {
  return value as ServerName;
}

/** Brands a user ID returned by a homeserver after the `sub` check. */
export function userId(value: string): UserId {
  return value as UserId;
}

const MASK = "***";

/**
 * A value that must never reach logs: API secret, OpenID access tokens, `delay_id`s, Redis
 * passwords (D13). Every string conversion yields a mask; only {@linkcode Secret.reveal} gives
 * the value, which makes each use greppable.
 */
export class Secret<B extends string = string> {
  readonly #value: string;
  readonly kind: B;

  constructor(kind: B, value: string) {
    this.kind = kind;
    this.#value = value;
  }

  /** The secret value, for the one place that needs it (HMAC key, URL, request). */
  reveal(): string {
    return this.#value;
  }

  /** Length in UTF-16 code units; safe to log. */
  get length(): number {
    return this.#value.length;
  }

  toString(): string {
    return MASK;
  }

  toJSON(): string {
    return MASK;
  }

  [Symbol.for("Deno.customInspect")](): string {
    return `Secret(${this.kind})`;
  }
}

/** An MSC4140 `delay_id`: a bearer capability for the delayed event (README glossary). */
export type DelayId = Secret<"delay_id">;
/** An OpenID access token from `openid_token.access_token`. */
export type OpenIdAccessToken = Secret<"openid_token">;
