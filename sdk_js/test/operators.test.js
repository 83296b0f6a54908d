// The rarer operators are a module of the tag (sdk_js/src/operators.js): without it the core's
// evaluator knows them not, and a condition using one is false as a whole; with it, they are
// the ESM build's (spec.test.js holds that one to spec/). This file imports condition.js alone:
// node --test runs it in a process of its own, where nothing else added them.
import { test } from "node:test"
import assert from "node:assert/strict"
import { addOperators, evalCondition } from "../src/condition.js"
import { rareOperators } from "../src/operators.js"

const attributes = { app: { version: "1.10.0" }, tags: ["a", "b"], items: [{ price: 3 }] }
const conditions = [
  { "app.version": { $vgt: "1.9" } },
  { tags: { $all: ["a"] } },
  { tags: { $size: 2 } },
  { tags: { $type: "array" } },
  { items: { $elemMatch: { price: { $gte: 3 } } } },
]

test("without the operators module the rarer operators are unknown: the condition is false, and says why", () => {
  for (const condition of conditions) {
    const heard = []
    assert.equal(evalCondition(condition, attributes, (why) => heard.push(why)), false)
    assert.match(heard[0], /^unknown operator \$/)
  }
  assert.equal(evalCondition({ $not: conditions[0] }, attributes), false) // malformed is false as a whole
  assert.equal(evalCondition({ tags: { $in: ["a"] }, "app.version": { $regex: "^1\\." } }, attributes), true)
})

test("the operators module adds them", () => {
  addOperators(rareOperators)
  for (const condition of conditions) assert.equal(evalCondition(condition, attributes), true, JSON.stringify(condition))
  assert.equal(evalCondition({ "app.version": { $vlt: "1.9" } }, attributes), false)
})

test("a regex is compiled once and stays right, valid or not", () => {
  for (let round = 0; round < 3; round++) {
    assert.equal(evalCondition({ "app.version": { $regexi: "^1\\.1" } }, attributes), true)
    assert.equal(evalCondition({ "app.version": { $regex: "^2" } }, attributes), false)
    assert.equal(evalCondition({ "app.version": { $regex: "(" } }, attributes), false)
  }
})
