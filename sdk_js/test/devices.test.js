// spec/07-devices.json against the SDK's own classifier: device.type is always the browser's,
// the same as server/delivery/context.py gives; os and browser come from the server only.
import { test } from "node:test"
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { collect, deviceType } from "../src/attributes.js"
import { addServerAttributes, serverContext } from "../src/context.js"

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
  /** The tree with the context module's attributes. @param {string} ua @param {any} raw */
  const served = (ua, raw) => {
    const attributes = collect(win(ua), 0, visit, 0)
    addServerAttributes(attributes, /** @type {any} */ (serverContext(raw)))
    return attributes.device
  }
  for (const c of cases) {
    const alone = collect(win(c.user_agent), 0, visit, 0).device
    assert.equal(alone.type, c.expected.type)
    assert.equal(alone.os, undefined)
    const device = served(c.user_agent, { device: c.expected })
    assert.deepEqual([device.type, device.os, device.browser], [c.expected.type, c.expected.os, c.expected.browser])
  }
  // A context carrying a type does not override the browser's (serverContext() drops it, and
  // addServerAttributes() never reads it either).
  const d = served(cases[0].user_agent, { device: { type: "bot", os: "other", browser: "other" } })
  assert.deepEqual([d.type, d.os], [cases[0].expected.type, "other"])
})
