/**
 * Size- and time-limited request body reading (http-api.md §1, §10): a `Content-Length` above
 * the limit is refused before reading; streamed bodies are cut at limit + 1 byte; the whole
 * body must arrive within the read timeout.
 *
 * @module
 */
import { ApiError, Errors } from "./errors.ts";

/** 64 KiB for the three POST endpoints (http-api.md §1). */
export const MAX_REQUEST_BODY = 64 * 1024;
/** 1 MiB for `/sfu_webhook` (http-api.md §11). */
export const MAX_WEBHOOK_BODY = 1024 * 1024;
/** Whole-body read timeout (http-api.md §1). */
export const BODY_READ_TIMEOUT_MS = 30_000;

/**
 * Reads the body as raw bytes.
 *
 * @throws {ApiError} 413 when larger than `maxBytes`; 400 `M_NOT_JSON` when the client stops
 * sending for longer than the timeout or the stream fails.
 */
export async function readBodyLimited(
  req: Request,
  options: { maxBytes: number; timeoutMs?: number; signal?: AbortSignal },
): Promise<Uint8Array> {
  const { maxBytes } = options;
  const declared = req.headers.get("content-length");
  if (declared !== null && /^[0-9]+$/.test(declared) && Number(declared) > maxBytes) {
    throw Errors.tooLarge();
  }
  if (req.body === null) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  const timeoutMs = options.timeoutMs ?? BODY_READ_TIMEOUT_MS;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("body read timed out")), timeoutMs);
  });
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), timeout]);
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw Errors.tooLarge();
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof ApiError) throw err;
    await reader.cancel().catch(() => {});
    throw Errors.notJson(err);
  } finally {
    clearTimeout(timer);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}
