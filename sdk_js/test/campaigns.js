// Shared by the waiting tests (context.test.js, identity.test.js): compiled campaigns and a small
// deterministic random generator. Node's runner also loads this file (it is under test/): it holds no test.

/** A compiled campaign with every field at its default, one variation touching #<key>. */
export const campaign = (key, extra = {}) => ({
  key,
  segment: null,
  conditions: null,
  pages: null,
  trigger: null,
  group: null,
  schedule: { start: null, end: null },
  cap: { per_visitor: null, per_session: null },
  traffic: 1,
  variations: [{ key: "on", weight: 1, actions: [{ selector: "#" + key, text: "on" }] }],
  ...extra,
})

/** A generator of numbers in [0, 1), the same for the same seed (an LCG). */
export function random(seed) {
  let s = seed >>> 0
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32)
}
