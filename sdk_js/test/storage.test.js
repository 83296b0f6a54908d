import { test } from "node:test"
import assert from "node:assert/strict"
import { isVisitorId, newVisitorId, pageview, randomHex } from "../src/storage.js"

const T0 = Date.UTC(2026, 10, 23, 12)
const MIN = 6e4

test("randomHex: random hex of the asked byte length", () => {
  assert.match(randomHex(10), /^[0-9a-f]{20}$/)
  assert.notEqual(randomHex(10), randomHex(10))
})

test("a first page view starts visit 1", () => {
  const s = pageview(null, T0, ["google", "search"], { source: "nl" }, "/")
  assert.equal(s.n, 1)
  assert.equal(s.p, 1)
  assert.equal(s.t, 1)
  assert.equal(s.d, null)
  assert.equal(s.g, "/")
  assert.deepEqual(s.r, ["google", "search"])
  assert.deepEqual(s.u, { source: "nl" })
  assert.deepEqual(s.h, ["/"])
  assert.deepEqual([s.e, s.x, s.k], [{}, {}, {}])
})

test("within 30 minutes the session goes on and keeps its landing attribution", () => {
  let s = pageview(null, T0, ["google", "search"], { source: "nl" }, "/")
  s = pageview(s, T0 + 29 * MIN, 0, null, "/p") // internal, or an excluded referrer
  s = pageview(s, T0 + 40 * MIN, 0, null, "/q") // typed URL (direct)
  s = pageview(s, T0 + 50 * MIN, ["google", "search"], { source: "nl" }, "/") // the same arrival again
  s = pageview(s, T0 + 55 * MIN, undefined, null, "/spa") // an SPA navigation
  assert.equal(s.n, 1)
  assert.equal(s.p, 5)
  assert.deepEqual(s.r, ["google", "search"])
  assert.deepEqual(s.u, { source: "nl" })
  assert.equal(s.g, "/")
})

test("an arrival from another outside source starts a new session (GA4); UTM values alone update it", () => {
  let s = pageview(null, T0, ["google", "search"], { source: "nl", campaign: "bf" }, "/")
  s.x = { hero: { visitor: 1, session: 1 } }
  s = pageview(s, T0 + 5 * MIN, ["facebook", "social"], null, "/r") // no UTM values: the old ones go
  assert.deepEqual([s.n, s.p, s.g, s.d], [2, 1, "/r", 0])
  assert.deepEqual([s.r, s.u], [["facebook", "social"], {}])
  assert.deepEqual(s.x, { hero: { visitor: 1, session: 0 } }) // per-session caps start again
  // without the attribution module (sourceMedium undefined) new UTM values replace the session's
  s = pageview(s, T0 + 6 * MIN, undefined, { source: "nl", campaign: "cm" }, "/s")
  assert.deepEqual([s.n, s.p, s.u], [2, 2, { source: "nl", campaign: "cm" }])
  assert.equal(s.t, 3)
})

test("30 minutes without a page view start a new session", () => {
  let s = pageview(null, T0, ["google", "search"], null, "/")
  s.x = { hero: { visitor: 2, session: 2 } }
  s = pageview(s, T0 + 3 * 864e5, undefined, undefined, "/back")
  assert.equal(s.n, 2)
  assert.equal(s.p, 1)
  assert.equal(s.t, 2)
  assert.equal(s.d, 3)
  assert.equal(s.g, "/back")
  assert.deepEqual(s.r, ["direct", "direct"])
  assert.deepEqual(s.u, {})
  assert.deepEqual(s.x, { hero: { visitor: 2, session: 0 } })
})

test("history keeps the 20 most recent distinct paths, newest last", () => {
  let s = null
  for (let i = 0; i < 25; i++) s = pageview(s, T0 + i * MIN, 0, null, "/p" + i)
  s = pageview(s, T0 + 26 * MIN, 0, null, "/p10")
  assert.equal(s.h.length, 20)
  assert.equal(s.h[19], "/p10")
  assert.equal(s.h.filter((p) => p == "/p10").length, 1)
  assert.equal(s.h[0], "/p5")
})

test("isVisitorId: the stored format only; a missing cookie is not the id 'undefined'", () => {
  assert.equal(isVisitorId("v1.0123456789abcdef01234567"), true)
  for (const bad of [undefined, null, "", "short", "a b c d e f g", "x".repeat(65), 12345678901]) assert.equal(isVisitorId(bad), false, String(bad))
  assert.match(newVisitorId(), /^v1\.[0-9a-f]{24}$/)
})
