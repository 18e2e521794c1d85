/**
 * A TCP forwarder on 127.0.0.1:0 that can cut one client off from a server the way a network
 * partition does: `block()` stops moving bytes in both directions (connections stay open,
 * nothing arrives, like packets dropped by a firewall) and `unblock()` lets the held bytes
 * through again. Used to partition one replica from Redis while the others keep talking to it.
 *
 * @module
 */

/** A running forwarder. */
export interface TcpProxy {
  readonly port: number;
  /** Whether bytes are being held. */
  readonly blocked: boolean;
  block(): void;
  unblock(): void;
  close(): Promise<void>;
}

/** Forwards 127.0.0.1:<port> to `target`. */
export function startTcpProxy(target: { hostname: string; port: number }): TcpProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let blocked = false;
  let waiters: (() => void)[] = [];
  const gate = () => blocked ? new Promise<void>((r) => waiters.push(r)) : Promise.resolve();

  async function pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await from.read(buf);
        if (n === null) break;
        await gate();
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
      }
    } catch {
      // closed
    }
    for (const c of [from, to]) {
      try {
        c.close();
      } catch {
        // already closed
      }
      conns.delete(c);
    }
  }

  const accepting = (async () => {
    for await (const client of listener) {
      let server: Deno.Conn;
      try {
        server = await Deno.connect(target);
      } catch {
        client.close();
        continue;
      }
      conns.add(client);
      conns.add(server);
      void pipe(client, server);
      void pipe(server, client);
    }
  })().catch(() => {});

  return {
    port: (listener.addr as Deno.NetAddr).port,
    get blocked() {
      return blocked;
    },
    block() {
      blocked = true;
    },
    unblock() {
      blocked = false;
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    },
    async close() {
      this.unblock();
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
      await accepting;
    },
  };
}
