import { test } from "node:test"
import assert from "node:assert/strict"
import { due } from "../src/triggers.js"

test("due: each trigger kind against the page behaviour", () => {
  const now = 100e3
  const b = { start: now - 20e3, lastInput: now - 5e3, scroll: 60, exitIntent: false }
  const events = { add_to_cart: 1 }
  assert.equal(due({ scroll: 50 }, b, events, now), true)
  assert.equal(due({ scroll: 75 }, b, events, now), false)
  assert.equal(due({ time_on_page: 20 }, b, events, now), true)
  assert.equal(due({ time_on_page: 21 }, b, events, now), false)
  assert.equal(due({ idle: 5 }, b, events, now), true)
  assert.equal(due({ idle: 30 }, b, events, now), false)
  assert.equal(due({ exit_intent: true }, b, events, now), false)
  assert.equal(due({ exit_intent: true }, { ...b, exitIntent: true }, events, now), true)
  assert.equal(due({ event: "add_to_cart" }, b, events, now), true)
  assert.equal(due({ event: "purchase" }, b, events, now), false)
  assert.equal(due({}, b, events, now), false)
})
