/**
 * A real `redis-server` for tests: started on a free loopback port in a temporary directory,
 * stoppable and restartable on the same port (with its append-only file, so data written
 * before a stop is still there after a restart, like a production Redis with persistence).
 *
 * Used by the persistence tests of delegation.md §10 (restore, Redis outages).
 *
 * @module
 */

const REDIS_SERVER = "/usr/bin/redis-server";
/** How long a start may take before the test fails. */
const START_TIMEOUT_MS = 10_000;

/** Server certificate of a TLS test Redis, and the CA that issued it. */
export interface TestRedisTls {
  certPath: string;
  keyPath: string;
  caPem: string;
}

/** A running (or stopped) test Redis. */
export class TestRedis {
  readonly port: number;
  readonly dir: string;
  #child: Deno.ChildProcess | undefined;
  #password: string | undefined;
  #tls: TestRedisTls | undefined;

  private constructor(
    port: number,
    dir: string,
    options: { password?: string; tls?: TestRedisTls },
  ) {
    this.port = port;
    this.dir = dir;
    this.#password = options.password;
    this.#tls = options.tls;
  }

  /**
   * Starts a fresh server on a free port; `password` enables `requirepass`, `tls` makes it
   * accept only TLS connections (no client certificates).
   */
  static async start(
    options: { password?: string; tls?: TestRedisTls } = {},
  ): Promise<TestRedis> {
    const port = freePort();
    const dir = await Deno.makeTempDir({ prefix: "lk-jwt-redis-" });
    const redis = new TestRedis(port, dir, options);
    await redis.resume();
    return redis;
  }

  /** `redis://` or `rediss://` `127.0.0.1:<port>` (with the password when one is set). */
  get url(): string {
    const auth = this.#password === undefined ? "" : `:${encodeURIComponent(this.#password)}@`;
    return `${this.#tls ? "rediss" : "redis"}://${auth}127.0.0.1:${this.port}`;
  }

  /** Whether the server process is running. */
  get running(): boolean {
    return this.#child !== undefined;
  }

  /** Starts the server again on the same port and directory (after {@linkcode stop}). */
  async resume(): Promise<void> {
    if (this.#child) return;
    const ports = this.#tls
      ? [
        "--port",
        "0",
        "--tls-port",
        String(this.port),
        "--tls-cert-file",
        this.#tls.certPath,
        "--tls-key-file",
        this.#tls.keyPath,
        "--tls-auth-clients",
        "no",
      ]
      : ["--port", String(this.port)];
    const args = [
      ...ports,
      "--bind",
      "127.0.0.1",
      "--dir",
      this.dir,
      "--save",
      "",
      "--appendonly",
      "yes",
      "--appendfsync",
      "always",
      "--daemonize",
      "no",
      "--loglevel",
      "warning",
    ];
    if (this.#password !== undefined) args.push("--requirepass", this.#password);
    this.#child = new Deno.Command(REDIS_SERVER, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await this.#answers())) {
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`redis-server did not start on port ${this.port}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Stops the server process (data stays in the append-only file). */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
    await child.status;
  }

  /** Stops the server and removes its directory. */
  async dispose(): Promise<void> {
    await this.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  /** Sends one command in RESP and returns the raw reply text (for assertions and setup). */
  async command(...args: string[]): Promise<string> {
    const conn = await this.#connect();
    try {
      const parts: string[] = [];
      if (this.#password !== undefined) parts.push(encodeCommand(["AUTH", this.#password]));
      parts.push(encodeCommand(args));
      await writeAll(conn, new TextEncoder().encode(parts.join("")));
      const reader = new RespReader(conn);
      if (this.#password !== undefined) await reader.reply();
      return JSON.stringify(await reader.reply());
    } finally {
      conn.close();
    }
  }

  /** `HGETALL` of `key` as a map (byte-exact field and value strings). */
  async hgetall(key: string): Promise<Map<string, string>> {
    const conn = await this.#connect();
    try {
      const parts: string[] = [];
      if (this.#password !== undefined) parts.push(encodeCommand(["AUTH", this.#password]));
      parts.push(encodeCommand(["HGETALL", key]));
      await writeAll(conn, new TextEncoder().encode(parts.join("")));
      const reader = new RespReader(conn);
      if (this.#password !== undefined) await reader.reply();
      const reply = await reader.reply();
      const out = new Map<string, string>();
      if (!Array.isArray(reply)) throw new Error(`unexpected HGETALL reply ${String(reply)}`);
      for (let i = 0; i + 1 < reply.length; i += 2) out.set(String(reply[i]), String(reply[i + 1]));
      return out;
    } finally {
      conn.close();
    }
  }

  /** `HSET key field value` with raw strings (writes entries in any format). */
  async hset(key: string, field: string, value: string): Promise<void> {
    await this.command("HSET", key, field, value);
  }

  #connect(): Promise<Deno.Conn> {
    const addr = { hostname: "127.0.0.1", port: this.port };
    return this.#tls
      ? Deno.connectTls({ ...addr, caCerts: [this.#tls.caPem] })
      : Deno.connect(addr);
  }

  async #answers(): Promise<boolean> {
    try {
      const reply = await this.command("PING");
      return reply.includes("PONG");
    } catch {
      return false;
    }
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

function encodeCommand(args: string[]): string {
  const enc = new TextEncoder();
  let out = `*${args.length}\r\n`;
  for (const a of args) out += `$${enc.encode(a).byteLength}\r\n${a}\r\n`;
  return out;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.byteLength) off += await conn.write(data.subarray(off));
}

type Reply = string | number | null | Reply[];

/** Minimal RESP2 reply reader (enough for the commands above). */
class RespReader {
  #conn: Deno.Conn;
  #buf = new Uint8Array(0);

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  async #fill(): Promise<void> {
    const chunk = new Uint8Array(65536);
    const n = await this.#conn.read(chunk);
    if (n === null) throw new Error("connection closed");
    const next = new Uint8Array(this.#buf.byteLength + n);
    next.set(this.#buf);
    next.set(chunk.subarray(0, n), this.#buf.byteLength);
    this.#buf = next;
  }

  async #line(): Promise<string> {
    for (;;) {
      for (let i = 0; i + 1 < this.#buf.byteLength; i++) {
        if (this.#buf[i] === 13 && this.#buf[i + 1] === 10) {
          const line = new TextDecoder().decode(this.#buf.subarray(0, i));
          this.#buf = this.#buf.subarray(i + 2);
          return line;
        }
      }
      await this.#fill();
    }
  }

  async #bytes(n: number): Promise<string> {
    while (this.#buf.byteLength < n + 2) await this.#fill();
    const text = new TextDecoder().decode(this.#buf.subarray(0, n));
    this.#buf = this.#buf.subarray(n + 2);
    return text;
  }

  async reply(): Promise<Reply> {
    const line = await this.#line();
    const rest = line.slice(1);
    switch (line[0]) {
      case "+":
        return rest;
      case "-":
        return `ERR:${rest}`;
      case ":":
        return Number(rest);
      case "$":
        return Number(rest) < 0 ? null : await this.#bytes(Number(rest));
      case "*": {
        const n = Number(rest);
        if (n < 0) return null;
        const out: Reply[] = [];
        for (let i = 0; i < n; i++) out.push(await this.reply());
        return out;
      }
      default:
        throw new Error(`bad RESP line ${line}`);
    }
  }
}
