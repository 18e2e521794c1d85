import { deepStrictEqual, strictEqual } from "node:assert/strict";
import {
  type CallOutcome,
  classifyResponse,
  type DelayedEventAction,
  parseHttpDate,
  retryAfterHeaderMs,
} from "../../lib/delegation/classify.ts";

const NOW = Date.UTC(2026, 6, 23, 10, 15, 30);

function res(status: number, options: { body?: string; headers?: Record<string, string> } = {}) {
  return {
    status,
    headers: new Headers(options.headers),
    body: new TextEncoder().encode(options.body ?? ""),
  };
}

const UNRECOGNIZED = '{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}';

type Case = [string, DelayedEventAction, ReturnType<typeof res>, CallOutcome["kind"], number?];

// delegation.md §4 status classification, first matching row wins.
const CASES: Case[] = [
  ["200 restart", "restart", res(200), "success"],
  ["204 restart", "restart", res(204), "success"],
  ["202 send", "send", res(202), "success"],
  ["299 send", "send", res(299), "success"],
  ["404 M_UNRECOGNIZED restart", "restart", res(404, { body: UNRECOGNIZED }), "unrecognized"],
  ["405 M_UNRECOGNIZED restart", "restart", res(405, { body: UNRECOGNIZED }), "unrecognized"],
  ["404 M_UNRECOGNIZED send", "send", res(404, { body: UNRECOGNIZED }), "unrecognized"],
  ["405 M_UNRECOGNIZED send", "send", res(405, { body: UNRECOGNIZED }), "unrecognized"],
  ["404 restart", "restart", res(404, { body: '{"errcode":"M_NOT_FOUND"}' }), "not_found"],
  ["404 plain restart", "restart", res(404, { body: "not found" }), "not_found"],
  ["404 send", "send", res(404, { body: '{"errcode":"M_NOT_FOUND"}' }), "success"],
  ["409 restart", "restart", res(409), "not_found"],
  ["409 send", "send", res(409), "success"],
  ["405 without errcode restart", "restart", res(405), "transient"],
  ["405 other errcode send", "send", res(405, { body: '{"errcode":"M_X"}' }), "transient"],
  [
    "429 Retry-After 3",
    "restart",
    res(429, { headers: { "Retry-After": "3" } }),
    "rate_limited",
    3000,
  ],
  ["429 Retry-After 0", "send", res(429, { headers: { "Retry-After": "0" } }), "rate_limited", 0],
  ["429 Retry-After -4", "send", res(429, { headers: { "Retry-After": "-4" } }), "rate_limited", 0],
  [
    "429 Retry-After date",
    "restart",
    res(429, { headers: { "Retry-After": "Thu, 23 Jul 2026 10:15:37 GMT" } }),
    "rate_limited",
    7000,
  ],
  [
    "429 Retry-After past date",
    "restart",
    res(429, { headers: { "Retry-After": "Thu, 23 Jul 2026 10:00:00 GMT" } }),
    "rate_limited",
    0,
  ],
  [
    "429 header wins over body",
    "restart",
    res(429, { headers: { "Retry-After": "2" }, body: '{"retry_after_ms":9000}' }),
    "rate_limited",
    2000,
  ],
  ["429 body hint", "send", res(429, { body: '{"retry_after_ms":2500}' }), "rate_limited", 2500],
  [
    "429 junk header, body hint",
    "send",
    res(429, { headers: { "Retry-After": "soon" }, body: '{"retry_after_ms":1200}' }),
    "rate_limited",
    1200,
  ],
  ["429 body hint 0", "send", res(429, { body: '{"retry_after_ms":0}' }), "transient"],
  ["429 body hint string", "send", res(429, { body: '{"retry_after_ms":"5"}' }), "transient"],
  ["429 nothing", "restart", res(429), "transient"],
  ["500", "restart", res(500), "transient"],
  ["502 send", "send", res(502), "transient"],
  ["503", "restart", res(503), "transient"],
  ["400", "restart", res(400), "transient"],
  ["401", "send", res(401), "transient"],
  ["403", "restart", res(403), "transient"],
  ["408", "send", res(408), "transient"],
  ["302 (unfollowed)", "restart", res(302), "transient"],
  ["307 (unfollowed)", "send", res(307), "transient"],
  ["100", "send", res(100), "transient"],
];

Deno.test("classify: delegation.md §4 status table", async (t) => {
  for (const [name, action, response, kind, ms] of CASES) {
    await t.step(name, () => {
      const got = classifyResponse(action, response, NOW);
      strictEqual(got.kind, kind);
      if (ms !== undefined && got.kind === "rate_limited") strictEqual(got.retryAfterMs, ms);
    });
  }
});

Deno.test("classify: send 404/409 are successes marked as already final", () => {
  deepStrictEqual(classifyResponse("send", res(404), NOW), {
    kind: "success",
    status: 404,
    alreadyFinal: true,
  });
  deepStrictEqual(classifyResponse("send", res(200), NOW), {
    kind: "success",
    status: 200,
    alreadyFinal: false,
  });
});

Deno.test("classify: Retry-After forms", () => {
  strictEqual(retryAfterHeaderMs(null, NOW), undefined);
  strictEqual(retryAfterHeaderMs("120", NOW), 120_000);
  strictEqual(retryAfterHeaderMs(" 5 ", NOW), 5_000);
  strictEqual(retryAfterHeaderMs("1.5", NOW), undefined);
  strictEqual(retryAfterHeaderMs("", NOW), undefined);
  strictEqual(retryAfterHeaderMs("Thu, 23 Jul 2026 10:16:30 GMT", NOW), 60_000);
  strictEqual(retryAfterHeaderMs("Thursday, 23-Jul-26 10:16:30 GMT", NOW), 60_000);
  strictEqual(retryAfterHeaderMs("Thu Jul 23 10:16:30 2026", NOW), 60_000);
  strictEqual(retryAfterHeaderMs("Thu Jul  3 10:16:30 2026", NOW), 0);
  strictEqual(retryAfterHeaderMs("2026-07-23T10:16:30Z", NOW), undefined);
  strictEqual(parseHttpDate("Thu, 31 Feb 2026 10:16:30 GMT"), undefined);
  strictEqual(parseHttpDate("Thu, 23 Jul 2026 25:16:30 GMT"), undefined);
});
