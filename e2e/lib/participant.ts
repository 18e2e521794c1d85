/**
 * Wrapper around the participant helper binary (real-stack.md §8.1): a real WebRTC client that
 * joins the SFU with a JWT, prints `JOINED` / `DISCONNECTED <reason>` / `ERROR <text>`, and
 * leaves on `leave` (stdin) or dies on SIGKILL.
 *
 * @module
 */
import { LIVEKIT_WS_URL, stackPaths } from "./env.ts";
import { waitFor } from "./poll.ts";
import { ManagedProcess } from "./proc.ts";

/** Options of {@linkcode Participant.start}. */
export interface ParticipantOptions {
  /** Label used for the log file name. */
  name: string;
  /** `no-media` never brings the media connection up. */
  mode?: "normal" | "no-media";
  url?: string;
  /** Join timeout handed to the helper; default 20 s. */
  connectTimeoutSeconds?: number;
}

/** One running participant helper. */
export class Participant {
  private constructor(readonly name: string, readonly proc: ManagedProcess) {}

  /** Starts the helper with `token`; call {@linkcode joined} or {@linkcode failed} next. */
  static start(token: string, opts: ParticipantOptions): Participant {
    const paths = stackPaths();
    const proc = new ManagedProcess(paths.participantBin, {
      args: [
        "--url",
        opts.url ?? LIVEKIT_WS_URL,
        "--token",
        token,
        "--mode",
        opts.mode ?? "normal",
        "--connect-timeout",
        `${opts.connectTimeoutSeconds ?? 20}s`,
      ],
      logFile: `${paths.run}/logs/participant-${opts.name}.log`,
      stdin: true,
    });
    return new Participant(opts.name, proc);
  }

  /** Starts the helper and waits for `JOINED`; throws with the helper's error otherwise. */
  static async join(token: string, opts: ParticipantOptions): Promise<Participant> {
    const p = Participant.start(token, opts);
    try {
      await p.joined();
      return p;
    } catch (err) {
      await p.proc.kill();
      throw err;
    }
  }

  /** Waits up to 30 s for `JOINED`. */
  async joined(): Promise<void> {
    const outcome = await waitFor(() => {
      const line = this.proc.lines.find((l) => l === "JOINED" || l.startsWith("ERROR "));
      if (line !== undefined) return line;
      if (this.proc.exited) return `ERROR helper exited: ${this.proc.lines.slice(-3).join(" | ")}`;
      return undefined;
    }, { what: `participant ${this.name} to join`, timeoutMs: 30_000, intervalMs: 100 });
    if (outcome !== "JOINED") throw new Error(`participant ${this.name}: ${outcome}`);
  }

  /** Waits for the helper to fail joining and returns its `ERROR` text. */
  async failed(): Promise<string> {
    const outcome = await waitFor(() => {
      const line = this.proc.lines.find((l) => l === "JOINED" || l.startsWith("ERROR "));
      if (line !== undefined) return line;
      if (this.proc.exited) return "ERROR helper exited";
      return undefined;
    }, { what: `participant ${this.name} to fail`, timeoutMs: 40_000, intervalMs: 100 });
    if (outcome === "JOINED") throw new Error(`participant ${this.name} joined unexpectedly`);
    await this.proc.wait();
    this.proc.close();
    return outcome;
  }

  /**
   * Publishes one audio track; resolves with `PUBLISHED <sid>` or `PUBLISH_FAILED <text>` (the
   * SDK gives up after 10 s when the SFU never confirms the track).
   */
  async publish(): Promise<string> {
    await this.proc.send("publish");
    return await waitFor(() => {
      const line = this.proc.lines.find((l) =>
        l.startsWith("PUBLISHED ") || l.startsWith("PUBLISH_FAILED ")
      );
      if (line !== undefined) return line;
      if (this.proc.exited) return "PUBLISH_FAILED helper exited";
      return undefined;
    }, { what: `participant ${this.name} to publish`, timeoutMs: 30_000, intervalMs: 100 });
  }

  /** Leaves cleanly (`CLIENT_INITIATED`, or `reason`) and waits for the exit. */
  async leave(reason?: string): Promise<void> {
    if (!this.proc.exited) {
      await this.proc.send(reason === undefined ? "leave" : `leave ${reason}`);
      await this.proc.closeStdin();
    }
    const timer = setTimeout(() => this.proc.signal("SIGKILL"), 15_000);
    try {
      await this.proc.wait();
    } finally {
      clearTimeout(timer);
      this.proc.close();
    }
  }

  /** Abrupt end: SIGKILL, no leave message reaches the SFU. */
  async kill(): Promise<void> {
    await this.proc.kill();
  }

  /** Cleanup for `finally` blocks: kills the helper if it still runs. */
  async dispose(): Promise<void> {
    if (!this.proc.exited) await this.proc.kill();
    else {
      await this.proc.wait();
      this.proc.close();
    }
  }
}
