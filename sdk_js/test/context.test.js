// Which campaigns wait for the server-resolved context (sdk_js/src/context.js). The promise:
// every campaign that does not wait decides now exactly as `decide` does with the context
// known from the start, whatever that context turns out to be.
import { test } from "node:test"
import assert from "node:assert/strict"
import { awaitingContext, packContext, SERVER_PATH, serverContext, unpackContext } from "../src/context.js"
import { bundleReads, conditionPaths } from "../src/reads.js"
import { decide } from "../src/decide.js"
import { evalCondition } from "../src/esm.js"
import { campaign, random } from "./campaigns.js"

const bundle = (campaigns, segments = {}) => ({ site: "s", version: 1, segments, campaigns, settings: { holdout: 0 } })
const attributes = { page: { path: "/p" }, device: { type: "mobile" }, visit: { new: true } }
const waiting = (b, options = {}) => [...awaitingContext(b, attributes, { now: Date.UTC(2026, 0, 1), ...options }, evalCondition)].sort()

test("conditionPaths: the keys, through $and, $or, $nor and $not; operator values are not paths", () => {
  const condition = {
    "page.path": { $regex: "^/p" },
    $or: [{ "geo.country": "FR" }, { $and: [{ "device.os": { $in: ["ios"] } }] }],
    $nor: [{ "crm.tier": "gold" }],
    $not: { "visit.new": true },
    "history.products": { $elemMatch: { "geo.inside": 1 } },
  }
  assert.deepEqual(conditionPaths(condition).sort(), ["crm.tier", "device.os", "geo.country", "history.products", "page.path", "visit.new"])
  assert.deepEqual(conditionPaths(null), [])
  assert.deepEqual(conditionPaths({ $and: "not a list" }), [])
})

test("SERVER_PATH: geo.*, device.os, device.browser, and whole objects holding them; crm.* is the identity module's", () => {
  for (const path of ["geo", "geo.country", "device.os", "device.browser", "device"]) assert.equal(SERVER_PATH.test(path), true, path)
  for (const path of ["device.type", "device.touch", "device.screen.width", "device.osx", "geography", "page.geo", "history.crm", "crm.tier"])
    assert.equal(SERVER_PATH.test(path), false, path)
})

test("bundleReads: campaigns' pages, segments and conditions, and page-view goals", () => {
  const geo = /^geo/
  assert.equal(bundleReads(bundle([campaign("a", { conditions: { "geo.country": "FR" } })]), geo), true)
  assert.equal(bundleReads(bundle([campaign("a", { pages: { "geo.city": "Paris" } })]), geo), true)
  assert.equal(bundleReads(bundle([campaign("a", { segment: "eu" })], { eu: { "geo.continent": "EU" } }), geo), true)
  assert.equal(bundleReads({ ...bundle([]), goals: { g: { pageview: { "geo.country": "FR" } } } }, geo), true)
  assert.equal(bundleReads({ ...bundle([campaign("a")]), segments: { unused: { "geo.country": "FR" } } }, geo), false)
})

test("a campaign waits when a condition it reaches reads the context", () => {
  const b = bundle(
    [
      campaign("geo", { conditions: { "geo.country": "FR" } }),
      campaign("geo-elsewhere", { pages: { "page.path": "/other" }, conditions: { "geo.country": "FR" } }),
      campaign("geo-segment", { segment: "fr" }),
      campaign("plain"),
      campaign("unknown-segment", { segment: "nope" }),
      campaign("ios", { conditions: { "device.os": "ios" } }),
    ],
    { fr: { "geo.country": "FR" } },
  )
  // geo-elsewhere fails its page first: "page not matched" with or without the context.
  assert.deepEqual(waiting(b), ["geo", "geo-segment", "ios"])
})

test("forced, unscheduled, capped and untriggered campaigns decide now", () => {
  const geo = { conditions: { "geo.country": "FR" } }
  const b = bundle([
    campaign("forced", geo),
    campaign("ended", { ...geo, schedule: { start: null, end: "2020-01-01T00:00:00Z" } }),
    campaign("capped", { cap: { per_visitor: 1 } }),
    campaign("trigger", { trigger: { scroll: 50 } }),
    campaign("geo", geo),
  ])
  const options = { force: { forced: "on" }, counts: { capped: { visitor: 1, session: 1 } } }
  assert.deepEqual(waiting(b, options), ["geo"])
})

test("a lower campaign a waiting one could exclude waits too, transitively; a higher one never", () => {
  const b = bundle([
    campaign("high", { group: "hero" }),
    campaign("geo", { group: "hero", conditions: { "geo.country": "FR" }, variations: [{ key: "on", actions: [{ selector: "#banner" }] }] }),
    campaign("same-group", { group: "hero" }),
    campaign("same-selector", { variations: [{ key: "on", actions: [{ selector: "#banner", text: "x" }] }] }),
    campaign("chained", { variations: [{ key: "on", actions: [{ selector: "#same-group" }] }] }),
    campaign("unrelated"),
    campaign("unmatched-same-group", { group: "hero", pages: { "page.path": "/other" } }),
  ])
  assert.deepEqual(waiting(b), ["chained", "geo", "same-group", "same-selector"])
})


test("property: campaigns that do not wait decide exactly as with the context known from the start", () => {
  const next = random(20261123)
  const pick = (list) => list[Math.floor(next() * list.length)]
  const conditions = [
    null,
    { "geo.country": "FR" },
    { "geo.country": { $in: ["DE", "FR"] } },
    { "device.os": "ios" },
    { "device.browser": { $ne: "chrome" } },
    { "geo.city": { $exists: false } },
    { "page.path": "/p" },
    { "page.path": "/other" },
    { "visit.new": true },
    { $or: [{ "geo.continent": "EU" }, { "visit.new": true }] },
    { "device.type": "mobile" },
  ]
  const contexts = [
    {},
    { geo: { country: "FR", city: "Paris", continent: "EU" }, device: { os: "ios", browser: "safari" } },
    { geo: { country: "DE", continent: "EU" }, device: { os: "android", browser: "chrome" } },
    { geo: { country: "US", continent: "NA" }, device: { os: "windows", browser: "edge" } },
  ]
  const selectors = ["#a", "#b", "#c", "#d"]
  let checked = 0
  let waited = 0
  for (let round = 0; round < 400; round++) {
    const campaigns = []
    for (let i = 0; i < 2 + Math.floor(next() * 8); i++)
      campaigns.push(
        campaign("c" + i, {
          group: next() < 0.4 ? pick(["g1", "g2"]) : null,
          pages: next() < 0.3 ? pick(conditions) : null,
          segment: next() < 0.3 ? pick(["s1", "s2", "missing"]) : null,
          conditions: pick(conditions),
          traffic: next() < 0.3 ? 0.5 : 1,
          variations: [
            { key: "a", weight: 0.5, actions: [{ selector: pick(selectors), text: "a" }] },
            { key: "b", weight: 0.5, actions: next() < 0.5 ? [{ selector: pick(selectors), text: "b" }] : [] },
          ],
        }),
      )
    const b = bundle(campaigns, { s1: pick(conditions) || {}, s2: pick(conditions) || {} })
    const visitor = "v" + round
    const options = { now: Date.UTC(2026, 0, 1), force: next() < 0.1 ? { c0: "b" } : {} }
    const page = { ...attributes, visit: { new: next() < 0.5 }, device: { type: "mobile" } }
    const held = awaitingContext(b, page, options, evalCondition)
    waited += held.size
    const now = decide({ ...b, campaigns: campaigns.filter((c) => !held.has(c.key)) }, page, visitor, options)
    for (const context of contexts) {
      const full = { ...page, geo: context.geo, device: { ...page.device, ...context.device } }
      const later = decide(b, full, visitor, options)
      for (const c of campaigns) {
        if (held.has(c.key)) continue
        assert.equal(now.reasons[c.key], later.reasons[c.key], JSON.stringify({ round, key: c.key, context }))
        assert.equal(now.variations[c.key], later.variations[c.key])
        checked++
      }
    }
  }
  assert.ok(checked > 2000 && waited > 200, `${checked} decisions checked, ${waited} waits`)
})

test("serverContext keeps geo and device os/browser, never a device type nor crm (the server's, by identify only)", () => {
  assert.deepEqual(serverContext({ geo: { country: "FR" }, device: { type: "bot", os: "ios", browser: "safari" }, crm: { tier: 1 }, ip: "1.2.3.4" }), {
    geo: { country: "FR" },
    device: { os: "ios", browser: "safari" },
  })
  assert.deepEqual(serverContext({ device: { os: 5 }, geo: "FR" }), { device: {} })
  for (const junk of [null, undefined, "x", 5, []]) assert.equal(serverContext(junk), null)
})

test("a malformed campaign waits for nothing and holds nothing back", () => {
  const b = bundle([campaign("broken", { conditions: { "geo.country": "FR" }, variations: [{ key: "on", actions: [null] }] }), campaign("after")])
  assert.deepEqual(waiting(b), [])
})

test("the session keeps the context in a cookie: geo and device os/browser, URI-encoded, nothing else", () => {
  const context = {
    geo: { country: "FR", region: null, city: "Saint-Étienne; x|y", continent: "EU", timezone: "Europe/Paris" },
    device: { os: "ios", browser: "safari" },
    crm: { tier: "gold" },
  }
  const packed = packContext(context)
  assert.match(packed, /^[A-Za-z0-9%._~!*'()|-]*$/) // cookie-safe: no ; , space or quote
  assert.equal(packed.split("|").length, 7)
  assert.deepEqual(unpackContext(packed), { geo: context.geo, device: context.device })
  // No geo at all reads back as unknown geo; what is not ours is nothing.
  assert.deepEqual(unpackContext(packContext({ device: { os: "linux" } })), {
    geo: { country: null, region: null, city: null, continent: null, timezone: null },
    device: { os: "linux" },
  })
  for (const junk of [undefined, "", "a|b", "%E0%A4%A||||||", "1|2|3|4|5|6|7|8"]) assert.equal(unpackContext(junk), null, junk)
})
