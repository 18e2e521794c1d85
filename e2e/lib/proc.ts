/**
 * Child processes of the harness (our service, participant helpers): output goes line by line
 * to a log file in the run folder and to an in-memory line list that tests can wait on.
 * Every process started here is killed and awaited by its owner, so tests leak nothing.
 *
 * @module
 */

/** Options of {@linkcode startProcess}. */
export interface StartOptions {
  args: string[];
  /** Log file receiving stdout and stderr lines. */
  logFile: string;
  env?: Record<string, string>;
  /** Start from an empty environment plus `env` (default false). */
  clearEnv?: boolean;
  cwd?: string;
  /** Keep stdin open for commands (default false: stdin is null). */
  stdin?: boolean;
}

/** A running child with captured output. */
export class ManagedProcess {
  readonly #child: Deno.ChildProcess;
  readonly #lines: string[] = [];
  readonly #pumps: Promise<void>[];
  readonly #log: Deno.FsFile;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #status: Deno.CommandStatus | undefined;
  #stdinClosed = false;
  readonly status: Promise<Deno.CommandStatus>;

  constructor(command: string, opts: StartOptions) {
    this.#log = Deno.openSync(opts.logFile, { append: true, create: true });
    this.#child = new Deno.Command(command, {
      args: opts.args,
      env: opts.env,
      clearEnv: opts.clearEnv ?? false,
      cwd: opts.cwd,
      stdin: opts.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = opts.stdin ? this.#child.stdin.getWriter() : undefined;
    this.#pumps = [this.#pump(this.#child.stdout), this.#pump(this.#child.stderr)];
    this.status = this.#child.status.then((s) => {
      this.#status = s;
      return s;
    });
  }

  /** Process id (the launcher `exec`s, so this is the final program). */
  get pid(): number {
    return this.#child.pid;
  }

  /** Whether the process has exited. */
  get exited(): boolean {
    return this.#status !== undefined;
  }

  /** All output lines so far. */
  get lines(): readonly string[] {
    return this.#lines;
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    const encoder = new TextEncoder();
    let buffered = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        this.#lines.push(line);
        this.#log.writeSync(encoder.encode(line + "\n"));
      }
    }
    if (buffered !== "") {
      this.#lines.push(buffered);
      this.#log.writeSync(encoder.encode(buffered + "\n"));
    }
  }

  /** Writes one line to stdin (only with `stdin: true`). */
  async send(line: string): Promise<void> {
    if (this.#writer === undefined) throw new Error("Cannot write: stdin is not piped");
    await this.#writer.write(new TextEncoder().encode(line + "\n"));
  }

  /** Closes stdin (only with `stdin: true`). */
  async closeStdin(): Promise<void> {
    if (this.#writer === undefined || this.#stdinClosed) return;
    this.#stdinClosed = true;
    try {
      await this.#writer.close();
    } catch {
      // already closed or the process is gone
    }
  }

  /** Sends a signal if the process still runs. */
  signal(sig: Deno.Signal): void {
    if (this.exited) return;
    try {
      this.#child.kill(sig);
    } catch {
      // exited in between
    }
  }

  /** Waits for the exit, then for all output to be written; returns the status. */
  async wait(): Promise<Deno.CommandStatus> {
    const status = await this.status;
    await Promise.all(this.#pumps);
    await this.closeStdin();
    return status;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; always waits and closes the log. */
  async stop(graceMs = 5000): Promise<Deno.CommandStatus> {
    this.signal("SIGTERM");
    const timer = setTimeout(() => this.signal("SIGKILL"), graceMs);
    try {
      return await this.wait();
    } finally {
      clearTimeout(timer);
      this.close();
    }
  }

  /** SIGKILL at once; waits and closes the log. */
  async kill(): Promise<Deno.CommandStatus> {
    this.signal("SIGKILL");
    try {
      return await this.wait();
    } finally {
      this.close();
    }
  }

  #closed = false;
  /** Closes the log file (after {@linkcode wait}). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#log.close();
  }
}
