// spec/07-devices.json against the SDK's own classifier: device.type is always the browser's,
// the same as server/delivery/context.py gives; os and browser come from the server only.
import { test } from "node:test"
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { collect, deviceType } from "../src/attributes.js"

const { cases } = JSON.parse(readFileSync(new URL("../../spec/07-devices.json", import.meta.url), "utf8"))

for (const c of cases) test(c.description, () => assert.equal(deviceType(c.user_agent), c.expected.type))

test("a missing user agent is a desktop", () => assert.equal(deviceType(undefined), "desktop"))

test("type from the browser, os and browser from the server's context", () => {
  const win = (ua) => ({
    location: new URL("https://shop.example/"),
    document: { title: "", referrer: "", documentElement: { lang: "" }, querySelector: () => null },
    navigator: { userAgent: ua, maxTouchPoints: 0, language: "en" },
    screen: { width: 1, height: 1 },
  })
  const visit = { n: 1, h: ["/"], e: {} }
  const b = { start: 0, lastInput: 0, scroll: 0, exitIntent: false }
  for (const c of cases) {
    const alone = collect(win(c.user_agent), 0, visit, {}, b, {}).device
    assert.equal(alone.type, c.expected.type)
    assert.equal(alone.os, undefined)
    const served = collect(win(c.user_agent), 0, visit, { device: c.expected }, b, {}).device
    assert.deepEqual([served.type, served.os, served.browser], [c.expected.type, c.expected.os, c.expected.browser])
  }
  // A context carrying a type does not override the browser's (serverContext() drops it, and
  // collect() never reads it either).
  const d = collect(win(cases[0].user_agent), 0, visit, { device: /** @type {any} */ ({ type: "bot", os: "other", browser: "other" }) }, b, {}).device
  assert.deepEqual([d.type, d.os], [cases[0].expected.type, "other"])
})
