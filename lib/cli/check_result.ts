/**
 * Results of `lk-jwt-service check-config` (configuration.md §1, "Extra commands"): one line per
 * check, `PASS <what>`, `FAIL <what>: <cause> — fix: <fix>` or `WARN <what>`, plus the deadline
 * every check runs under. The checks themselves live in `check_livekit.ts`,
 * `check_homeserver.ts` and `check_local.ts`; `check_config.ts` runs them.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import { explainPermissionError } from "./permissions_report.ts";

/** Outcome of one check. */
export type CheckResult =
  | { status: "pass"; what: string }
  | { status: "warn"; what: string }
  | { status: "fail"; what: string; cause: string; fix: string };

/** A passed check. */
export function pass(what: string): CheckResult {
  return { status: "pass", what };
}

/** A failed check: what was checked, why it failed and the concrete change that fixes it. */
export function fail(what: string, cause: string, fix: string): CheckResult {
  return { status: "fail", what, cause, fix };
}

/** One output line, as operators read it. */
export function renderResult(result: CheckResult): string {
  switch (result.status) {
    case "pass":
      return `PASS ${result.what}`;
    case "warn":
      return `WARN ${result.what}`;
    case "fail":
      return `FAIL ${result.what}: ${result.cause} — fix: ${result.fix}`;
  }
}

/** Deadline of each check; no check may take longer (network checks run concurrently). */
export const CHECK_TIMEOUT_MS = 10_000;

/** A check that can run under a deadline. */
export interface Check {
  /** Subject of the result line (also used when the deadline passes). */
  what: string;
  /** Fix printed when the deadline passes. */
  timeoutFix: string;
  /** Runs the check; must stop its network work and release resources when `signal` aborts. */
  run(signal: AbortSignal): Promise<CheckResult>;
}

/**
 * Runs a check with a deadline. When the deadline passes first, the check's signal aborts and
 * the result is a failure naming the deadline; an unexpected exception is a failure too, so one
 * broken check never hides the others.
 */
export async function runCheck(
  check: Check,
  options: { clock: Clock; timeoutMs: number },
): Promise<CheckResult> {
  const controller = new AbortController();
  let timer: { cancel(): void } | undefined;
  const deadline = new Promise<CheckResult>((resolve) => {
    timer = options.clock.setTimer(options.timeoutMs, () => {
      controller.abort(new DOMException("check timed out", "TimeoutError"));
      resolve(
        fail(check.what, `no answer within ${options.timeoutMs / 1000} s`, check.timeoutFix),
      );
    });
  });
  const work = check.run(controller.signal).catch((err: unknown) =>
    fail(
      check.what,
      errorMessage(err),
      explainPermissionError(err) ?? "see the cause above; this is unexpected",
    )
  );
  try {
    return await Promise.race([work, deadline]);
  } finally {
    timer?.cancel();
    if (!controller.signal.aborted) controller.abort();
  }
}

/** The most specific message of an error chain (`fetch failed` hides the real cause). */
export function errorMessage(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current !== undefined && current !== null; depth++) {
    const text = current instanceof Error ? current.message : String(current);
    if (text !== "" && !parts.includes(text)) parts.push(text);
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join(": ") || "unknown error";
}
