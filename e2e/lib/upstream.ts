/**
 * nginx as a round-robin load balancer in front of several replicas of the service
 * (replicas.md §4 "Real stack"): it listens on the service's usual address, 127.0.0.1:8080,
 * which is also the SFU's webhook target (e2e/config/livekit.yaml), so clients and the SFU's
 * webhooks reach a replica chosen by nginx. A replica that refuses connections (killed) is
 * skipped, as in a Kubernetes Service.
 *
 * @module
 */
import { SERVICE_BIND, stackPaths } from "./env.ts";
import { waitFor } from "./poll.ts";

/** A running load balancer; `stop()` it at the end. */
export interface Upstream {
  readonly url: string;
  stop(): Promise<void>;
}

async function nginx(args: string[]): Promise<void> {
  const out = await new Deno.Command("nginx", { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`nginx ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Starts nginx balancing `SERVICE_BIND` over `backends` (`host:port`). */
export async function startUpstream(backends: readonly string[]): Promise<Upstream> {
  const run = stackPaths().run;
  const conf = `${run}/nginx-replicas.conf`;
  await Deno.mkdir(`${run}/nginx-replicas-tmp`, { recursive: true });
  await Deno.writeTextFile(
    conf,
    `worker_processes 1;
pid ${run}/nginx-replicas.pid;
error_log ${run}/nginx-replicas-error.log info;
daemon on;
user root;
events { worker_connections 128; }
http {
  access_log ${run}/nginx-replicas-access.log;
  client_body_temp_path ${run}/nginx-replicas-tmp/body;
  proxy_temp_path ${run}/nginx-replicas-tmp/proxy;
  fastcgi_temp_path ${run}/nginx-replicas-tmp/fastcgi;
  uwsgi_temp_path ${run}/nginx-replicas-tmp/uwsgi;
  scgi_temp_path ${run}/nginx-replicas-tmp/scgi;
  upstream lk_jwt_replicas {
${backends.map((b) => `    server ${b} max_fails=1 fail_timeout=10s;`).join("\n")}
  }
  server {
    listen ${SERVICE_BIND};
    location / {
      proxy_pass http://lk_jwt_replicas;
      proxy_next_upstream error timeout;
      proxy_connect_timeout 2s;
      proxy_set_header X-Forwarded-For $remote_addr;
    }
  }
}
`,
  );
  await nginx(["-c", conf, "-p", run, "-e", `${run}/nginx-replicas-error.log`]);
  const url = `http://${SERVICE_BIND}`;
  await waitFor(async () => {
    const res = await fetch(`${url}/healthz`).catch(() => undefined);
    await res?.body?.cancel();
    return res?.status === 200;
  }, { what: "nginx in front of the replicas", timeoutMs: 10_000, intervalMs: 50 });
  return {
    url,
    async stop() {
      await nginx(["-c", conf, "-p", run, "-e", `${run}/nginx-replicas-error.log`, "-s", "quit"])
        .catch(() => {});
      await waitFor(async () => {
        const res = await fetch(`${url}/healthz`).catch(() => undefined);
        await res?.body?.cancel();
        return res === undefined;
      }, { what: "nginx to stop", timeoutMs: 10_000, intervalMs: 50 });
    },
  };
}
