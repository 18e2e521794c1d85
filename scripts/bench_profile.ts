/**
 * CPU and allocation profiles of a running service through the V8 inspector (`--inspect`), for
 * `scripts/bench_tokens.ts --profile=<dir>`: starts V8's sampling CPU profiler and its sampling
 * heap profiler (allocation sampling), and on `stop()` writes `cpu.cpuprofile` and
 * `alloc.heapprofile` (open them in Chrome DevTools) and returns the top functions by self time
 * and by sampled allocation.
 *
 * @module
 */

interface CdpReply {
  id?: number;
  result?: Record<string, unknown>;
  error?: { message: string };
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  selfSize?: number;
  children?: (number | ProfileNode)[];
}

/** A profiling session on the inspector at `port`. */
export async function startProfiling(port: number) {
  let targets: { webSocketDebuggerUrl: string }[] = [];
  for (let i = 0; i < 50 && targets.length === 0; i++) {
    targets = await fetch(`http://127.0.0.1:${port}/json/list`).then((r) => r.json()).catch(
      () => [],
    );
    if (targets.length === 0) await new Promise((r) => setTimeout(r, 100));
  }
  const ws = new WebSocket(targets[0]!.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  let next = 1;
  const pending = new Map<number, (reply: CdpReply) => void>();
  ws.onmessage = (e) => {
    const reply: CdpReply = JSON.parse(String(e.data));
    if (reply.id !== undefined) pending.get(reply.id)?.(reply);
  };
  const send = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const id = next++;
      pending.set(id, (reply) => {
        pending.delete(id);
        if (reply.error) reject(new Error(`${method}: ${reply.error.message}`));
        else resolve(reply.result ?? {});
      });
      ws.send(JSON.stringify({ id, method, params }));
    });
  await send("Profiler.enable");
  await send("Profiler.setSamplingInterval", { interval: 200 });
  await send("HeapProfiler.enable");
  await send("Profiler.start");
  await send("HeapProfiler.startSampling", { samplingInterval: 4096 });

  const label = (f: ProfileNode["callFrame"]) =>
    `${f.functionName || "(anonymous)"} ${f.url.replace(/^.*\/(lib|ext|npm)\//, "$1/")}:${
      f.lineNumber + 1
    }`;

  return {
    /** Stops both profilers, writes the files, returns the top entries. */
    async stop(dir: string, top = 15): Promise<{ cpu: string[]; alloc: string[] }> {
      const { profile } = await send("Profiler.stop") as {
        profile: { nodes: ProfileNode[]; samples: number[] };
      };
      const { profile: heap } = await send("HeapProfiler.stopSampling") as {
        profile: { head: ProfileNode };
      };
      ws.close();
      await Deno.mkdir(dir, { recursive: true });
      await Deno.writeTextFile(`${dir}/cpu.cpuprofile`, JSON.stringify(profile));
      await Deno.writeTextFile(`${dir}/alloc.heapprofile`, JSON.stringify(heap));
      const self = new Map<string, number>();
      for (const node of profile.nodes) {
        const key = label(node.callFrame);
        self.set(key, (self.get(key) ?? 0) + (node.hitCount ?? 0));
      }
      const samples = profile.samples.length;
      const cpu = [...self].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) =>
        `${(100 * v / samples).toFixed(1).padStart(5)} %  ${k}`
      );
      const bytes = new Map<string, number>();
      let total = 0;
      const walk = (node: ProfileNode) => {
        const key = label(node.callFrame);
        bytes.set(key, (bytes.get(key) ?? 0) + (node.selfSize ?? 0));
        total += node.selfSize ?? 0;
        for (const child of node.children ?? []) if (typeof child === "object") walk(child);
      };
      walk(heap.head);
      const alloc = [...bytes].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) =>
        `${(100 * v / total).toFixed(1).padStart(5)} %  ${k}`
      );
      return { cpu, alloc };
    },
  };
}
