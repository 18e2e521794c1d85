/**
 * Byte plumbing between two TCP connections for test fakes that forward connections
 * (a plain proxy, a homeserver front).
 *
 * @module
 */

function tryClose(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

/** Writes every byte of `data` to `conn`. */
export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) offset += await conn.write(data.subarray(offset));
}

async function pump(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(32 * 1024);
  for (;;) {
    const n = await from.read(buf);
    if (n === null) break;
    await writeAll(to, buf.subarray(0, n));
  }
  try {
    await to.closeWrite();
  } catch {
    // The peer may be gone already; the other direction ends on its own.
  }
}

/**
 * Copies bytes both ways until both directions ended (half-closes are passed on), then closes
 * both connections. An error in either direction closes both at once. Never rejects.
 */
export function splice(a: Deno.Conn, b: Deno.Conn): Promise<void> {
  let closed = false;
  const closeBoth = () => {
    if (closed) return;
    closed = true;
    tryClose(a);
    tryClose(b);
  };
  const direction = (from: Deno.Conn, to: Deno.Conn) => pump(from, to).catch(closeBoth);
  return Promise.all([direction(a, b), direction(b, a)]).then(closeBoth);
}

/** Closes a connection, ignoring "already closed". */
export function closeQuietly(conn: Deno.Conn): void {
  tryClose(conn);
}
