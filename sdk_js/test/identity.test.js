// The identity module's pure parts (sdk_js/src/identity.js, and context.js's waiting rule with the
// customer to come). e2e/test_identity.py runs the module itself in Chromium against the server.
import { test } from "node:test"
import assert from "node:assert/strict"
import { awaitingContext } from "../src/context.js"
import { decide } from "../src/decide.js"
import { evalCondition } from "../src/esm.js"
import { tokenFacts } from "../src/identity.js"
import { campaign, random } from "./campaigns.js"

const base64url = (value) => Buffer.from(JSON.stringify(value)).toString("base64url")
const jwt = (payload) => base64url({ alg: "HS256", typ: "JWT" }) + "." + base64url(payload) + ".c2lnbmF0dXJl"

test("tokenFacts: the same customer with new times is the same; another customer, claims or junk are not", () => {
  const first = tokenFacts(jwt({ sub: "1042", iat: 1, exp: 2, crm: { tier: "gold" } }))
  assert.equal(first, tokenFacts(jwt({ sub: "1042", iat: 50, exp: 99, nbf: 3, jti: "x", crm: { tier: "gold" } })))
  assert.notEqual(first, tokenFacts(jwt({ sub: "77", iat: 1, exp: 2, crm: { tier: "gold" } })))
  assert.notEqual(first, tokenFacts(jwt({ sub: "1042", iat: 1, exp: 2, crm: { tier: "silver" } })))
  assert.equal(tokenFacts(jwt({ sub: "é😀" })), tokenFacts(jwt({ sub: "é😀", iat: 5 })))
  for (const junk of ["", "abc", "a.b.c", "a.!!!.c", "a." + Buffer.from("[1").toString("base64url") + ".c"])
    assert.equal(tokenFacts(junk), "", junk)
})

const CRM = /^crm(?:\.|$)/
const split = (key, extra = {}) =>
  campaign(key, {
    bucket_by: "visitor",
    variations: [
      { key: "a", weight: 0.5, actions: [{ selector: "#" + key, text: "a" }] },
      { key: "b", weight: 0.5, actions: [] },
    ],
    ...extra,
  })
const bundle = (campaigns, segments = {}) => ({ site: "s", version: 1, segments, campaigns, settings: { holdout: 0.2 } })
const page = { page: { path: "/p" }, visit: { new: true } }
const NOW = Date.UTC(2026, 0, 1)

test("with the customer to come, customer-bucketed campaigns and crm readers wait, after their pages", () => {
  const b = bundle(
    [
      split("loyal", { segment: "gold" }),
      split("split", { bucket_by: "customer" }),
      split("split-elsewhere", { bucket_by: "customer", pages: { "page.path": "/other" } }),
      split("split-segment", { bucket_by: "customer", segment: "new" }),
      split("winback", { conditions: { "crm.days_since_last_order": { $gt: 90 } } }),
      split("plain"),
      split("geo", { conditions: { "geo.country": "FR" } }),
    ],
    { gold: { "crm.tier": "gold" }, new: { "visit.new": true } },
  )
  const waiting = [...awaitingContext(b, page, { now: NOW }, evalCondition, CRM, true)].sort()
  // split-elsewhere fails its page first: "page not matched" whoever the visitor is; geo is the context's
  assert.deepEqual(waiting, ["loyal", "split", "split-segment", "winback"])
  assert.deepEqual([...awaitingContext(b, page, { now: NOW, force: { split: "a" } }, evalCondition, CRM, true)].includes("split"), false)
})


test("property: campaigns that do not wait for the customer decide exactly as once identified", () => {
  const next = random(20261124)
  const pick = (list) => list[Math.floor(next() * list.length)]
  const conditions = [
    null,
    { "crm.tier": "gold" },
    { "crm.days_since_last_order": { $gt: 90 } },
    { "crm.tier": { $exists: false } },
    { "page.path": "/p" },
    { "page.path": "/other" },
    { "visit.new": true },
    { $or: [{ "crm.tier": "silver" }, { "visit.new": true }] },
  ]
  const customers = [
    null,
    ["c1.00000000000000000000000000000001", { tier: "gold", days_since_last_order: 12 }],
    ["c1.00000000000000000000000000000002", { tier: "silver", days_since_last_order: 200 }],
    ["c1.00000000000000000000000000000003", {}],
  ]
  const selectors = ["#a", "#b", "#c"]
  let checked = 0
  let waited = 0
  for (let round = 0; round < 700; round++) {
    const campaigns = []
    for (let i = 0; i < 2 + Math.floor(next() * 7); i++)
      campaigns.push(
        split("c" + i, {
          group: next() < 0.4 ? pick(["g1", "g2"]) : null,
          pages: next() < 0.3 ? pick(conditions) : null,
          segment: next() < 0.3 ? pick(["s1", "s2"]) : null,
          conditions: pick(conditions),
          bucket_by: next() < 0.4 ? "customer" : "visitor",
          traffic: next() < 0.3 ? 0.5 : 1,
          variations: [
            { key: "a", weight: 0.5, actions: [{ selector: pick(selectors), text: "a" }] },
            { key: "b", weight: 0.5, actions: next() < 0.5 ? [{ selector: pick(selectors), text: "b" }] : [] },
          ],
        }),
      )
    const b = bundle(campaigns, { s1: pick(conditions) || {}, s2: pick(conditions) || {} })
    const visitor = "v" + round
    const options = { now: NOW, force: next() < 0.1 ? { c0: "b" } : {} }
    const attributes = { ...page, visit: { new: next() < 0.5 } }
    const held = awaitingContext(b, attributes, options, evalCondition, CRM, true)
    waited += held.size
    const now = decide({ ...b, campaigns: campaigns.filter((c) => !held.has(c.key)) }, attributes, visitor, options)
    for (const customer of customers) {
      const later = customer
        ? decide(b, { ...attributes, crm: customer[1] }, visitor, { ...options, customer: customer[0] })
        : decide(b, attributes, visitor, options)
      for (const c of campaigns) {
        if (held.has(c.key)) continue
        assert.equal(now.reasons[c.key], later.reasons[c.key], JSON.stringify({ round, key: c.key, customer }))
        assert.equal(now.variations[c.key], later.variations[c.key])
        checked++
      }
    }
  }
  assert.ok(checked > 2000 && waited > 200, `${checked} decisions checked, ${waited} waits`)
})
