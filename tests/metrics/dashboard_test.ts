/** The shipped Grafana dashboard only uses metric names the service exports. */
import assert from "node:assert/strict";
import { ServiceMetrics } from "../../lib/metrics/metrics.ts";

Deno.test("dashboard: every metric it queries exists", async () => {
  const dashboard = JSON.parse(
    await Deno.readTextFile(new URL("../../deploy/grafana-dashboard.json", import.meta.url)),
  );
  const exported = new Set(
    [...new ServiceMetrics().render().matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap((
      [, name, type],
    ) => type === "histogram" ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name!]),
  );
  const used = new Set<string>();
  for (const panel of dashboard.panels) {
    for (const target of panel.targets) {
      for (const [name] of target.expr.matchAll(/lk_jwt_[a-z_]+/g)) used.add(name);
    }
  }
  assert.ok(used.size >= 10);
  for (const name of used) assert.ok(exported.has(name), `dashboard uses unknown metric ${name}`);
});
