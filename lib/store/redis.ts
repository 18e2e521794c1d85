/**
 * The Redis {@linkcode HashBackend} (delegation.md §10.1, §10.3): the four commands of the jobs
 * hash on one {@linkcode RedisConnection} (direct or through Sentinel, replicas.md R8).
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { Logger } from "../log.ts";
import type { HashBackend } from "./backend.ts";
import { JOBS_HASH } from "./codec.ts";
import type { RedisTarget } from "../config/redis_url.ts";
import type { RedisEndpoint } from "../config/redis_url.ts";
import { RedisConnection } from "./redis_connection.ts";

export {
  RECONNECT_FIRST_MS,
  RECONNECT_MAX_MS,
  REDIS_COMMAND_TIMEOUT_MS,
  RedisTimeoutError,
} from "./redis_connection.ts";

/** Options of {@linkcode RedisBackend}. */
export interface RedisBackendOptions {
  clock: Clock;
  log: Logger;
  /** Extra trust roots (`SSL_CERT_FILE`) added to the default list for `rediss://`. */
  caCerts?: readonly string[];
  /** `LIVEKIT_INSECURE_SKIP_VERIFY_TLS` (D11): also applies to Redis TLS. */
  skipVerifyTls?: boolean;
  /** Called each time the connection becomes ready (first connect and reconnects). */
  onReady?: () => void;
  commandTimeoutMs?: number;
}

/** One Redis connection for the jobs hash. */
export class RedisBackend implements HashBackend {
  readonly target: RedisTarget;
  /** The connection, shared with replica coordination when that is on. */
  readonly connection: RedisConnection;

  constructor(where: RedisEndpoint | RedisTarget, options: RedisBackendOptions) {
    const endpoint: RedisEndpoint = "target" in where
      ? where
      : { target: where, display: where.display };
    this.target = endpoint.target;
    this.connection = new RedisConnection(endpoint, options);
  }

  /** Whether commands can be sent now. */
  get ready(): boolean {
    return this.connection.ready;
  }

  /** The last connection error, for the startup message. */
  get lastError(): unknown {
    return this.connection.lastError;
  }

  /** Starts connecting (and reconnecting) in the background. */
  connect(): void {
    this.connection.connect();
  }

  /** Resolves true once ready, false after `timeoutMs`. */
  waitReady(timeoutMs: number): Promise<boolean> {
    return this.connection.waitReady(timeoutMs);
  }

  async set(field: string, value: string): Promise<void> {
    await this.connection.command(["HSET", JOBS_HASH, field, value]);
  }

  async delete(field: string): Promise<void> {
    await this.connection.command(["HDEL", JOBS_HASH, field]);
  }

  async getAll(): Promise<Map<string, string>> {
    return hashReply(await this.connection.command(["HGETALL", JOBS_HASH]));
  }

  async ping(): Promise<void> {
    const reply = await this.connection.command(["PING"]);
    if (reply !== "PONG") throw new Error(`unexpected PING reply ${String(reply)}`);
  }

  close(): Promise<void> {
    return this.connection.close();
  }
}

/** An `HGETALL` reply (RESP2 flat array, or a map) as field → value. */
export function hashReply(reply: unknown): Map<string, string> {
  const out = new Map<string, string>();
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) {
      out.set(String(reply[i]), String(reply[i + 1]));
    }
  } else if (reply && typeof reply === "object") {
    for (const [k, v] of Object.entries(reply)) out.set(k, String(v));
  }
  return out;
}
