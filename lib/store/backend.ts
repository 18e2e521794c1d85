/**
 * The storage capability of the job store (delegation.md §10): one hash, four commands. The
 * Redis implementation is in `redis.ts`; {@linkcode MemoryHash} keeps the hash in process
 * memory (tests, and checks of the write ordering without a server).
 *
 * @module
 */

/**
 * Where {@linkcode import("./job_store.ts").JobStore} writes: one operation per field at a time;
 * every call rejects on failure and never hangs past its deadline.
 */
export interface WriteBackend<V> {
  /** Writes `value` for `field`. */
  set(field: string, value: V): Promise<void>;
  /** Removes `field`. */
  delete(field: string): Promise<void>;
  /** Closes the connection; later calls reject. */
  close(): Promise<void>;
}

/** Commands on the jobs hash; every call rejects on failure and never hangs past its deadline. */
export interface HashBackend extends WriteBackend<string> {
  /** `HSET <hash> field value`. */
  set(field: string, value: string): Promise<void>;
  /** `HDEL <hash> field`. */
  delete(field: string): Promise<void>;
  /** `HGETALL <hash>`, fields and values byte-exact. */
  getAll(): Promise<Map<string, string>>;
  /** `PING`. */
  ping(): Promise<void>;
  /** Closes the connection; later calls reject. */
  close(): Promise<void>;
}

/** A hash in process memory, with a switch to simulate an unreachable server. */
export class MemoryHash implements HashBackend {
  readonly data = new Map<string, string>();
  /** Every command in order, e.g. `HSET <field>` / `HDEL <field>`. */
  readonly log: string[] = [];
  /** While true every command rejects, as if the server were down. */
  down = false;
  #closed = false;

  #check(): void {
    if (this.#closed) throw new Error("store closed");
    if (this.down) throw new Error("store unavailable");
  }

  set(field: string, value: string): Promise<void> {
    try {
      this.#check();
    } catch (err) {
      return Promise.reject(err);
    }
    this.log.push(`HSET ${field}`);
    this.data.set(field, value);
    return Promise.resolve();
  }

  delete(field: string): Promise<void> {
    try {
      this.#check();
    } catch (err) {
      return Promise.reject(err);
    }
    this.log.push(`HDEL ${field}`);
    this.data.delete(field);
    return Promise.resolve();
  }

  getAll(): Promise<Map<string, string>> {
    try {
      this.#check();
    } catch (err) {
      return Promise.reject(err);
    }
    return Promise.resolve(new Map(this.data));
  }

  ping(): Promise<void> {
    try {
      this.#check();
    } catch (err) {
      return Promise.reject(err);
    }
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}
