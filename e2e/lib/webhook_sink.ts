/**
 * Reads the webhooks captured by `e2e/webhook_capture.ts` (the SFU's second webhook target), so
 * a scenario can check LiveKit's signatures and replay, or tamper with, real webhooks against
 * the service (http-api.md §11).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { stackPaths } from "./env.ts";

/** One captured webhook request, byte-exact. */
export interface CapturedWebhook {
  authorization: string;
  contentType: string;
  body: Uint8Array<ArrayBuffer>;
  event: Record<string, unknown>;
}

interface CaptureLine {
  authorization: string;
  contentType: string;
  body: string;
}

/** Every webhook captured so far in this run. */
export async function capturedWebhooks(): Promise<CapturedWebhook[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${stackPaths().run}/webhooks.jsonl`);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  const hooks: CapturedWebhook[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const raw = JSON.parse(line) as CaptureLine;
    const body = new Uint8Array(Buffer.from(raw.body, "base64"));
    let event: Record<string, unknown> = {};
    try {
      event = JSON.parse(new TextDecoder().decode(body));
    } catch {
      // not JSON: kept with an empty event, the scenario will notice
    }
    hooks.push({ authorization: raw.authorization, contentType: raw.contentType, body, event });
  }
  return hooks;
}

/** Captured webhooks of type `event` (e.g. `participant_joined`) for `identity`, if given. */
export async function findWebhooks(
  event: string,
  identity?: string,
): Promise<CapturedWebhook[]> {
  return (await capturedWebhooks()).filter((w) => {
    if (w.event.event !== event) return false;
    if (identity === undefined) return true;
    const p = w.event.participant as { identity?: string } | undefined;
    return p?.identity === identity;
  });
}
