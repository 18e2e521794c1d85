/**
 * Helpers shared by the `check-config` tests (tests/cli/check_config_test.ts and
 * tests/cli/check_config_verdicts_test.ts).
 *
 * @module
 */
import assert from "node:assert/strict";

/** The secret of `baseEnv()` (tests/support/service.ts); must never be printed. */
export const SECRET = "devsecret-devsecret-devsecret-devsecret";

/** A fake homeserver route for `/_matrix/client/versions` (MSC4140 advertised or not). */
export function versionsRoute(msc4140: boolean | undefined) {
  return (req: Request): Response | undefined => {
    if (new URL(req.url).pathname !== "/_matrix/client/versions") return undefined;
    const unstable = msc4140 === undefined ? {} : { "org.matrix.msc4140": msc4140 };
    return Response.json({ versions: ["v1.11"], unstable_features: unstable });
  };
}

/** The first line starting with `prefix`; fails the test (showing all lines) when none does. */
export function findLine(all: readonly string[], prefix: string): string {
  const line = all.find((l) => l.startsWith(prefix));
  assert.ok(line, `no line starting with ${JSON.stringify(prefix)} in:\n${all.join("\n")}`);
  return line;
}
