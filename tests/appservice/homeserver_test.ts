/**
 * Classification of the homeserver's answers to the app service (app-service.md §6): a setup
 * problem becomes an error whose hint names the setting to change.
 */
import assert from "node:assert/strict";
import { classifyAnswer } from "../../lib/appservice/homeserver.ts";

Deno.test("homeserver answers: setup problems name the setting to change", () => {
  const cases: Array<[Parameters<typeof classifyAnswer>[0], number, unknown, string, RegExp]> = [
    [
      "is_joined",
      403,
      { errcode: "M_FORBIDDEN", error: "Missing scope" },
      "forbidden",
      /io\.element\.msc4502\.scopes/,
    ],
    ["is_joined", 404, { errcode: "M_UNRECOGNIZED" }, "unrecognized", /msc4502_enabled/],
    ["fed_proxy", 404, { errcode: "M_UNRECOGNIZED" }, "unrecognized", /msc4512_enabled/],
    [
      "delayed_event",
      404,
      { errcode: "M_UNRECOGNIZED" },
      "unrecognized",
      /max_event_delay_duration/,
    ],
    ["whoami", 401, { errcode: "M_UNKNOWN_TOKEN" }, "unauthorized", /as_token/],
    [
      "delayed_event",
      403,
      {
        errcode: "M_FORBIDDEN",
        error: "Application service cannot masquerade as this user (@a:x).",
      },
      "forbidden",
      /namespaces\.users/,
    ],
    [
      "fed_proxy",
      400,
      { errcode: "IO.ELEMENT.MSC4512.M_FEDPROXY_NO_PROXY_PREFIX" },
      "forbidden",
      /proxy_prefix: rtc\/livekit/,
    ],
  ];
  for (const [call, status, doc, kind, hint] of cases) {
    const err = classifyAnswer(call, { status, doc }, "example.com");
    assert.equal(err.kind, kind, `${call} ${status}`);
    assert.match(err.hint ?? "", hint, `${call} ${status}`);
  }
  // Other refusals carry no hint (not a setup problem).
  const other = classifyAnswer("fed_proxy", { status: 502, doc: { errcode: "X" } }, "example.com");
  assert.equal(other.kind, "status");
  assert.equal(other.hint, undefined);
});
