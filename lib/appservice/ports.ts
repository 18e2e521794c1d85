/**
 * The seams membership enforcement (app-service.md §8, `lib/membership/`) plugs into. App-service
 * mode hands the events of each homeserver transaction to a {@linkcode MembershipSink} and reports
 * every token it issues to a {@linkcode TokenTracker}. The no-op implementations below are for
 * tests that leave enforcement out.
 *
 * @module
 */
import type { LiveKitIdentity, LiveKitRoomAlias, UserId } from "../ids.ts";

/** One event of a transaction, as far as membership enforcement needs it. */
export interface TransactionEvent {
  type: string;
  roomId: string;
  sender: string;
  /** For state events. */
  stateKey: string | undefined;
  /** `content.membership` of `m.room.member` events. */
  membership: string | undefined;
  /** The raw event (object), for anything else a consumer needs. */
  raw: Readonly<Record<string, unknown>>;
}

/** Receives the events of each transaction once (repeated transaction IDs are not passed on). */
export interface MembershipSink {
  handleEvents(events: readonly TransactionEvent[]): Promise<void>;
}

/** A token issued in app-service mode (who may be in which LiveKit room). */
export interface IssuedToken {
  /** The Matrix room. */
  roomId: string;
  user: UserId;
  room: LiveKitRoomAlias;
  identity: LiveKitIdentity;
  /** Minted for a local user (C-S) or for a remote server's user (S-S). */
  local: boolean;
}

/** Learns about every token minted in app-service mode. */
export interface TokenTracker {
  tokenIssued(token: IssuedToken): void;
}

/** Without membership enforcement: events are accepted and dropped. */
export const ignoreMembershipEvents: MembershipSink = {
  handleEvents: () => Promise.resolve(),
};

/** Without membership enforcement: issued tokens are not tracked. */
export const noTokenTracking: TokenTracker = { tokenIssued: () => {} };
