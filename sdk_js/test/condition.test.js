// Failure behaviour beyond the shared vectors: never throw, say why in debug mode.
import assert from "node:assert/strict"
import { test } from "node:test"
import { decide, evalCondition } from "../src/esm.js"

test("log hears why a condition is false", () => {
  const cases = [
    [{ a: { $regx: 1 } }, "unknown operator $regx"],
    [{ a: { $regex: "(" } }, "bad regex ("],
    [{ a: { $in: 1 } }, "$in needs an array"],
    [{ $or: {} }, "$or needs an array"],
    [[], "condition must be an object"],
  ]
  for (const [condition, reason] of cases) {
    const heard = []
    assert.equal(evalCondition(condition, { a: 1 }, (m) => heard.push(m)), false)
    assert.deepEqual(heard, [reason])
  }
})

test("absurd nesting is false, not a crash", () => {
  let condition = { a: 1 }
  for (let i = 0; i < 100000; i++) condition = { $not: condition }
  const heard = []
  assert.equal(evalCondition(condition, { a: 1 }, (m) => heard.push(m)), false)
  assert.match(heard[0], /^condition error/)
})

test("undefined, NaN and prototype keys behave like JSON values", () => {
  assert.equal(evalCondition({ x: null }, { x: undefined }), true)
  assert.equal(evalCondition({ x: { $exists: false } }, { x: undefined }), true)
  assert.equal(evalCondition({ x: { $in: [NaN] } }, { x: NaN }), false)
  assert.equal(evalCondition({ x: { $type: "number" } }, { x: NaN }), true)
  assert.equal(evalCondition({ "a.constructor": { $exists: true } }, { a: {} }), false)
  assert.equal(evalCondition({ a: 1 }, undefined), false)
  assert.equal(evalCondition({}, undefined), true)
})

test("decide works without options and uses the clock", () => {
  const bundle = {
    site: "shop",
    campaigns: [
      { key: "past", seed: "past", schedule: { start: null, end: "2000-01-01T00:00:00Z" }, variations: [{ key: "a", weight: 1 }] },
      { key: "now", seed: "now", variations: [{ key: "a", weight: 1 }] },
    ],
  }
  const out = decide(bundle, {}, "v1.abc")
  assert.deepEqual(out.variations, { now: "a" })
  assert.equal(out.reasons.past, "not scheduled")
  assert.equal(decide({ site: "s" }, null, 42).holdout, false)
})

test("condition errors inside decide reach options.log", () => {
  const heard = []
  const bundle = { site: "s", segments: { bad: { x: { $nope: 1 } } }, campaigns: [{ key: "c", seed: "c", segment: "bad", variations: [{ key: "a", weight: 1 }] }] }
  const out = decide(bundle, {}, "v", { log: (m) => heard.push(m) })
  assert.equal(out.reasons.c, "segment bad not matched")
  assert.deepEqual(heard, ["unknown operator $nope"])
})
