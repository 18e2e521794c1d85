/**
 * A minimal Prometheus registry: counters, gauges and histograms with labels, rendered in the
 * text exposition format 0.0.4.
 *
 * Written here instead of using `prom-client`: that package adds about 20 MiB of resident memory
 * to a service whose whole idle footprint is about 50 MiB (clients-and-deployments.md §3.1), and
 * we need only these three types.
 *
 * @module
 */

/** Label values of one series, in the metric's label order. */
export type Labels<L extends string> = Record<L, string>;

interface Family {
  render(lines: string[]): void;
}

function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

function labelText(names: readonly string[], values: readonly string[], extra = ""): string {
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i] ?? "")}"`);
  if (extra) parts.push(extra);
  return parts.length ? `{${parts.join(",")}}` : "";
}

abstract class Metric<L extends string> implements Family {
  protected readonly series = new Map<string, { values: string[]; data: number[] }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly L[],
  ) {}

  protected entry(labels: Labels<L> | undefined, width: number) {
    const values = this.labelNames.map((n) => (labels ? labels[n] : ""));
    const key = values.join("\u0000");
    let e = this.series.get(key);
    if (!e) {
      e = { values, data: new Array<number>(width).fill(0) };
      this.series.set(key, e);
    }
    return e;
  }

  abstract render(lines: string[]): void;
}

/** A monotonically increasing counter. */
export class Counter<L extends string = never> extends Metric<L> {
  inc(labels?: Labels<L>, by = 1): void {
    this.entry(labels, 1).data[0]! += by;
  }

  /** Current value (tests). */
  get(labels?: Labels<L>): number {
    return this.entry(labels, 1).data[0]!;
  }

  render(lines: string[]): void {
    lines.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`);
    for (const { values, data } of this.series.values()) {
      lines.push(`${this.name}${labelText(this.labelNames, values)} ${formatValue(data[0]!)}`);
    }
  }
}

/** A value that goes up and down; `collect` refreshes it right before rendering. */
export class Gauge<L extends string = never> extends Metric<L> {
  collect?: (gauge: Gauge<L>) => void;

  set(labels: Labels<L> | undefined, value: number): void {
    this.entry(labels, 1).data[0] = value;
  }

  get(labels?: Labels<L>): number {
    return this.entry(labels, 1).data[0]!;
  }

  /** Drops every series (before a collector sets the current ones). */
  reset(): void {
    this.series.clear();
  }

  render(lines: string[]): void {
    this.collect?.(this);
    lines.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`);
    for (const { values, data } of this.series.values()) {
      lines.push(`${this.name}${labelText(this.labelNames, values)} ${formatValue(data[0]!)}`);
    }
  }
}

/** Latency buckets in seconds, from fast cache hits to the 30 s verification budget. */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** A histogram of observations (cumulative buckets, sum and count). */
export class Histogram<L extends string = never> extends Metric<L> {
  constructor(
    name: string,
    help: string,
    labelNames: readonly L[],
    readonly buckets: readonly number[] = LATENCY_BUCKETS,
  ) {
    super(name, help, labelNames);
  }

  observe(labels: Labels<L> | undefined, value: number): void {
    const data = this.entry(labels, this.buckets.length + 2).data;
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) data[i]!++;
    data[this.buckets.length]! += value;
    data[this.buckets.length + 1]!++;
  }

  /** Number of observations (tests). */
  count(labels?: Labels<L>): number {
    return this.entry(labels, this.buckets.length + 2).data[this.buckets.length + 1]!;
  }

  render(lines: string[]): void {
    lines.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`);
    const n = this.buckets.length;
    for (const { values, data } of this.series.values()) {
      for (let i = 0; i < n; i++) {
        const le = `le="${formatValue(this.buckets[i]!)}"`;
        lines.push(`${this.name}_bucket${labelText(this.labelNames, values, le)} ${data[i]}`);
      }
      lines.push(
        `${this.name}_bucket${labelText(this.labelNames, values, 'le="+Inf"')} ${data[n + 1]}`,
      );
      lines.push(`${this.name}_sum${labelText(this.labelNames, values)} ${formatValue(data[n]!)}`);
      lines.push(`${this.name}_count${labelText(this.labelNames, values)} ${data[n + 1]}`);
    }
  }
}

/** A set of metric families rendered together. */
export class Registry {
  readonly #families: Family[] = [];

  /** Content type of the exposition. */
  static readonly contentType = "text/plain; version=0.0.4; charset=utf-8";

  register<F extends Family>(family: F): F {
    this.#families.push(family);
    return family;
  }

  render(): string {
    const lines: string[] = [];
    for (const f of this.#families) f.render(lines);
    return lines.join("\n") + "\n";
  }
}
