/**
 * Webhook capture listener of the end-to-end stack: livekit.yaml sends every webhook both to
 * the service and to `http://127.0.0.1:8090/capture`, which this process (started with the
 * stack by e2e/stack.sh) answers with 200 and appends, byte-exact, to a JSON-lines file. The
 * webhook scenario reads that file to check LiveKit's signatures and to replay real webhooks
 * (http-api.md §11). Running for the whole stack lifetime keeps LiveKit's delivery queue for
 * this URL empty (a dead URL would back it up with retries).
 *
 * Usage: deno run --allow-net=127.0.0.1:8090 --allow-write=<dir> e2e/webhook_capture.ts <file>
 *
 * @module
 */
import { Buffer } from "node:buffer";

const file = Deno.args[0];
if (file === undefined) {
  console.error("usage: webhook_capture.ts <output.jsonl>");
  Deno.exit(2);
}

Deno.serve({ hostname: "127.0.0.1", port: 8090, onListen: () => {} }, async (req) => {
  const body = new Uint8Array(await req.arrayBuffer());
  const line = JSON.stringify({
    path: new URL(req.url).pathname,
    authorization: req.headers.get("authorization") ?? "",
    contentType: req.headers.get("content-type") ?? "",
    body: Buffer.from(body).toString("base64"),
  });
  await Deno.writeTextFile(file, line + "\n", { append: true });
  return new Response(null, { status: 200 });
});
