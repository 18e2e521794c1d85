/**
 * A scripted HTTP/1.1 server on a raw loopback socket, for tests of the built-in HTTP/1.1
 * client that need exact control over the bytes of a response (framing, interim responses,
 * closing a kept-alive connection, never answering).
 *
 * @module
 */
import { closeQuietly, writeAll } from "../support/pipe.ts";

/** A request as received. */
export interface RawRequest {
  method: string;
  target: string;
  headers: Headers;
  body: string;
  /** 1-based number of the connection it arrived on. */
  connection: number;
}

/**
 * What the server does with a request: write these bytes (and keep reading), write them and
 * close, close without answering, or never answer.
 */
export type RawReply =
  | { send: string | Uint8Array; close?: boolean }
  | { close: true }
  | { hang: true };

/** A running raw server. */
export interface RawServer {
  port: number;
  requests: RawRequest[];
  /** Connections accepted so far. */
  readonly connections: number;
  /** Connections the client closed (end of stream seen). */
  readonly clientCloses: number;
  /** Connections the server closed on its own (a reply with `close`). */
  readonly serverCloses: number;
  close(): Promise<void>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** `HTTP/1.1 <status>` with `Content-Length` framing and optional extra header lines. */
export function reply(status: number, body = "", extra: string[] = []): string {
  const head = [`HTTP/1.1 ${status} X`, `Content-Length: ${encoder.encode(body).byteLength}`];
  return [...head, ...extra, "", body].join("\r\n");
}

async function readRequest(
  conn: Deno.Conn,
  state: { buf: Uint8Array },
): Promise<Omit<RawRequest, "connection"> | undefined> {
  for (;;) {
    const text = decoder.decode(state.buf);
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) {
      const lines = text.slice(0, end).split("\r\n");
      const [method = "", target = ""] = (lines[0] ?? "").split(" ");
      const headers = new Headers();
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(":");
        headers.append(line.slice(0, colon), line.slice(colon + 1).trim());
      }
      const length = Number(headers.get("content-length") ?? "0");
      const headBytes = encoder.encode(text.slice(0, end + 4)).byteLength;
      if (state.buf.byteLength >= headBytes + length) {
        const body = decoder.decode(state.buf.subarray(headBytes, headBytes + length));
        state.buf = state.buf.slice(headBytes + length);
        return { method, target, headers, body };
      }
    }
    const chunk = new Uint8Array(4096);
    const n = await conn.read(chunk).catch(() => null);
    if (n === null) return undefined;
    const next = new Uint8Array(state.buf.byteLength + n);
    next.set(state.buf);
    next.set(chunk.subarray(0, n), state.buf.byteLength);
    state.buf = next;
  }
}

/** Starts the server; `respond` decides per request. */
export function startRawServer(respond: (req: RawRequest) => RawReply): RawServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  const requests: RawRequest[] = [];
  let connections = 0;
  let clientCloses = 0;
  let serverCloses = 0;

  async function serve(conn: Deno.Conn, connection: number): Promise<void> {
    const state = { buf: new Uint8Array(0) };
    for (;;) {
      const req = await readRequest(conn, state);
      if (!req) {
        clientCloses++;
        return closeQuietly(conn);
      }
      const full = { ...req, connection };
      requests.push(full);
      const action = respond(full);
      if ("hang" in action) {
        // Never answers; waits for the client (or close()) to end the connection.
        await conn.read(new Uint8Array(1)).catch(() => null);
        clientCloses++;
        return closeQuietly(conn);
      }
      if ("send" in action) {
        const bytes = typeof action.send === "string" ? encoder.encode(action.send) : action.send;
        await writeAll(conn, bytes).catch(() => {});
      }
      if (action.close) {
        serverCloses++;
        return closeQuietly(conn);
      }
    }
  }

  const loop = (async () => {
    try {
      for await (const conn of listener) {
        conns.add(conn);
        const task = serve(conn, ++connections).finally(() => {
          conns.delete(conn);
          tasks.delete(task);
        });
        tasks.add(task);
      }
    } catch {
      // Listener closed.
    }
  })();

  return {
    port: listener.addr.port,
    requests,
    get connections() {
      return connections;
    },
    get clientCloses() {
      return clientCloses;
    },
    get serverCloses() {
      return serverCloses;
    },
    async close() {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      for (const conn of conns) closeQuietly(conn);
      await loop;
      await Promise.allSettled([...tasks]);
    },
  };
}
