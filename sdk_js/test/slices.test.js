// The slices module (sdk_js/src/slices.js): the segment bitset, an exposure's claims, and the
// module's first exposures and internal mark through the core's hooks. localStorage and location
// are the browser's: here a Map-backed stand-in; e2e/test_slices.py runs the module in Chromium
// against the real server. spec/09-segments.json holds the bitset to server/events/slices.py.
import assert from "node:assert/strict"
import { beforeEach, test } from "node:test"
import { evalCondition } from "../src/esm.js"
import { claimsOf, installSlices, segmentBitset } from "../src/slices.js"
import { random } from "./campaigns.js"

/** The server's reading of a bitset (server/events/slices.py matched_segments), written again. */
const matchedIn = (bitset, names) =>
  names.filter((_, i) => i >> 2 < bitset.length && (parseInt(bitset[i >> 2], 16) >> (i & 3)) & 1)

test("segmentBitset: bit i % 4 of character i / 4, lowercase hex, trailing zeros dropped", () => {
  const names = ["a", "b", "c", "d", "e", "f"]
  const bits = (...matched) => segmentBitset(names, (n) => matched.includes(n))
  assert.equal(bits(), "")
  assert.equal(bits("a"), "1")
  assert.equal(bits("d"), "8")
  assert.equal(bits("a", "b", "c", "d"), "f")
  assert.equal(bits("e"), "01")
  assert.equal(bits("b", "f"), "22")
  assert.equal(segmentBitset([], () => true), "")
})

test("segmentBitset: property, the server reads back exactly the matched names; never past 500 segments", () => {
  const next = random(20260613)
  for (let round = 0; round < 300; round++) {
    const names = Array.from({ length: Math.floor(next() * 40) }, (_, i) => "s" + i)
    const matched = names.filter(() => next() < 0.3)
    const bitset = segmentBitset(names, (n) => matched.includes(n))
    assert.match(bitset, /^[0-9a-f]*$/)
    assert.doesNotMatch(bitset, /0$/)
    assert.deepEqual(matchedIn(bitset, names), matched)
  }
  const many = Array.from({ length: 700 }, (_, i) => "s" + i)
  assert.equal(segmentBitset(many, () => true), "f".repeat(125)) // the wire's bound: 125 characters
})

const bundle = {
  site: "s",
  segments: { zebra: { "page.path": "/z" }, apple: { "visit.new": true }, mid: { "utm.source": "news" } },
  campaigns: [],
}

test("claimsOf: the segments matched (names sorted), utm.medium else referrer.medium, visits and page views before", () => {
  const attributes = {
    page: { path: "/z" },
    visit: { new: true, count: 1, total_pageviews: 3 },
    utm: {},
    referrer: { medium: "referral" },
  }
  // sorted: apple (bit 0), mid (bit 1), zebra (bit 2)
  assert.deepEqual(claimsOf(bundle, attributes, evalCondition), { segments: "5", acquisition: "referral", pre: [0, 2] })
  const email = { ...attributes, visit: { count: 4, total_pageviews: 40 }, utm: { medium: "EMail", source: "news" } }
  assert.deepEqual(claimsOf(bundle, email, evalCondition), { segments: "6", acquisition: "email", pre: [3, 39] })
  assert.deepEqual(claimsOf({ campaigns: [] }, {}, evalCondition), { segments: "", acquisition: "", pre: [0, 0] })
})

test("claimsOf: whatever a site's vitrina.set() put there, what collect accepts", () => {
  for (const junk of [-1, 0, 0.5, NaN, Infinity, 2e9, "x", null, {}, [], true])
    assert.deepEqual(claimsOf(bundle, { visit: { count: junk, total_pageviews: junk } }, evalCondition).pre, [0, 0], String(junk))
  assert.deepEqual(claimsOf(bundle, { visit: { count: "3", total_pageviews: 7.9 } }, evalCondition).pre, [2, 6])
  const long = claimsOf(bundle, { utm: { medium: "X".repeat(300) } }, evalCondition).acquisition
  assert.equal(long, "x".repeat(64))
  assert.equal(claimsOf(bundle, { utm: { medium: 42 } }, evalCondition).acquisition, "42")
})

// --- the module, through the hooks the core calls ---

const storage = new Map()
globalThis.localStorage = {
  getItem: (key) => (storage.has(key) ? storage.get(key) : null),
  setItem: (key, value) => storage.set(key, String(value)),
  removeItem: (key) => storage.delete(key),
}
beforeEach(() => storage.clear())

/** The module on a page whose query is `search`, with `consented` consent. */
const page = (search = "", consented = true, segments = bundle.segments) => {
  globalThis.location = { search }
  const evaluated = []
  const runtime = {
    bundle: () => ({ site: "s", segments, campaigns: [] }),
    evalCondition: (condition, attributes) => (evaluated.push(condition), evalCondition(condition, attributes)),
    mayStore: () => consented,
  }
  return { hooks: installSlices(runtime), evaluated }
}
const decision = (variations, holdout_campaigns = []) => ({ holdout: false, variations, reasons: {}, holdout_campaigns })
const visitor = (path, count = 1) => ({ page: { path }, visit: { count, total_pageviews: count }, referrer: { medium: "direct" } })
/** A decision on `attributes` exposing `decided`, as the core runs the hooks. */
const decide = (hooks, attributes, decided) => {
  hooks.hold(attributes, { memo: new Map() })
  hooks.apply(decided, {})
}

test("each campaign keeps the claims of its first exposure, and every batch says them", () => {
  const { hooks } = page()
  decide(hooks, visitor("/z"), decision({ hero: "promo" }, ["note"]))
  decide(hooks, visitor("/a", 5), decision({ hero: "promo", cta: "urgent" }))
  assert.deepEqual(hooks.batch(), {
    first_exposure: {
      hero: { segments: "4", acquisition: "direct", pre: [0, 0] },
      note: { segments: "4", acquisition: "direct", pre: [0, 0] },
      cta: { segments: "", acquisition: "direct", pre: [4, 4] },
    },
  })
})

test("nothing touches storage before the first paint; then what earlier page views kept wins, being earlier", () => {
  const earlier = page()
  decide(earlier.hooks, visitor("/z"), decision({ hero: "promo" }))
  earlier.hooks.start()
  assert.deepEqual(JSON.parse(storage.get("vtr_f")).hero[0], { segments: "4", acquisition: "direct", pre: [0, 0] })
  const read = []
  const getItem = globalThis.localStorage.getItem
  globalThis.localStorage.getItem = (key) => (read.push(key), getItem(key))
  try {
    const later = page()
    decide(later.hooks, visitor("/a", 2), decision({ hero: "promo", cta: "urgent" }))
    assert.deepEqual(read, [])
    later.hooks.start()
    assert.deepEqual(later.hooks.batch().first_exposure, {
      hero: { segments: "4", acquisition: "direct", pre: [0, 0] },
      cta: { segments: "", acquisition: "direct", pre: [1, 1] },
    })
  } finally {
    globalThis.localStorage.getItem = getItem
  }
})

test("a batch before `start` (a page leaving at once) reads what earlier page views kept", () => {
  storage.set("vtr_f", JSON.stringify({ hero: [{ segments: "1", acquisition: "email", pre: [2, 9] }, Date.now() - 1000] }))
  storage.set("vtr_i", "1")
  const { hooks } = page()
  decide(hooks, visitor("/z"), decision({ hero: "promo" }))
  assert.deepEqual(hooks.batch(), { first_exposure: { hero: { segments: "1", acquisition: "email", pre: [2, 9] } }, internal: true })
})

test("a kept first exposure collect would refuse (storage edited by hand) is dropped, the sound ones kept", () => {
  const now = Date.now()
  const ok = { segments: "1f", acquisition: "email", pre: [2, 9] }
  const junk = {
    nothing: null, number: 7, short: [ok], late: [ok, "x"], bare: [{}, now],
    upper: [{ ...ok, segments: "1F" }, now], wide: [{ ...ok, segments: "1".repeat(126) }, now],
    acquired: [{ ...ok, acquisition: 3 }, now], long: [{ ...ok, acquisition: "x".repeat(65) }, now],
    three: [{ ...ok, pre: [1, 2, 3] }, now], half: [{ ...ok, pre: [1.5, 2] }, now], minus: [{ ...ok, pre: [-1, 2] }, now],
    huge: [{ ...ok, pre: [0, 1e9 + 1] }, now], text: [{ ...ok, pre: "12" }, now], more: [{ ...ok, slice: "x" }, now],
    "-dash": [ok, now], ["k".repeat(65)]: [ok, now],
  }
  storage.set("vtr_f", JSON.stringify({ ...junk, hero: [ok, now - 1000] }))
  const { hooks } = page()
  hooks.start()
  assert.deepEqual(hooks.batch(), { first_exposure: { hero: ok } })
  assert.deepEqual(Object.keys(JSON.parse(storage.get("vtr_f"))), ["hero"])
})

test("first exposures older than the queue keeps events are forgotten; at most the 50 newest are kept", () => {
  const now = Date.now()
  const kept = { old: [{ segments: "", acquisition: "", pre: [0, 0] }, now - 1728e5 - 1] }
  for (let i = 0; i < 60; i++) kept["c" + i] = [{ segments: "", acquisition: "", pre: [0, i] }, now - 1000 * i]
  storage.set("vtr_f", JSON.stringify(kept))
  const { hooks } = page()
  hooks.start()
  const names = Object.keys(hooks.batch().first_exposure)
  assert.equal(names.length, 50)
  assert.ok(!names.includes("old") && names.includes("c0") && names.includes("c49") && !names.includes("c50"))
  assert.equal(Object.keys(JSON.parse(storage.get("vtr_f"))).length, 50)
})

test("segments are evaluated once per decision, sharing decide()'s memo, and only when a campaign is first exposed", () => {
  const { hooks, evaluated } = page()
  const memo = new Map([[bundle.segments.zebra, true]]) // decide() evaluated the campaign's segment already
  hooks.hold(visitor("/elsewhere"), { memo })
  hooks.apply(decision({ hero: "promo" }, ["note"]), {})
  assert.deepEqual(evaluated, [bundle.segments.apple, bundle.segments.mid])
  assert.equal(hooks.batch().first_exposure.hero.segments, "4") // the memo's answer
  decide(hooks, visitor("/z"), decision({ hero: "promo" }))
  assert.equal(evaluated.length, 2)
})

test("?vitrina_internal=1 marks the browser: every batch is internal, on this page and later ones, until =0", () => {
  const marked = page("?vitrina_internal=1")
  assert.deepEqual(marked.hooks.batch(), { internal: true }) // the queue an earlier page left goes as internal
  marked.hooks.start()
  assert.equal(storage.get("vtr_i"), "1")
  const later = page("?q=shoes")
  later.hooks.start()
  assert.equal(later.hooks.batch().internal, true)
  const forgotten = page("?vitrina_internal=0")
  assert.deepEqual(forgotten.hooks.batch(), {})
  forgotten.hooks.start()
  assert.equal(storage.has("vtr_i"), false)
  const after = page("")
  after.hooks.start()
  assert.equal(after.hooks.batch().internal, undefined)
  assert.equal(page("?vitrina_internal=yes").hooks.batch().internal, undefined)
})

test("without consent nothing is stored; a refusal deletes what was; consent given stores it", async () => {
  const { hooks } = page("?vitrina_internal=1", false)
  decide(hooks, visitor("/z"), decision({ hero: "promo" }))
  hooks.start()
  assert.deepEqual([...storage.keys()], [])
  assert.equal(hooks.batch().internal, true) // what this page sends (with consent given later) is internal still
  const stored = page("?vitrina_internal=1")
  decide(stored.hooks, visitor("/z"), decision({ hero: "promo" }))
  stored.hooks.start()
  assert.deepEqual([...storage.keys()].sort(), ["vtr_f", "vtr_i"])
  stored.hooks.consent(false)
  assert.deepEqual([...storage.keys()], [])
  let consented = false
  globalThis.location = { search: "?vitrina_internal=1" }
  const later = installSlices({ bundle: () => bundle, evalCondition, mayStore: () => consented })
  decide(later, visitor("/z"), decision({ hero: "promo" }))
  later.start()
  assert.deepEqual([...storage.keys()], [])
  later.consent(true)
  consented = true // the core takes the consent after its hooks heard it
  await new Promise((resolve) => setTimeout(resolve))
  assert.deepEqual([...storage.keys()].sort(), ["vtr_f", "vtr_i"])
})
