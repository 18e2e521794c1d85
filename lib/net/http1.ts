/**
 * One HTTP/1.1 exchange at a time on a TCP or TLS connection (RFC 9112): the wire format of
 * every outbound request (lib/net/http1_pool.ts; openid-and-discovery.md §8.5, delegation.md §4).
 *
 * Owns: encoding a request (origin-form target, `Host`, the caller's headers, `Content-Length`
 * framing; no `Connection` header, so the connection stays alive), reading the response head
 * (up to 8 interim 1xx responses skipped, heads above 64 KiB refused), reading the body under the
 * caller's byte cap whatever its framing (`Content-Length`, chunked, or until the connection
 * closes; HTTP/1.0 answers too), and saying whether the connection can carry another request.
 * Every failure leaves the connection unusable: the pool closes it, so a body is always read
 * completely or the connection dropped.
 *
 * Content codings: requests say `Accept-Encoding: identity` (lib/net/outbound.ts), and a
 * non-empty body with any other `Content-Encoding` is refused (kind `other`) rather than
 * decoded: every body we read is small JSON, and decoding would let a few capped bytes expand
 * into far more than the cap.
 *
 * @module
 */
import { OutboundError, redactUrl } from "./outbound_error.ts";
import { writeAll } from "./dial.ts";

/** Response heads (status line and header fields) larger than this are refused. */
export const MAX_HEAD_BYTES = 64 * 1024;
/** Interim (1xx) responses skipped before the final one; more are refused. */
const MAX_INTERIM = 8;
/** Chunk-size and trailer lines longer than this are refused. */
const MAX_LINE_BYTES = 8 * 1024;
const INITIAL_BUFFER = 4 * 1024;
const UNTIL_CLOSE_CHUNK = 16 * 1024;
const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** Request headers the exchange sets itself (framing and connection management). */
const OWN_HEADERS = new Set(["host", "content-length", "transfer-encoding", "connection"]);
const PLACEHOLDER_URL = new URL("http://invalid/");
/** Only ASCII characters (one byte each in UTF-8). */
const ASCII = /^[^\u0080-\uffff]*$/;
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/;

/** A request to write. */
export interface Http1Request {
  method: string;
  /** The URL the request is for: `Host` is its host (with a non-default port), target its path. */
  url: URL;
  /** Validated header fields, names in lower case (see `headerFields` in lib/net/outbound.ts). */
  headers: readonly [string, string][];
  body: string | undefined;
}

/** A complete response. */
export interface Http1Response {
  readonly status: number;
  /** Built on first use: most callers look at the status only. */
  readonly headers: Headers;
  readonly body: Uint8Array;
  /** Whether the connection may carry another request. */
  readonly reusable: boolean;
}

function utf8Length(text: string): number {
  return ASCII.test(text) ? text.length : encoder.encode(text).byteLength;
}

/**
 * The whole request (head and body) as text; the connection encodes it into its own buffer, so
 * a request costs one write and no allocation of its own.
 */
export function requestText(req: Http1Request): string {
  let text =
    `${req.method} ${req.url.pathname}${req.url.search} HTTP/1.1\r\nHost: ${req.url.host}\r\n`;
  for (const [name, value] of req.headers) {
    if (!OWN_HEADERS.has(name)) text += `${name}: ${value}\r\n`;
  }
  if (req.body !== undefined || req.method === "POST") {
    text += `Content-Length: ${req.body === undefined ? 0 : utf8Length(req.body)}\r\n`;
  }
  return `${text}\r\n${req.body ?? ""}`;
}

interface Head {
  status: number;
  minor: number;
  /** Header fields as received (names validated, values trimmed). */
  fields: [string, string][];
  /** The framing and connection fields, combined as `Headers.get` would. */
  contentLength: string | null;
  transferEncoding: string | null;
  connection: string | null;
  contentEncoding: string | null;
}

/** RFC 9110 token characters: a header field name. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Anything but HTAB, visible ASCII, space and obs-text in a field value. */
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

function combine(previous: string | null, value: string): string {
  return previous === null ? value : `${previous}, ${value}`;
}

class ParsedResponse implements Http1Response {
  readonly status: number;
  readonly body: Uint8Array;
  readonly reusable: boolean;
  #fields: [string, string][];
  #headers: Headers | undefined;

  constructor(head: Head, body: Uint8Array, reusable: boolean) {
    this.status = head.status;
    this.body = body;
    this.reusable = reusable;
    this.#fields = head.fields;
  }

  get headers(): Headers {
    this.#headers ??= new Headers(this.#fields);
    return this.#headers;
  }
}

type Framing = "none" | "length" | "chunked" | "close";

function protocolError(url: URL, why: string): OutboundError {
  return new OutboundError("other", `invalid response from ${redactUrl(url)}: ${why}`, {
    url: redactUrl(url),
  });
}

function tooLarge(url: URL, max: number): OutboundError {
  return new OutboundError("too_large", `response from ${redactUrl(url)} exceeds ${max} bytes`, {
    url: redactUrl(url),
  });
}

function listTokens(value: string | null): string[] {
  return value === null ? [] : value.split(",").map((t) => t.trim().toLowerCase());
}

function contentLength(value: string, url: URL): number {
  const values = value.split(",").map((v) => v.trim());
  const first = values[0] ?? "";
  if (!/^\d{1,15}$/.test(first) || values.some((v) => v !== first)) {
    throw protocolError(url, "bad Content-Length");
  }
  return Number(first);
}

function concat(parts: readonly Uint8Array[], total: number): Uint8Array {
  const only = parts[0];
  if (parts.length === 1 && only?.byteLength === total) return only;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.byteLength;
  }
  return out;
}

/** A connection that carries one HTTP/1.1 exchange at a time. */
export class Http1Connection {
  readonly #conn: Deno.Conn;
  #buf = new Uint8Array(INITIAL_BUFFER);
  #start = 0;
  #end = 0;
  #closed = false;
  /** URL and cap of the exchange in progress (for error messages and the cap). */
  #url: URL = PLACEHOLDER_URL;
  #max = 0;
  /** Exchanges completed on this connection. */
  exchanges = 0;
  /** Whether the response of the current exchange has sent any byte yet. */
  responseStarted = false;
  /** Monotonic time the connection went idle (kept by the pool). */
  idleSince = 0;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Whether {@linkcode close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Closes the socket; a pending read or write fails. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }

  /**
   * Writes `request` (from {@linkcode requestText}) and reads the whole response, failing with
   * `too_large` beyond `maxBodyBytes`. After any failure the connection must be closed.
   */
  async exchange(
    request: string,
    options: { method: string; url: URL; maxBodyBytes: number },
  ): Promise<Http1Response> {
    const { url } = options;
    this.#url = url;
    this.#max = options.maxBodyBytes;
    this.responseStarted = false;
    if (this.#end !== this.#start) throw protocolError(url, "unexpected bytes before the response");
    this.#start = this.#end = 0;
    // The read buffer is free between exchanges: the request is encoded into it.
    let encoded = encoder.encodeInto(request, this.#buf);
    while (encoded.read < request.length) {
      this.#buf = new Uint8Array(Math.max(this.#buf.length * 2, request.length * 3));
      encoded = encoder.encodeInto(request, this.#buf);
    }
    await writeAll(this.#conn, this.#buf.subarray(0, encoded.written));
    let head = await this.#readHead();
    for (let interim = 0; head.status < 200; interim++) {
      if (head.status === 101) throw protocolError(url, "unexpected protocol switch");
      if (interim === MAX_INTERIM) throw protocolError(url, "too many interim responses");
      head = await this.#readHead();
    }
    const framing = this.#framing(head, options.method);
    let body: Uint8Array;
    if (framing === "none") body = EMPTY;
    else if (framing === "length" && head.contentLength !== null) {
      const taken = this.#readLength(contentLength(head.contentLength, url));
      body = taken instanceof Uint8Array ? taken : await taken;
    } else if (framing === "chunked") body = await this.#readChunked();
    else body = await this.#readUntilClose();
    if (
      body.byteLength > 0 && head.contentEncoding !== null &&
      listTokens(head.contentEncoding).some((t) => t !== "identity" && t !== "")
    ) {
      throw protocolError(url, `unsupported Content-Encoding ${head.contentEncoding.slice(0, 64)}`);
    }
    this.exchanges++;
    const keepAlive = head.minor === 1 && !listTokens(head.connection).includes("close");
    const reusable = keepAlive && framing !== "close" && this.#start === this.#end &&
      !this.#closed;
    return new ParsedResponse(head, body, reusable);
  }

  #framing(head: Head, method: string): Framing {
    if (method === "HEAD" || head.status === 204 || head.status === 304) return "none";
    const te = head.transferEncoding;
    if (te !== null) return listTokens(te).at(-1) === "chunked" ? "chunked" : "close";
    return head.contentLength !== null ? "length" : "close";
  }

  #fail(why: string): OutboundError {
    return protocolError(this.#url, why);
  }

  #tooLarge(): OutboundError {
    return tooLarge(this.#url, this.#max);
  }

  /** Reads more bytes into the buffer (compacting or growing it); false at end of stream. */
  async #fill(limit: number): Promise<boolean> {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#end === this.#buf.length) {
      if (this.#start > 0) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      } else {
        if (this.#buf.length >= limit) throw this.#fail("line too long");
        const bigger = new Uint8Array(Math.min(this.#buf.length * 2, limit));
        bigger.set(this.#buf.subarray(0, this.#end));
        this.#buf = bigger;
      }
    }
    const n = await this.#conn.read(this.#buf.subarray(this.#end));
    if (n === null) return false;
    this.#end += n;
    this.responseStarted = true;
    return true;
  }

  /** Index just past the first CRLF (or CRLFCRLF when `blank`) in the buffer, or -1. */
  #find(blank: boolean): number {
    const buf = this.#buf;
    const width = blank ? 4 : 2;
    for (let i = this.#start; i + width <= this.#end; i++) {
      if (buf[i] !== 13 || buf[i + 1] !== 10) continue;
      if (!blank || (buf[i + 2] === 13 && buf[i + 3] === 10)) return i + width;
    }
    return -1;
  }

  async #readHead(): Promise<Head> {
    for (;;) {
      const end = this.#find(true);
      if (end >= 0) {
        const text = decoder.decode(this.#buf.subarray(this.#start, end - 4));
        this.#start = end;
        return this.#parseHead(text);
      }
      if (this.#end - this.#start >= MAX_HEAD_BYTES) throw this.#fail("response head too large");
      if (!await this.#fill(MAX_HEAD_BYTES + 4)) {
        throw this.#fail(
          this.responseStarted ? "connection closed inside the response head" : "connection closed",
        );
      }
    }
  }

  #parseHead(text: string): Head {
    const lines = text.split("\r\n");
    const m = STATUS_LINE.exec(lines[0] ?? "");
    if (!m) throw this.#fail("bad status line");
    const head: Head = {
      status: Number(m[2]),
      minor: Number(m[1]),
      fields: [],
      contentLength: null,
      transferEncoding: null,
      connection: null,
      contentEncoding: null,
    };
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i] ?? "";
      const colon = line.indexOf(":");
      if (colon <= 0 || line[0] === " " || line[0] === "\t") throw this.#fail("bad header line");
      const name = line.slice(0, colon);
      const value = line.slice(colon + 1).trim();
      if (!TOKEN.test(name)) throw this.#fail("bad header line");
      if (BAD_VALUE.test(value)) throw this.#fail("bad header field");
      head.fields.push([name, value]);
      const lower = name.toLowerCase();
      if (lower === "content-length") head.contentLength = combine(head.contentLength, value);
      else if (lower === "transfer-encoding") {
        head.transferEncoding = combine(head.transferEncoding, value);
      } else if (lower === "connection") head.connection = combine(head.connection, value);
      else if (lower === "content-encoding") {
        head.contentEncoding = combine(head.contentEncoding, value);
      }
    }
    return head;
  }

  async #readLine(): Promise<string> {
    for (;;) {
      const end = this.#find(false);
      if (end >= 0) {
        const line = decoder.decode(this.#buf.subarray(this.#start, end - 2));
        this.#start = end;
        return line;
      }
      if (this.#end - this.#start >= MAX_LINE_BYTES) throw this.#fail("line too long");
      if (!await this.#fill(MAX_LINE_BYTES + 2)) throw this.#fail("connection closed in the body");
    }
  }

  /**
   * Moves `length` body bytes into their own array: first from the buffer, then straight from
   * the socket.
   */
  #take(length: number): Uint8Array | Promise<Uint8Array> {
    const out = new Uint8Array(length);
    const got = Math.min(length, this.#end - this.#start);
    out.set(this.#buf.subarray(this.#start, this.#start + got));
    this.#start += got;
    return got === length ? out : this.#takeRest(out, got);
  }

  async #takeRest(out: Uint8Array, got: number): Promise<Uint8Array> {
    while (got < out.byteLength) {
      const n = await this.#conn.read(out.subarray(got));
      if (n === null) throw this.#fail("connection closed in the body");
      got += n;
    }
    return out;
  }

  #readLength(length: number): Uint8Array | Promise<Uint8Array> {
    if (length > this.#max) throw this.#tooLarge();
    return length === 0 ? EMPTY : this.#take(length);
  }

  async #readChunked(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const line = await this.#readLine();
      const sizeText = (line.split(";", 1)[0] ?? "").trim();
      if (!/^[0-9a-fA-F]{1,12}$/.test(sizeText)) throw this.#fail("bad chunk size");
      const size = parseInt(sizeText, 16);
      if (size === 0) break;
      if (total + size > this.#max) throw this.#tooLarge();
      parts.push(await this.#take(size));
      total += size;
      if (await this.#readLine() !== "") throw this.#fail("bad chunk end");
    }
    let trailerBytes = 0;
    for (;;) {
      const trailer = await this.#readLine();
      if (trailer === "") break;
      trailerBytes += trailer.length;
      if (trailerBytes > MAX_HEAD_BYTES) throw this.#fail("trailers too large");
    }
    return total === 0 ? EMPTY : concat(parts, total);
  }

  async #readUntilClose(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let total = this.#end - this.#start;
    if (total > this.#max) throw this.#tooLarge();
    if (total > 0) parts.push(this.#buf.slice(this.#start, this.#end));
    this.#start = this.#end = 0;
    for (;;) {
      const chunk = new Uint8Array(UNTIL_CLOSE_CHUNK);
      const n = await this.#conn.read(chunk);
      if (n === null) break;
      total += n;
      if (total > this.#max) throw this.#tooLarge();
      parts.push(chunk.subarray(0, n));
    }
    return total === 0 ? EMPTY : concat(parts, total);
  }
}
