/**
 * `is_joined` asked afresh (app-service.md §6, §8): after a membership change, membership
 * enforcement must neither reuse a cached `true` nor join a question sent before the change.
 */
import assert from "node:assert/strict";
import { createHomeserverClient } from "../../lib/appservice/homeserver.ts";
import { serverName } from "../../lib/ids.ts";
import { Secret } from "../../lib/ids.ts";
import { silentLogger } from "../../lib/log.ts";
import { systemClock } from "../../lib/clock.ts";
import { fetchOutbound, StubCsApi } from "../delegation/support.ts";
import { startFakeSynapseAs } from "../fakes/synapse_as.ts";

Deno.test("is_joined: a fresh question skips the cache and questions already in flight", async () => {
  const hs = startFakeSynapseAs();
  const client = createHomeserverClient({
    outbound: fetchOutbound(),
    csApi: new StubCsApi(hs.url),
    appService: {
      serverName: serverName(hs.serverName),
      asToken: new Secret("as_token", hs.asToken),
    },
    clock: systemClock,
    log: silentLogger,
  });
  try {
    hs.join("!r:hs.test", "@a:hs.test");
    const who = { mxid: "@a:hs.test" };
    assert.equal(await client.isJoined("!r:hs.test", who), true);
    hs.joined.delete("!r:hs.test|@a:hs.test");
    assert.equal(await client.isJoined("!r:hs.test", who), true, "cached true");
    assert.equal(await client.isJoined("!r:hs.test", who, undefined, { fresh: true }), false);

    // Concurrent questions share one call; fresh ones never do.
    const calls = () => hs.count("/is_joined");
    let before = calls();
    await Promise.all([client.isJoined("!r:hs.test", who), client.isJoined("!r:hs.test", who)]);
    assert.equal(calls(), before + 1);
    before = calls();
    await Promise.all([
      client.isJoined("!r:hs.test", who),
      client.isJoined("!r:hs.test", who, undefined, { fresh: true }),
    ]);
    assert.equal(calls(), before + 2);
  } finally {
    await hs.close();
  }
});
