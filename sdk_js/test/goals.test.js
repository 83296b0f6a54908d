import { test } from "node:test"
import assert from "node:assert/strict"
import { clicked, tracked, viewed } from "../src/goals.js"
import { evalCondition } from "../src/esm.js"

const goals = {
  purchase: { event: "purchase" },
  order: { event: "order_completed" },
  add_to_cart: { click: "button.add-to-cart" },
  broken: { click: "[[" },
  thanks_page: { pageview: { "page.path": "/thanks" } },
}

test("track(name) converts event goals for that name, and the goal named so", () => {
  assert.deepEqual(tracked(goals, "purchase"), ["purchase"])
  assert.deepEqual(tracked(goals, "order_completed"), ["order"])
  assert.deepEqual(tracked(goals, "order"), ["order"])
  assert.deepEqual(tracked(goals, "nothing"), [])
  assert.deepEqual(tracked(undefined, "purchase"), [])
})

test("pageview goals match the page attributes", () => {
  assert.deepEqual(viewed(goals, { page: { path: "/thanks" } }, evalCondition), ["thanks_page"])
  assert.deepEqual(viewed(goals, { page: { path: "/" } }, evalCondition), [])
})

test("click goals match the element or an ancestor; a bad selector matches nothing", () => {
  const el = { closest: (s) => (s == "button.add-to-cart" ? {} : s == "[[" ? assert.fail("unreachable") : null) }
  const throwing = { closest: (s) => { if (s == "[[") throw new SyntaxError("bad"); return s == "button.add-to-cart" ? {} : null } }
  assert.deepEqual(clicked(goals, throwing), ["add_to_cart"])
  assert.deepEqual(clicked(goals, { closest: () => null }), [])
  assert.deepEqual(clicked(goals, {}), [])
  void el
})
