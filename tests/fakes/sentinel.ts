/**
 * A real Redis Sentinel set for tests (replicas.md §4): one master and one replica
 * (`redis-server`) and three `redis-sentinel` processes monitoring them (quorum 2, master seen
 * as down after 1 s), all on free loopback ports in a temporary directory. Debian packages
 * `redis-server` and `redis-sentinel` (installed by `scripts/bootstrap.sh`).
 *
 * @module
 */

const REDIS_SERVER = "/usr/bin/redis-server";
const REDIS_SENTINEL = "/usr/bin/redis-sentinel";
/** Name of the monitored master. */
export const SENTINEL_MASTER = "lkjwt";

/** A free loopback port (bound once by the kernel, then released). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Runs `redis-cli -p <port> <args…>` and returns its raw output lines. */
export async function redisCli(port: number, ...args: string[]): Promise<string[]> {
  const out = await new Deno.Command("redis-cli", {
    args: ["-h", "127.0.0.1", "-p", String(port), "--raw", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) throw new Error(`redis-cli ${args.join(" ")}: ${text}`);
  return text === "" ? [] : text.replace(/\n$/, "").split("\n");
}

async function poll(what: string, cond: () => Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await cond()) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`sentinel set: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The running set. */
export class TestSentinelSet {
  readonly dir: string;
  readonly sentinelPorts: number[];
  readonly #nodes = new Map<number, Deno.ChildProcess>();
  readonly #sentinels: Deno.ChildProcess[] = [];

  private constructor(dir: string, sentinelPorts: number[]) {
    this.dir = dir;
    this.sentinelPorts = sentinelPorts;
  }

  /**
   * Starts master, replica and three Sentinels (on `sentinelPorts` if given); resolves once the
   * Sentinels see everything.
   */
  static async start(
    options: { sentinelPorts?: number[] } = {},
  ): Promise<TestSentinelSet> {
    const dir = await Deno.makeTempDir({ prefix: "lk-jwt-sentinel-" });
    const set = new TestSentinelSet(
      dir,
      options.sentinelPorts ?? [freePort(), freePort(), freePort()],
    );
    try {
      const master = freePort();
      const replica = freePort();
      await set.#startNode(master);
      await set.#startNode(replica, master);
      for (const port of set.sentinelPorts) {
        const conf = `${dir}/sentinel-${port}.conf`;
        await Deno.writeTextFile(
          conf,
          [
            `port ${port}`,
            "bind 127.0.0.1",
            `dir ${dir}`,
            `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${master} 2`,
            `sentinel down-after-milliseconds ${SENTINEL_MASTER} 1000`,
            `sentinel failover-timeout ${SENTINEL_MASTER} 5000`,
            `sentinel parallel-syncs ${SENTINEL_MASTER} 1`,
            "",
          ].join("\n"),
        );
        set.#sentinels.push(
          new Deno.Command(REDIS_SENTINEL, {
            args: [conf, "--loglevel", "warning"],
            stdin: "null",
            stdout: "null",
            stderr: "null",
          }).spawn(),
        );
      }
      await poll("Sentinels to see the replica and each other", async () => {
        for (const port of set.sentinelPorts) {
          const info = await redisCli(port, "SENTINEL", "MASTER", SENTINEL_MASTER);
          const field = (name: string) => info[info.indexOf(name) + 1];
          if (field("num-slaves") !== "1" || field("num-other-sentinels") !== "2") return false;
        }
        return true;
      }, 30_000);
    } catch (err) {
      await set.dispose();
      throw err;
    }
    return set;
  }

  async #startNode(port: number, replicaOf?: number): Promise<void> {
    const args = [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      this.dir,
      "--dbfilename",
      `dump-${port}.rdb`,
      "--save",
      "",
      "--appendonly",
      "no",
      "--loglevel",
      "warning",
    ];
    if (replicaOf) args.push("--replicaof", "127.0.0.1", String(replicaOf));
    this.#nodes.set(
      port,
      new Deno.Command(REDIS_SERVER, { args, stdin: "null", stdout: "null", stderr: "null" })
        .spawn(),
    );
    await poll(`redis-server on ${port}`, async () => {
      const role = await redisCli(port, "ROLE");
      return replicaOf ? role[0] === "slave" && role[3] === "connected" : role[0] === "master";
    }, 10_000);
  }

  /** `LIVEKIT_REDIS_SENTINELS` for this set. */
  get sentinelsSetting(): string {
    return this.sentinelPorts.map((p) => `127.0.0.1:${p}`).join(",");
  }

  /** The master's port as the Sentinels announce it. */
  async masterPort(): Promise<number> {
    const [, port] = await redisCli(
      this.sentinelPorts[0]!,
      "SENTINEL",
      "GET-MASTER-ADDR-BY-NAME",
      SENTINEL_MASTER,
    );
    return Number(port);
  }

  /** Waits until the Sentinels name a master other than `old` and it accepts writes. */
  async #newMaster(old: number, timeoutMs: number): Promise<number> {
    let port = old;
    await poll("a new master", async () => {
      port = await this.masterPort();
      if (port === old) return false;
      return (await redisCli(port, "ROLE"))[0] === "master";
    }, timeoutMs);
    return port;
  }

  /** `SENTINEL FAILOVER`; resolves with the new master's port. */
  async failover(): Promise<number> {
    const old = await this.masterPort();
    await redisCli(this.sentinelPorts[0]!, "SENTINEL", "FAILOVER", SENTINEL_MASTER);
    return await this.#newMaster(old, 30_000);
  }

  /** `kill -9` of the current master; resolves with the promoted replica's port. */
  async killMaster(): Promise<number> {
    const old = await this.masterPort();
    const child = this.#nodes.get(old);
    if (!child) throw new Error(`no process for master ${old}`);
    child.kill("SIGKILL");
    await child.status;
    this.#nodes.delete(old);
    return await this.#newMaster(old, 30_000);
  }

  /** `HGETALL key` on a node. */
  async hgetall(port: number, key: string): Promise<Map<string, string>> {
    const lines = await redisCli(port, "HGETALL", key);
    const out = new Map<string, string>();
    for (let i = 0; i + 1 < lines.length; i += 2) out.set(lines[i]!, lines[i + 1]!);
    return out;
  }

  async dispose(): Promise<void> {
    for (const child of [...this.#sentinels, ...this.#nodes.values()]) {
      try {
        child.kill("SIGKILL");
      } catch {
        // gone
      }
      await child.status;
    }
    this.#sentinels.length = 0;
    this.#nodes.clear();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}
