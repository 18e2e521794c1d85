import assert from "node:assert/strict";
import { hashedIdentity, hashList, legacyIdentity, roomAlias } from "../../lib/livekit/names.ts";
import { userId } from "../../lib/ids.ts";

// tokens-and-rooms.md §3: every vector, "ours" column.
const VECTORS: Array<[string[], string]> = [
  [["!roomid:example.com", "slot1234"], "O8437W3+jmzMVjoIP3tNwbm+XxHQk2iKpOA7aqw3qSc"],
  [["@alice:example.com", "DEVICE123", "memberABC"], "J+T45tGruxc+HrUOqJJlyQSV33m728Cme4+vt8/SWrU"],
  [["@alice:example.com", "memberABC"], "M3VnsLXrkbxIDINXO64u8PZzFyD9ZYFiQULR2dshWYs"],
  [["!room:example.com", "m.call#ROOM"], "krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs"],
  [["!room:example.org", "m.call#ROOM"], "TK4o8wNCXi5t5936bOvIzE/X3XFc7cgp3jGRDqK0j5E"],
  [["!room:example.com", "m.call#"], "hrQ0l3fv1RI0sCBUn3Nu59Bu/b3f7hWXbMLLfFMLNOY"],
  [["@alice:example.com", "DEVICE", "member-1"], "vYVt8NUMTb0rAawkFqilcAtxKgY26U3Ab7R9INviNnU"],
  [["!room-a:example.com", "m.call#"], "2cHfMFYkSCG0sSSNyhua00HhjgTBRdPCxeJqCcPl3wM"],
  [["!abc<&>:example.org", "m.call#"], "nGWuBp5pIEUHKvFwkmDE1jvrCEEWs5u40UPD7BRjsL0"],
  [["@zoë:example.org", "DEV\u2028", "m"], "mxGSncqnNyUbtxhf43Y67yWAGVj7vVTxmvwgOVj8E5g"],
  [["a\tb", "c\u0001d", 'e"f\\g'], "m5aD1xC+gay8ckk4HcxGtjUUBQ4xOnUczBImW8BB3WU"],
];

Deno.test("names: H matches every vector of tokens-and-rooms.md §3", async (t) => {
  for (const [i, [list, expected]] of VECTORS.entries()) {
    await t.step(`vector ${i + 1}`, () => assert.equal(hashList(list), expected));
  }
});

Deno.test("names: vector 11 canonical bytes use lowercase \\u escapes", () => {
  assert.equal(
    JSON.stringify(["a\tb", "c\u0001d", 'e"f\\g']),
    '["a\\tb","c\\u0001d","e\\"f\\\\g"]',
  );
});

Deno.test("names: room and identity derivations per endpoint (§2)", () => {
  assert.equal(
    roomAlias("!room:example.com", "m.call#ROOM"),
    "krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs",
  );
  assert.equal(
    hashedIdentity(userId("@alice:example.com"), "DEVICE", "member-1"),
    "vYVt8NUMTb0rAawkFqilcAtxKgY26U3Ab7R9INviNnU",
  );
  assert.equal(legacyIdentity(userId("@alice:example.com"), "DEVICE"), "@alice:example.com:DEVICE");
  assert.equal(legacyIdentity(userId("@alice:example.com"), ""), "@alice:example.com:");
});

Deno.test("names: H never yields padding or URL-safe characters", () => {
  for (let i = 0; i < 200; i++) {
    const h = hashList([`room${i}`, "m.call#ROOM"]);
    assert.match(h, /^[A-Za-z0-9+/]{43}$/);
  }
});
