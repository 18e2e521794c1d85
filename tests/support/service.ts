/**
 * Starts the real service as a process through the launcher (`bin/lk-jwt-service`), the way
 * operators and the container run it, on 127.0.0.1 port 0, and captures its log.
 *
 * @module
 */

const ROOT = new URL("../../", import.meta.url).pathname;

/** A running service process. */
export interface ServiceProcess {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** Everything written to stderr so far. */
  logs(): string;
  /** Waits until a log line matches. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends a signal and waits for the exit status. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
  readonly status: Promise<Deno.CommandStatus>;
}

/** Options of {@linkcode spawnService}. */
export interface SpawnOptions {
  env: Record<string, string>;
  args?: string[];
  cwd?: string;
  /** Resolve once `Listening` is logged (default) or right away. */
  waitReady?: boolean;
  /**
   * Run `main.ts` with `deno run -A` and these extra flags instead of the launcher (the way
   * Deno Deploy runs it: no launcher, every permission).
   */
  direct?: string[];
}

/** A free loopback port (bound once by the kernel, then released). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Base environment for a service pointed at fakes. */
export function baseEnv(sfuUrl: string): Record<string, string> {
  return {
    LIVEKIT_URL: sfuUrl,
    LIVEKIT_KEY: "devkey",
    LIVEKIT_SECRET: "devsecret-devsecret-devsecret-devsecret",
    LIVEKIT_JWT_BIND: "127.0.0.1:0",
    LIVEKIT_LOG_LEVEL: "debug",
  };
}

/** Spawns the launcher with exactly `env` (plus PATH/HOME and the Deno cache). */
export async function spawnService(options: SpawnOptions): Promise<ServiceProcess> {
  const env: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/tmp",
    ...options.env,
  };
  const denoDir = Deno.env.get("DENO_DIR");
  if (denoDir) env.DENO_DIR = denoDir;
  const command = options.direct
    ? [
      Deno.execPath(),
      "run",
      "-A",
      "--quiet",
      `--config=${ROOT}deno.json`,
      "--frozen",
      ...options.direct,
      `${ROOT}main.ts`,
    ]
    : ["sh", `${ROOT}bin/lk-jwt-service`];
  const child = new Deno.Command(command[0]!, {
    args: [...command.slice(1), ...(options.args ?? [])],
    env,
    clearEnv: true,
    // Not the repository: a developer's .env there must not leak into the test's environment.
    cwd: options.cwd ?? "/",
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let log = "";
  const waiters: Array<() => void> = [];
  const decoder = new TextDecoder();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) {
      log += decoder.decode(chunk, { stream: true });
      for (const w of waiters.splice(0)) w();
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const status = child.status.then(async (s) => {
    await pumps;
    for (const w of waiters.splice(0)) w();
    return s;
  });
  let exited = false;
  status.then(() => (exited = true));

  async function waitForLog(pattern: RegExp, timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = pattern.exec(log);
      if (m) return m[0];
      if (exited) throw new Error(`service exited before logging ${pattern}:\n${log}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${pattern}; log:\n${log}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  let port = Number(/:(\d+)$/.exec(options.env.LIVEKIT_JWT_BIND ?? "")?.[1] ?? 0);
  if ((options.waitReady ?? true) && port === 0) {
    const line = await waitForLog(/Listening address=\S+:(\d+)/);
    port = Number(/:(\d+)$/.exec(line)![1]);
  } else if (options.waitReady ?? true) {
    // A fixed port (quiet log levels): poll /healthz like an orchestrator would.
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (exited) throw new Error(`service exited:\n${log}`);
      const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok).catch(() =>
        false
      );
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`service not healthy in time:\n${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    pid: child.pid,
    logs: () => log,
    waitForLog,
    status,
    async stop(signal: Deno.Signal = "SIGTERM") {
      if (!exited) {
        try {
          child.kill(signal);
        } catch {
          // Already gone.
        }
      }
      return await status;
    },
  };
}
