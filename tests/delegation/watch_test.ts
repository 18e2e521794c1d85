/** Delegation metrics and operational warnings. */
import assert from "node:assert/strict";
import { DelegationWatch } from "../../lib/delegation/watch.ts";
import { createLogger } from "../../lib/log.ts";
import { ServiceMetrics } from "../../lib/metrics/metrics.ts";
import { ManualClock } from "../support/manual_clock.ts";

function setup(jobs = 3) {
  const clock = new ManualClock();
  const lines: string[] = [];
  const log = createLogger({ level: "debug", write: (l) => lines.push(l), now: () => clock.now() });
  const metrics = new ServiceMetrics();
  let count = jobs;
  const watch = new DelegationWatch({ clock, log, metrics, jobCount: () => count });
  return { clock, lines, metrics, watch, setJobs: (n: number) => (count = n) };
}

const silence = (lines: string[]) =>
  lines.filter((l) => l.includes("No SFU webhook received")).length;

Deno.test("watch: warns once per hour when jobs exist and webhooks stay silent for 10 minutes", async () => {
  const { clock, lines, watch } = setup();
  watch.start();
  await clock.advance(9 * 60_000);
  assert.equal(silence(lines), 0);
  await clock.advance(2 * 60_000);
  assert.equal(silence(lines), 1);
  assert.match(lines.find((l) => l.includes("No SFU webhook"))!, /jobs=3 silent_minutes=1[01]/);
  await clock.advance(50 * 60_000);
  assert.equal(silence(lines), 1);
  await clock.advance(11 * 60_000);
  assert.equal(silence(lines), 2);
  watch.stop();
  assert.equal(clock.pendingTimers, 0);
});

Deno.test("watch: no warning without jobs, and webhooks (even ignored ones) reset the silence", async () => {
  const { clock, lines, watch, setJobs } = setup(0);
  watch.start();
  await clock.advance(30 * 60_000);
  assert.equal(silence(lines), 0);
  setJobs(2);
  watch.webhook("room_started", "ignored");
  await clock.advance(9 * 60_000);
  assert.equal(silence(lines), 0);
  // Unauthorized deliveries do not count as the SFU reaching us.
  watch.webhook("", "unauthorized");
  await clock.advance(2 * 60_000);
  assert.equal(silence(lines), 1);
  watch.stop();
});

Deno.test("watch: 429 on restarts warns about rc_delayed_event_mgmt with the numbers", async () => {
  const { clock, lines, metrics, watch } = setup(20);
  for (let i = 0; i < 150; i++) {
    watch.callOutcome({ action: "restart", serverName: "example.com" }, {
      kind: "success",
      status: 200,
      alreadyFinal: false,
    });
    await clock.advance(400);
  }
  watch.callOutcome({ action: "restart", serverName: "example.com" }, {
    kind: "rate_limited",
    status: 429,
    retryAfterMs: 1000,
  });
  watch.callOutcome({ action: "restart", serverName: "example.com" }, {
    kind: "rate_limited",
    status: 429,
    retryAfterMs: 1000,
  });
  const warnings = lines.filter((l) => l.includes("rc_delayed_event_mgmt"));
  assert.equal(warnings.length, 1);
  assert.match(
    warnings[0]!,
    /server_name=example\.com delegated_jobs=20 restarts_per_second=2\.5\d* suggested_per_second=6 suggested_burst_count=30/,
  );
  // Sends that are rate limited do not warn; another server does.
  watch.callOutcome({ action: "send", serverName: "other.org" }, {
    kind: "rate_limited",
    status: 429,
    retryAfterMs: 1000,
  });
  assert.equal(lines.filter((l) => l.includes("rc_delayed_event_mgmt")).length, 1);
  watch.callOutcome({ action: "restart", serverName: "other.org" }, {
    kind: "rate_limited",
    status: 429,
    retryAfterMs: 1000,
  });
  assert.equal(lines.filter((l) => l.includes("rc_delayed_event_mgmt")).length, 2);
  await clock.advance(10 * 60_000);
  watch.callOutcome({ action: "restart", serverName: "example.com" }, {
    kind: "rate_limited",
    status: 429,
    retryAfterMs: 1000,
  });
  assert.equal(lines.filter((l) => l.includes("rc_delayed_event_mgmt")).length, 3);
  assert.equal(metrics.restarts.get({ outcome: "success" }), 150);
  assert.equal(metrics.restarts.get({ outcome: "rate_limited" }), 4);
  assert.equal(metrics.sends.get({ outcome: "rate_limited" }), 1);
});

Deno.test("watch: counters for retries, webhooks and Redis errors", () => {
  const { metrics, watch } = setup();
  watch.retry("restart");
  watch.retry("restart");
  watch.webhook("participant_joined", "accepted");
  watch.webhook("participant_joined", "duplicate");
  watch.webhook("", "unauthorized");
  watch.storeError("hset");
  assert.equal(metrics.retries.get({ action: "restart" }), 2);
  assert.equal(metrics.webhooks.get({ event: "participant_joined", verdict: "accepted" }), 1);
  assert.equal(metrics.webhooks.get({ event: "unknown", verdict: "unauthorized" }), 1);
  assert.equal(metrics.redisErrors.get({ op: "hset" }), 1);
});
