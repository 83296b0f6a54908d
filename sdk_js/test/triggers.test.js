import { test } from "node:test"
import assert from "node:assert/strict"
import { due } from "../src/triggers.js"

test("due: each trigger kind against the page behaviour", () => {
  const now = 100e3
  const b = { t0: now - 20e3, last: now - 5e3, scroll: 60, exit: false, ev: { add_to_cart: 1 } }
  assert.equal(due({ scroll: 50 }, b, now), true)
  assert.equal(due({ scroll: 75 }, b, now), false)
  assert.equal(due({ time_on_page: 20 }, b, now), true)
  assert.equal(due({ time_on_page: 21 }, b, now), false)
  assert.equal(due({ idle: 5 }, b, now), true)
  assert.equal(due({ idle: 30 }, b, now), false)
  assert.equal(due({ exit_intent: true }, b, now), false)
  assert.equal(due({ exit_intent: true }, { ...b, exit: true }, now), true)
  assert.equal(due({ event: "add_to_cart" }, b, now), true)
  assert.equal(due({ event: "purchase" }, b, now), false)
  assert.equal(due({}, b, now), false)
})
