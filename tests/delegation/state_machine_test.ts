import { deepStrictEqual, strictEqual } from "node:assert/strict";
import {
  JOB_SIGNALS,
  JOB_STATES,
  type JobAction,
  type JobSignal,
  type JobState,
  transition,
} from "../../lib/delegation/state_machine.ts";

type Row = [JobState, JobSignal, JobState, JobAction[]];

// delegation.md §9.2, written out row by row; every pair not listed is "ignored".
const LISTED: Row[] = [
  ["WaitingForInitialConnect", "ParticipantConnected", "Connected", [
    "leaveWaiting",
    "enterConnected",
  ]],
  ["WaitingForInitialConnect", "ParticipantLookupSuccessful", "Connected", [
    "leaveWaiting",
    "enterConnected",
  ]],
  ["WaitingForInitialConnect", "ParticipantConnectionAborted", "Aborted", [
    "leaveWaiting",
    "reportDone",
  ]],
  ["WaitingForInitialConnect", "ParticipantMaybeGone", "WaitingForInitialConnect", ["confirm"]],
  ["WaitingForInitialConnect", "WaitingStateTimedOut", "Disconnected", ["leaveWaiting", "send"]],
  ["WaitingForInitialConnect", "JobReplaced", "Replaced", ["stopAll"]],
  ["Connected", "ParticipantDisconnectedIntentionally", "Disconnected", [
    "leaveConnected",
    "send",
  ]],
  ["Connected", "ParticipantConnectionAborted", "Disconnected", ["leaveConnected", "send"]],
  ["Connected", "SFUParticipantGone", "Disconnected", ["leaveConnected", "send"]],
  ["Connected", "ParticipantMaybeGone", "Connected", ["confirm"]],
  ["Connected", "DelayedEventReset", "Connected", ["restartCycle"]],
  ["Connected", "DelayedEventTimedOut", "Aborted", ["leaveConnected", "reportDone"]],
  ["Connected", "DelayedEventNotFound", "Aborted", ["leaveConnected", "reportDone"]],
  ["Connected", "CsApiUrlNotFound", "Aborted", ["leaveConnected", "reportDone"]],
  ["Connected", "JobReplaced", "Replaced", ["stopAll"]],
  ["Disconnected", "JobReplaced", "Replaced", ["stopAll"]],
  ["Aborted", "JobReplaced", "Replaced", ["stopAll"]],
];

Deno.test("state machine: every state × signal pair matches delegation.md §9.2", async (t) => {
  const listed = new Map(LISTED.map(([s, sig, to, actions]) => [`${s}/${sig}`, { to, actions }]));
  let ignored = 0;
  for (const state of JOB_STATES) {
    for (const signal of JOB_SIGNALS) {
      await t.step(`${state} + ${signal}`, () => {
        const expected = listed.get(`${state}/${signal}`) ?? { to: state, actions: [] };
        if (!listed.has(`${state}/${signal}`)) ignored++;
        const got = transition(state, signal);
        strictEqual(got.state, expected.to);
        deepStrictEqual([...got.actions], expected.actions);
      });
    }
  }
  strictEqual(ignored, JOB_STATES.length * JOB_SIGNALS.length - LISTED.length);
});

Deno.test("state machine: the tables cover all 5 states and 12 signals", () => {
  strictEqual(JOB_STATES.length, 5);
  strictEqual(JOB_SIGNALS.length, 12);
  strictEqual(new Set(JOB_SIGNALS).size, 12);
});

Deno.test("state machine: a late intentional leave while waiting is ignored (§9.2 note)", () => {
  deepStrictEqual(
    transition("WaitingForInitialConnect", "ParticipantDisconnectedIntentionally"),
    { state: "WaitingForInitialConnect", actions: [] },
  );
});

Deno.test("state machine: Replaced is absorbing", () => {
  for (const signal of JOB_SIGNALS) {
    deepStrictEqual(transition("Replaced", signal), { state: "Replaced", actions: [] });
  }
});
