/**
 * Shared helpers of the launcher tests: run `bin/lk-jwt-service` as a child process with an
 * exact environment, optionally with the permission probe in place of the service
 * (`LK_JWT_ENTRY`), and small loopback servers.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ProbeAction, ProbeReport } from "./fixtures/permission_probe.ts";

export const LAUNCHER = new URL("../../bin/lk-jwt-service", import.meta.url).pathname;
export const PROBE = new URL("./fixtures/permission_probe.ts", import.meta.url).pathname;
export const BASE_ENV = { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" };

export interface Run {
  code: number;
  pid: number;
  stdout: string;
  stderr: string;
}

export async function run(
  args: string[],
  options: {
    env?: Record<string, string>;
    cwd?: string;
    command?: string;
    prefix?: string[];
    /** Standard input of the process (closed when absent). */
    stdin?: string;
  } = {},
): Promise<Run> {
  const command = options.prefix ? options.prefix[0]! : (options.command ?? LAUNCHER);
  const allArgs = options.prefix
    ? [...options.prefix.slice(1), options.command ?? LAUNCHER, ...args]
    : args;
  const child = new Deno.Command(command, {
    args: allArgs,
    env: { ...BASE_ENV, ...options.env },
    clearEnv: true,
    cwd: options.cwd,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    pid: child.pid,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

export async function probe(
  actions: ProbeAction[],
  env: Record<string, string>,
  options: { cwd?: string; prefix?: string[] } = {},
): Promise<{ run: Run; report: ProbeReport }> {
  const result = await run([], {
    ...options,
    stdin: JSON.stringify(actions),
    env: { LK_JWT_ENTRY: PROBE, ...env },
  });
  assert.equal(result.code, 0, result.stderr);
  return { run: result, report: JSON.parse(result.stdout) as ProbeReport };
}

/** A loopback port nothing listens on (just released). */
export function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

export async function withLoopbackServer(
  hostname: string,
  handler: () => Response,
  body: (port: number) => Promise<void>,
): Promise<void> {
  const server = Deno.serve({ hostname, port: 0, onListen() {} }, handler);
  try {
    await body(server.addr.port);
  } finally {
    await server.shutdown();
  }
}

export function unprivilegedPrefix(): string[] | undefined {
  if (Deno.uid() !== 0) return undefined;
  for (const path of ["/usr/bin/setpriv", "/bin/setpriv"]) {
    try {
      Deno.statSync(path);
      return [path, "--reuid=65534", "--regid=65534", "--clear-groups"];
    } catch {
      // try the next location
    }
  }
  return undefined;
}
