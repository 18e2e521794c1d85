/**
 * The one structured logger. Lines go to stderr as `key=value` text (configuration.md §7) or as
 * JSON objects; fields are passed explicitly so secrets never slip in through string
 * interpolation of whole objects ({@linkcode Secret} masks itself anyway).
 *
 * @module
 */

/** Log levels in increasing severity. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Values a log field may hold. */
export type LogValue = string | number | boolean | null | undefined | { toString(): string };

/** Structured fields of one log line. */
export type LogFields = Record<string, LogValue>;

/** Logger passed to every module that logs. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
  /** Whether lines of `level` are written (to skip building expensive fields). */
  enabled(level: LogLevel): boolean;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const LABEL: Record<LogLevel, string> = {
  debug: "DEBUG",
  info: "INFO",
  warn: "WARN",
  error: "ERROR",
};

/** Options of {@linkcode createLogger}. */
export interface LoggerOptions {
  level: LogLevel;
  format?: "text" | "json";
  /** Where complete lines go; defaults to stderr. */
  write?: (line: string) => void;
  /** Wall clock for timestamps. */
  now?: () => number;
}

const encoder = new TextEncoder();

function writeStderr(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

function renderValue(value: LogValue): string {
  if (value === null || value === undefined) return "";
  const text = typeof value === "string" ? value : String(value);
  return /^[^\s"=\\]+$/.test(text) ? text : JSON.stringify(text);
}

function jsonValue(value: LogValue): string | number | boolean | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") {
    return value;
  }
  return String(value);
}

/** Creates a logger writing complete lines. */
export function createLogger(options: LoggerOptions, base: LogFields = {}): Logger {
  const threshold = RANK[options.level];
  const write = options.write ?? writeStderr;
  const now = options.now ?? Date.now;
  const format = options.format ?? "text";

  function emit(level: LogLevel, msg: string, fields: LogFields | undefined): void {
    if (RANK[level] < threshold) return;
    const all = fields ? { ...base, ...fields } : base;
    const time = new Date(now()).toISOString();
    if (format === "json") {
      const obj: Record<string, string | number | boolean | null> = {
        time,
        level: level,
        msg,
      };
      for (const [k, v] of Object.entries(all)) {
        if (v !== undefined) obj[k] = jsonValue(v);
      }
      write(JSON.stringify(obj));
      return;
    }
    let line = `${time} ${LABEL[level]} ${msg}`;
    for (const [k, v] of Object.entries(all)) {
      if (v !== undefined) line += ` ${k}=${renderValue(v)}`;
    }
    write(line);
  }

  return {
    debug: (msg, fields) => emit("debug", msg, fields),
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
    child: (fields) => createLogger(options, { ...base, ...fields }),
    enabled: (level) => RANK[level] >= threshold,
  };
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
  enabled: () => false,
};

/** Renders an error and its `cause` chain on one line, for log fields. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    if (current instanceof Error) {
      parts.push(`${current.name}: ${current.message}`);
      current = current.cause;
    } else {
      parts.push(String(current));
      break;
    }
  }
  return parts.join(" <- ");
}
