/**
 * The job state machine of delegation.md §9, as a pure function: `transition(state, signal)`
 * returns the next state and the actions the job must run, in order. Timers, lookups and
 * homeserver calls live in `job.ts`; nothing here has side effects.
 *
 * ```
 *                     ParticipantConnected / ParticipantLookupSuccessful
 *   WaitingForInitialConnect ───────────────────────────────────────────► Connected ◄─┐
 *     │  │  │ ParticipantMaybeGone: confirm                   DelayedEventReset:│ restart cycle
 *     │  │  └──────────────► (stay)                        ParticipantMaybeGone:│ confirm
 *     │  │ WaitingStateTimedOut                                   │  │          └──┘
 *     │  └───────────────────────► Disconnected ◄─────────────────┘  │ left / aborted /
 *     │ ParticipantConnectionAborted   (send, then done)   SFUParticipantGone
 *     └────────────────────────────► Aborted ◄──────────────────────┘ DelayedEventTimedOut /
 *                                     (done)                          NotFound / CsApiUrlNotFound
 *   any non-Replaced state ── JobReplaced ──► Replaced (stop everything, no Redis change)
 * ```
 *
 * Every pair not listed in §9.2 is ignored: the state stays and no action runs. In particular
 * `ParticipantDisconnectedIntentionally` while waiting is ignored on purpose (it is often the
 * late leave of the previous session of a reused legacy identity).
 *
 * @module
 */

/** Job states (delegation.md §9.1). */
export type JobState =
  | "WaitingForInitialConnect"
  | "Connected"
  | "Disconnected"
  | "Aborted"
  | "Replaced";

/** Every state, for exhaustive tables. */
export const JOB_STATES: readonly JobState[] = [
  "WaitingForInitialConnect",
  "Connected",
  "Disconnected",
  "Aborted",
  "Replaced",
];

/** Signals a job reacts to (delegation.md §9.1). */
export type JobSignal =
  | "ParticipantConnected"
  | "ParticipantDisconnectedIntentionally"
  | "ParticipantConnectionAborted"
  | "ParticipantMaybeGone"
  | "ParticipantLookupSuccessful"
  | "SFUParticipantGone"
  | "WaitingStateTimedOut"
  | "DelayedEventReset"
  | "DelayedEventTimedOut"
  | "DelayedEventNotFound"
  | "CsApiUrlNotFound"
  | "JobReplaced";

/** Every signal, for exhaustive tables. */
export const JOB_SIGNALS: readonly JobSignal[] = [
  "ParticipantConnected",
  "ParticipantDisconnectedIntentionally",
  "ParticipantConnectionAborted",
  "ParticipantMaybeGone",
  "ParticipantLookupSuccessful",
  "SFUParticipantGone",
  "WaitingStateTimedOut",
  "DelayedEventReset",
  "DelayedEventTimedOut",
  "DelayedEventNotFound",
  "CsApiUrlNotFound",
  "JobReplaced",
];

/**
 * Side effects of a transition (delegation.md §9.3), run by the job in the given order.
 *
 * - `leaveWaiting`: stop the waiting timer and lookup phase 1.
 * - `enterConnected`: D := now + T; start phase 2 if enabled; emit `DelayedEventReset` now.
 * - `leaveConnected`: stop the restart timer and phase 2; discard an in-flight cycle's result.
 * - `restartCycle`: handle `DelayedEventReset` (ignore if a cycle runs; time out if now ≥ D;
 *   else run one cycle in the background).
 * - `confirm`: start the D9 confirmation check unless one is running.
 * - `send`: send the delayed event in the background, then report done.
 * - `reportDone`: report done at once, no homeserver call.
 * - `stopAll`: stop every timer and background task; no store change.
 */
export type JobAction =
  | "leaveWaiting"
  | "enterConnected"
  | "leaveConnected"
  | "restartCycle"
  | "confirm"
  | "send"
  | "reportDone"
  | "stopAll";

/** Result of {@linkcode transition}. */
export interface Transition {
  state: JobState;
  actions: readonly JobAction[];
}

const stay = (state: JobState, ...actions: JobAction[]): Transition => ({ state, actions });

/**
 * The transition table of delegation.md §9.2.
 *
 * @example
 * ```ts
 * transition("WaitingForInitialConnect", "ParticipantConnected");
 * // → { state: "Connected", actions: ["leaveWaiting", "enterConnected"] }
 * ```
 */
export function transition(state: JobState, signal: JobSignal): Transition {
  switch (state) {
    case "WaitingForInitialConnect":
      return fromWaiting(signal);
    case "Connected":
      return fromConnected(signal);
    case "Disconnected":
    case "Aborted":
      return signal === "JobReplaced" ? stay("Replaced", "stopAll") : stay(state);
    case "Replaced":
      return stay(state);
    default:
      return assertNever(state);
  }
}

function fromWaiting(signal: JobSignal): Transition {
  switch (signal) {
    case "ParticipantConnected":
    case "ParticipantLookupSuccessful":
      return stay("Connected", "leaveWaiting", "enterConnected");
    case "ParticipantConnectionAborted":
      return stay("Aborted", "leaveWaiting", "reportDone");
    case "ParticipantMaybeGone":
      return stay("WaitingForInitialConnect", "confirm");
    case "WaitingStateTimedOut":
      return stay("Disconnected", "leaveWaiting", "send");
    case "JobReplaced":
      return stay("Replaced", "stopAll");
    default:
      return stay("WaitingForInitialConnect");
  }
}

function fromConnected(signal: JobSignal): Transition {
  switch (signal) {
    case "ParticipantDisconnectedIntentionally":
    case "ParticipantConnectionAborted":
    case "SFUParticipantGone":
      return stay("Disconnected", "leaveConnected", "send");
    case "ParticipantMaybeGone":
      return stay("Connected", "confirm");
    case "DelayedEventReset":
      return stay("Connected", "restartCycle");
    case "DelayedEventTimedOut":
    case "DelayedEventNotFound":
    case "CsApiUrlNotFound":
      return stay("Aborted", "leaveConnected", "reportDone");
    case "JobReplaced":
      return stay("Replaced", "stopAll");
    default:
      return stay("Connected");
  }
}

function assertNever(value: never): never {
  throw new TypeError(`unknown job state ${String(value)}`);
}
