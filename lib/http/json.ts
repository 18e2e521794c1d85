/**
 * A strict JSON reader for request bodies (http-api.md §4, D3).
 *
 * `JSON.parse` cannot enforce what the spec asks: duplicate keys, lone surrogate escapes and
 * non-integer spellings of integer fields (`8e3`, `8000.0`) must all be rejected, and 64-bit
 * integers must be read exactly. This reader keeps numbers as their source text
 * ({@linkcode JsonNumber}) and fails on anything RFC 8259 does not allow.
 *
 * @module
 */

/** A number literal, kept as written. */
export class JsonNumber {
  constructor(readonly raw: string) {}

  /** The value as a 64-bit integer, or undefined if the literal is not an integer in range. */
  asInt64(): bigint | undefined {
    if (!/^-?(?:0|[1-9][0-9]*)$/.test(this.raw)) return undefined;
    const v = BigInt(this.raw);
    return v >= -(2n ** 63n) && v < 2n ** 63n ? v : undefined;
  }
}

/** A parsed JSON value; objects are null-prototype records without duplicate keys. */
export type JsonValue =
  | null
  | boolean
  | string
  | JsonNumber
  | JsonValue[]
  | { [key: string]: JsonValue };

/** Maximum nesting; deeper documents are refused rather than risking the stack. */
const MAX_DEPTH = 64;

const fatalDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Decodes UTF-8 bytes and parses one JSON value.
 *
 * @throws {SyntaxError} for invalid UTF-8, invalid JSON, duplicate keys, lone surrogates,
 * nesting deeper than 64 or trailing non-whitespace.
 */
export function parseStrictJson(bytes: Uint8Array): JsonValue {
  let text: string;
  try {
    text = fatalDecoder.decode(bytes);
  } catch {
    throw new SyntaxError("Cannot decode body: invalid UTF-8");
  }
  return new Reader(text).document();
}

class Reader {
  #pos = 0;
  constructor(readonly text: string) {}

  document(): JsonValue {
    this.#ws();
    const value = this.#value(0);
    this.#ws();
    if (this.#pos !== this.text.length) this.#fail("trailing data");
    return value;
  }

  #fail(what: string): never {
    throw new SyntaxError(`Cannot parse JSON: ${what} at offset ${this.#pos}`);
  }

  #ws(): void {
    const t = this.text;
    while (this.#pos < t.length) {
      const c = t.charCodeAt(this.#pos);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.#pos++;
      else break;
    }
  }

  #value(depth: number): JsonValue {
    if (depth > MAX_DEPTH) this.#fail("nesting too deep");
    const c = this.text[this.#pos];
    switch (c) {
      case "{":
        return this.#object(depth);
      case "[":
        return this.#array(depth);
      case '"':
        return this.#string();
      case "t":
        return this.#literal("true", true);
      case "f":
        return this.#literal("false", false);
      case "n":
        return this.#literal("null", null);
      default:
        return this.#number();
    }
  }

  #literal<T extends JsonValue>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.#pos)) this.#fail("unexpected token");
    this.#pos += word.length;
    return value;
  }

  #number(): JsonNumber {
    const m = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
    m.lastIndex = this.#pos;
    const found = m.exec(this.text);
    if (!found || found[0].length === 0) this.#fail("unexpected token");
    this.#pos += found[0].length;
    return new JsonNumber(found[0]);
  }

  #string(): string {
    const t = this.text;
    this.#pos++;
    let out = "";
    let start = this.#pos;
    for (;;) {
      if (this.#pos >= t.length) this.#fail("unterminated string");
      const c = t.charCodeAt(this.#pos);
      if (c === 0x22) {
        out += t.slice(start, this.#pos);
        this.#pos++;
        return out;
      }
      if (c < 0x20) this.#fail("control character in string");
      if (c === 0x5c) {
        out += t.slice(start, this.#pos);
        out += this.#escape();
        start = this.#pos;
        continue;
      }
      this.#pos++;
    }
  }

  #hex4(): number {
    const h = this.text.slice(this.#pos, this.#pos + 4);
    if (!/^[0-9A-Fa-f]{4}$/.test(h)) this.#fail("bad unicode escape");
    this.#pos += 4;
    return parseInt(h, 16);
  }

  #escape(): string {
    this.#pos++;
    const e = this.text[this.#pos++];
    switch (e) {
      case '"':
        return '"';
      case "\\":
        return "\\";
      case "/":
        return "/";
      case "b":
        return "\b";
      case "f":
        return "\f";
      case "n":
        return "\n";
      case "r":
        return "\r";
      case "t":
        return "\t";
      case "u": {
        const unit = this.#hex4();
        if (unit >= 0xdc00 && unit <= 0xdfff) this.#fail("lone surrogate");
        if (unit >= 0xd800 && unit <= 0xdbff) {
          if (!this.text.startsWith("\\u", this.#pos)) this.#fail("lone surrogate");
          this.#pos += 2;
          const low = this.#hex4();
          if (low < 0xdc00 || low > 0xdfff) this.#fail("lone surrogate");
          return String.fromCharCode(unit, low);
        }
        return String.fromCharCode(unit);
      }
      default:
        return this.#fail("bad escape");
    }
  }

  #array(depth: number): JsonValue[] {
    this.#pos++;
    const out: JsonValue[] = [];
    this.#ws();
    if (this.text[this.#pos] === "]") {
      this.#pos++;
      return out;
    }
    for (;;) {
      this.#ws();
      out.push(this.#value(depth + 1));
      this.#ws();
      const c = this.text[this.#pos++];
      if (c === "]") return out;
      if (c !== ",") this.#fail("expected , or ]");
    }
  }

  #object(depth: number): { [key: string]: JsonValue } {
    this.#pos++;
    const out: { [key: string]: JsonValue } = Object.create(null);
    this.#ws();
    if (this.text[this.#pos] === "}") {
      this.#pos++;
      return out;
    }
    for (;;) {
      this.#ws();
      if (this.text[this.#pos] !== '"') this.#fail("expected key");
      const key = this.#string();
      if (Object.hasOwn(out, key)) this.#fail("duplicate key");
      this.#ws();
      if (this.text[this.#pos++] !== ":") this.#fail("expected :");
      this.#ws();
      out[key] = this.#value(depth + 1);
      this.#ws();
      const c = this.text[this.#pos++];
      if (c === "}") return out;
      if (c !== ",") this.#fail("expected , or }");
    }
  }
}
