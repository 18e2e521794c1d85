import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { encodeField, encodeValue, formatRfc3339 } from "../../lib/store/codec.ts";
import { planRestore } from "../../lib/store/restore.ts";

const NOW = Date.UTC(2026, 6, 23, 10, 15, 30);

function value(
  room: string,
  identity: string,
  options: { T?: number; ns?: bigint; at?: number | string; id?: string } = {},
) {
  return encodeValue({
    delayId: options.id ?? `syd_${identity}`,
    delayTimeoutNs: options.ns ?? BigInt(options.T ?? 10_000) * 1_000_000n,
    serverName: "example.com",
    room,
    identity,
    restartedAt: typeof options.at === "string" ? options.at : formatRfc3339(options.at ?? NOW),
  });
}

const none = () => false;

Deno.test("restore: live entries become jobs with the remaining time (D10)", () => {
  const f = encodeField("r", "a");
  const plan = planRestore(new Map([[f, value("r", "a", { at: NOW - 4_000 })]]), {
    nowMs: NOW,
    isLive: none,
  });
  strictEqual(plan.jobs.length, 1);
  strictEqual(plan.jobs[0]!.field, f);
  strictEqual(plan.jobs[0]!.remainingMs, 6_000);
  strictEqual(plan.jobs[0]!.delayTimeoutMs, 10_000);
  deepStrictEqual([plan.puts, plan.deletes, plan.invalid], [[], [], []]);
});

Deno.test("restore: expired and non-positive timeouts are deleted (rules 3, 4)", () => {
  const entries = new Map([
    [encodeField("r", "expired"), value("r", "expired", { at: NOW - 10_000 })],
    [encodeField("r", "zero"), value("r", "zero", { ns: 0n })],
    [encodeField("r", "neg"), value("r", "neg", { ns: -5n })],
    [encodeField("r", "ok"), value("r", "ok", { at: NOW - 9_999 })],
  ]);
  const plan = planRestore(entries, { nowMs: NOW, isLive: none });
  deepStrictEqual(
    plan.deletes.sort(),
    [
      encodeField("r", "expired"),
      encodeField("r", "neg"),
      encodeField("r", "zero"),
    ].sort(),
  );
  deepStrictEqual(plan.jobs.map((j) => j.job.identity), ["ok"]);
  strictEqual(plan.jobs[0]!.remainingMs, 1);
});

Deno.test("restore: unreadable values are skipped and left alone (rule 2)", () => {
  const plan = planRestore(
    new Map([["weird", "{}"], ["garbage", '{"DelayId":"syd_secret"'], [
      "old-format",
      '{"DelayId":"x"}',
    ]]),
    { nowMs: NOW, isLive: none },
  );
  deepStrictEqual(plan.invalid.map((i) => i.field), ["weird", "garbage", "old-format"]);
  strictEqual(plan.invalid[1]!.reason, "job value is not valid JSON");
  deepStrictEqual([plan.jobs, plan.deletes, plan.puts], [[], [], []]);
});

Deno.test("restore: non-canonical field names move to ours (rule 5)", () => {
  const odd = '["r", "a"]';
  const v = value("r", "a", { at: "2026-07-23T12:15:29.5+02:00" });
  const plan = planRestore(new Map([[odd, v]]), { nowMs: NOW, isLive: none });
  const canonical = encodeField("r", "a");
  deepStrictEqual(plan.puts, [{ field: canonical, value: v }]);
  deepStrictEqual(plan.deletes, [odd]);
  strictEqual(plan.jobs[0]!.field, canonical);
  strictEqual(plan.jobs[0]!.remainingMs, 9_500);
});

Deno.test("restore: the key comes from Params, not from the field name", () => {
  const plan = planRestore(new Map([['["x","y"]', value("r", "a")]]), {
    nowMs: NOW,
    isLive: none,
  });
  strictEqual(plan.jobs[0]!.field, encodeField("r", "a"));
  deepStrictEqual(plan.deletes, ['["x","y"]']);
});

Deno.test("restore: of two entries for one key the later RestartedAt wins (rule 5)", () => {
  const canonical = encodeField("r", "a");
  const older = value("r", "a", { at: NOW - 5_000, id: "old" });
  const newer = value("r", "a", { at: NOW - 1_000, id: "new" });
  // The newer one sits under a non-canonical field: it moves over the older canonical entry.
  const plan = planRestore(new Map([[canonical, older], ['["r","a" ]', newer]]), {
    nowMs: NOW,
    isLive: none,
  });
  deepStrictEqual(plan.jobs.map((j) => j.job.delayId), ["new"]);
  deepStrictEqual(plan.puts, [{ field: canonical, value: newer }]);
  deepStrictEqual(plan.deletes, ['["r","a" ]']);
  // The newer one is canonical: the other is deleted.
  const plan2 = planRestore(new Map([[canonical, newer], ['["r","a" ]', older]]), {
    nowMs: NOW,
    isLive: none,
  });
  deepStrictEqual(plan2.jobs.map((j) => j.job.delayId), ["new"]);
  deepStrictEqual(plan2.puts, []);
  deepStrictEqual(plan2.deletes, ['["r","a" ]']);
});

Deno.test("restore: escaped identities (Go encoding) map to the same canonical field", () => {
  const canonical = encodeField("r<", "a&b");
  strictEqual(canonical, '["r\\u003c","a\\u0026b"]');
  const plan = planRestore(new Map([[canonical, value("r<", "a&b")]]), {
    nowMs: NOW,
    isLive: none,
  });
  deepStrictEqual([plan.puts, plan.deletes], [[], []]);
  strictEqual(plan.jobs[0]!.field, canonical);
});

Deno.test("restore: a live job or pending write wins and its field is never touched (§10.3)", () => {
  const live = encodeField("r", "live");
  const entries = new Map([
    [live, value("r", "live", { at: NOW - 20_000 })],
    ['["r", "live"]', value("r", "live")],
    [encodeField("r", "other"), value("r", "other")],
  ]);
  const plan = planRestore(entries, { nowMs: NOW, isLive: (f) => f === live });
  deepStrictEqual(plan.jobs.map((j) => j.job.identity), ["other"]);
  deepStrictEqual(plan.deletes, ['["r", "live"]']);
  deepStrictEqual(plan.live, [live]);
  const plan2 = planRestore(new Map([[live, value("r", "live")]]), {
    nowMs: NOW,
    isLive: (f) => f === live,
  });
  deepStrictEqual([plan2.jobs, plan2.deletes, plan2.live], [[], [], [live]]);
});
