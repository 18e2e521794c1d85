/**
 * Looks into the stack's Redis with `redis-cli` (delegation.md §10), independently of the
 * service's own client.
 *
 * @module
 */
import { REDIS_JOBS_KEY } from "./env.ts";

async function redisCli(args: string[]): Promise<string> {
  const out = await new Deno.Command("redis-cli", {
    args: ["-h", "127.0.0.1", "-p", "6379", "--no-raw", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`redis-cli ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** Raw output of `redis-cli --raw` for `args`. */
async function redisRaw(args: string[]): Promise<string[]> {
  const out = await new Deno.Command("redis-cli", {
    args: ["-h", "127.0.0.1", "-p", "6379", "--raw", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`redis-cli ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  const text = new TextDecoder().decode(out.stdout);
  return text === "" ? [] : text.replace(/\n$/, "").split("\n");
}

/** The job hash as field → parsed value. */
export async function jobEntries(): Promise<Map<string, Record<string, unknown>>> {
  const flat = await redisRaw(["HGETALL", REDIS_JOBS_KEY]);
  const entries = new Map<string, Record<string, unknown>>();
  for (let i = 0; i + 1 < flat.length; i += 2) {
    entries.set(flat[i] as string, JSON.parse(flat[i + 1] as string));
  }
  return entries;
}

/** The field the service writes for a job key: compact JSON `[room, identity]`. */
export function jobField(room: string, identity: string): string {
  return JSON.stringify([room, identity]);
}

/** Writes one job entry directly (to prepare restore scenarios). */
export async function setJobEntry(field: string, value: Record<string, unknown>): Promise<void> {
  await redisCli(["HSET", REDIS_JOBS_KEY, field, JSON.stringify(value)]);
}

/** Empties the stack's Redis database. */
export async function flushRedis(): Promise<void> {
  await redisCli(["FLUSHDB"]);
}

/** The replica that owns a job field (`lk-jwt:owners`, replicas.md §3), if any. */
export async function jobOwner(field: string): Promise<string | undefined> {
  const [owner] = await redisRaw(["HGET", "lk-jwt:owners", field]);
  return owner === undefined || owner === "" ? undefined : owner;
}
