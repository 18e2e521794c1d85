import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { TokenVerifier } from "livekit-server-sdk";
import { clientGrant, mintAdminToken, mintClientToken } from "../../lib/livekit/jwt.ts";
import { type LiveKitIdentity, type LiveKitRoomAlias, Secret } from "../../lib/ids.ts";

const secret = new Secret("livekit_secret", "devsecret-devsecret-devsecret-devsecret");
const room = "hrQ0l3fv1RI0sCBUn3Nu59Bu/b3f7hWXbMLLfFMLNOY" as LiveKitRoomAlias;
const identity = "vYVt8NUMTb0rAawkFqilcAtxKgY26U3Ab7R9INviNnU" as LiveKitIdentity;

function parts(jwt: string): [string, string] {
  const [h, p] = jwt.split(".");
  return [Buffer.from(h!, "base64url").toString(), Buffer.from(p!, "base64url").toString()];
}

Deno.test("jwt: client token has exactly the reference header and claims (§4)", () => {
  const jwt = mintClientToken({
    key: "devkey",
    secret,
    identity,
    grant: clientGrant(room, { subscribeOnly: false }),
    nowSeconds: 1784800000,
    validitySeconds: 3600,
  });
  const [header, payload] = parts(jwt);
  assert.equal(header, '{"alg":"HS256","typ":"JWT"}');
  assert.equal(
    payload,
    '{"iss":"devkey","sub":"vYVt8NUMTb0rAawkFqilcAtxKgY26U3Ab7R9INviNnU","iat":1784800000,"nbf":1784800000,"exp":1784803600,"identity":"vYVt8NUMTb0rAawkFqilcAtxKgY26U3Ab7R9INviNnU","video":{"roomJoin":true,"room":"hrQ0l3fv1RI0sCBUn3Nu59Bu/b3f7hWXbMLLfFMLNOY","canPublish":true,"canSubscribe":true,"canUpdateOwnMetadata":true}}',
  );
  assert.ok(!payload.includes('"aud"'));
});

Deno.test("jwt: client token verifies with livekit-server-sdk", async () => {
  const now = Math.floor(Date.now() / 1000);
  const jwt = mintClientToken({
    key: "devkey",
    secret,
    identity,
    grant: clientGrant(room, { subscribeOnly: false }),
    nowSeconds: now,
    validitySeconds: 120,
  });
  const claims = await new TokenVerifier("devkey", secret.reveal()).verify(jwt);
  assert.equal(claims.sub, identity);
  assert.equal(claims.video?.room, room);
  assert.equal(claims.video?.roomJoin, true);
  await assert.rejects(() =>
    new TokenVerifier("devkey", "another-secret-another-secret-xx").verify(jwt)
  );
});

Deno.test("jwt: subscribe-only grant has explicit false publish flags (D6)", () => {
  const jwt = mintClientToken({
    key: "devkey",
    secret,
    identity,
    grant: clientGrant(room, { subscribeOnly: true }),
    nowSeconds: 1,
    validitySeconds: 60,
  });
  const video = JSON.parse(parts(jwt)[1]).video;
  assert.deepEqual(Object.entries(video), [
    ["roomJoin", true],
    ["room", room],
    ["canPublish", false],
    ["canSubscribe", true],
    ["canPublishData", false],
    ["canUpdateOwnMetadata", true],
  ]);
});

Deno.test("jwt: validity follows the configured seconds (D7)", () => {
  const jwt = mintClientToken({
    key: "k",
    secret,
    identity,
    grant: clientGrant(room, { subscribeOnly: false }),
    nowSeconds: 100,
    validitySeconds: 86400,
  });
  assert.equal(JSON.parse(parts(jwt)[1]).exp, 86500);
});

Deno.test("jwt: empty key refuses to mint", () => {
  assert.throws(() =>
    mintClientToken({
      key: "",
      secret,
      identity,
      grant: clientGrant(room, { subscribeOnly: false }),
      nowSeconds: 1,
      validitySeconds: 60,
    }), RangeError);
});

Deno.test("jwt: admin tokens carry only the method grant, 10 minutes, no sub (§6.2)", () => {
  const create = JSON.parse(
    parts(
      mintAdminToken({ key: "devkey", secret, grant: { roomCreate: true }, nowSeconds: 10 }),
    )[1],
  );
  assert.deepEqual(create, {
    iss: "devkey",
    iat: 10,
    nbf: 10,
    exp: 610,
    video: { roomCreate: true },
  });
  const get = JSON.parse(
    parts(
      mintAdminToken({ key: "devkey", secret, grant: { roomAdmin: true, room }, nowSeconds: 10 }),
    )[1],
  );
  assert.deepEqual(get.video, { roomAdmin: true, room });
  assert.equal(get.sub, undefined);
});
