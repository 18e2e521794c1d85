/** Rendezvous hashing (replicas.md R5): deterministic, balanced, minimal movement. */
import assert from "node:assert/strict";
import { rendezvousWinner } from "../../lib/replica/rendezvous.ts";
import { encodeField } from "../../lib/store/codec.ts";

const FIELDS = Array.from(
  { length: 10_000 },
  (_, i) => encodeField("krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs", `member-${i}`),
);

Deno.test("rendezvous: the same winner whatever the order of the replica list", () => {
  for (const f of FIELDS.slice(0, 100)) {
    assert.equal(rendezvousWinner(f, ["a", "b", "c"]), rendezvousWinner(f, ["c", "a", "b"]));
  }
});

Deno.test("rendezvous: 10 000 jobs spread within 10 % of an even share over 3 replicas", () => {
  const counts = new Map<string, number>();
  for (const f of FIELDS) {
    const w = rendezvousWinner(f, ["pod-a", "pod-b", "pod-c"]);
    counts.set(w, (counts.get(w) ?? 0) + 1);
  }
  for (const n of counts.values()) assert.ok(Math.abs(n - 10_000 / 3) < 10_000 / 3 * 0.1, `${n}`);
});

Deno.test("rendezvous: removing a replica moves only the jobs it won", () => {
  const before = FIELDS.map((f) => rendezvousWinner(f, ["pod-a", "pod-b", "pod-c"]));
  const after = FIELDS.map((f) => rendezvousWinner(f, ["pod-a", "pod-c"]));
  for (let i = 0; i < FIELDS.length; i++) {
    if (before[i] !== "pod-b") assert.equal(after[i], before[i]);
    else assert.notEqual(after[i], "pod-b");
  }
});
