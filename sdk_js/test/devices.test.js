// spec/07-devices.json against the SDK's UA fallback (used only when tag.js sent no device
// context, e.g. the SDK alone with bundle.json): the same type as server/delivery/context.py. os and
// browser come from the server only.
import { test } from "node:test"
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { collect, sniff } from "../src/attributes.js"

const { cases } = JSON.parse(readFileSync(new URL("../../spec/07-devices.json", import.meta.url), "utf8"))

for (const c of cases) test(c.description, () => assert.deepEqual(sniff(c.user_agent), { type: c.expected.type }))

test("a missing user agent is a desktop", () => assert.deepEqual(sniff(undefined), { type: "desktop" }))

test("the server's context wins over the fallback, field by field", () => {
  const win = (ua) => ({
    location: new URL("https://shop.example/"),
    document: { title: "", referrer: "", documentElement: { lang: "" }, querySelector: () => null },
    navigator: { userAgent: ua, maxTouchPoints: 0, language: "en" },
    screen: { width: 1, height: 1 },
  })
  const visit = { n: 1, h: ["/"], e: {} }
  const b = { t0: 0, last: 0 }
  for (const c of cases) {
    const alone = collect(win(c.user_agent), 0, visit, {}, b, {}).device
    assert.equal(alone.type, c.expected.type)
    assert.equal(alone.os, undefined)
    const served = collect(win(c.user_agent), 0, visit, { device: c.expected }, b, {}).device
    assert.deepEqual([served.type, served.os, served.browser], [c.expected.type, c.expected.os, c.expected.browser])
  }
  // Where they disagree, the server has the last word.
  const d = collect(win(cases[0].user_agent), 0, visit, { device: { type: "bot", os: "other", browser: "other" } }, b, {}).device
  assert.equal(d.type, "bot")
})
