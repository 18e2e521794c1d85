/** Prometheus text exposition of the registry. */
import assert from "node:assert/strict";
import { Counter, Gauge, Histogram, Registry } from "../../lib/metrics/registry.ts";

Deno.test("registry: counters, gauges and histograms render in exposition format 0.0.4", () => {
  const r = new Registry();
  const c = r.register(new Counter("x_total", "Things.", ["kind"] as const));
  const g = r.register(new Gauge("y", "Level.", []));
  const h = r.register(new Histogram("z_seconds", "Time.", ["route"] as const, [0.1, 1]));
  c.inc({ kind: 'a"b\\c\nd' });
  c.inc({ kind: "plain" }, 2);
  g.set(undefined, 5);
  h.observe({ route: "/x" }, 0.05);
  h.observe({ route: "/x" }, 0.5);
  h.observe({ route: "/x" }, 7);
  assert.equal(
    r.render(),
    [
      "# HELP x_total Things.",
      "# TYPE x_total counter",
      'x_total{kind="a\\"b\\\\c\\nd"} 1',
      'x_total{kind="plain"} 2',
      "# HELP y Level.",
      "# TYPE y gauge",
      "y 5",
      "# HELP z_seconds Time.",
      "# TYPE z_seconds histogram",
      'z_seconds_bucket{route="/x",le="0.1"} 1',
      'z_seconds_bucket{route="/x",le="1"} 2',
      'z_seconds_bucket{route="/x",le="+Inf"} 3',
      'z_seconds_sum{route="/x"} 7.55',
      'z_seconds_count{route="/x"} 3',
      "",
    ].join("\n"),
  );
});

Deno.test("registry: a gauge collector refreshes the value before rendering", () => {
  const r = new Registry();
  let n = 0;
  const g = r.register(new Gauge("jobs", "Jobs.", ["state"] as const));
  g.collect = (gauge) => {
    gauge.reset();
    gauge.set({ state: "connected" }, ++n);
  };
  assert.match(r.render(), /jobs\{state="connected"\} 1/);
  assert.match(r.render(), /jobs\{state="connected"\} 2/);
});
