// The predict module as the core runs it (sdk_js/src/predict.js): models from the served revision,
// predict.<goal> in each decision's tree, the feature vector on each exposure and conversion sent.
import assert from "node:assert/strict"
import { test } from "node:test"
import { evalCondition } from "../src/condition.js"
import { features, installPredict, noModel, score } from "../src/predict.js"

const model = { features: 1, intercept: -3, weights: { "visit.pageviews": 1.2, "cart.value": 0.4 } }
const tree = () => ({ visit: { count: 2, pageviews: 5 }, cart: { value: 40 } })
const runtime = (bundle) => {
  const notes = []
  return { notes, bundle: () => bundle, note: (topic, text) => notes.push([topic, text]) }
}

test("predict.<goal> comes from the served revision's model, and only from it", () => {
  const r = runtime({ predict: ["purchase"], models: { purchase: { intercept: 9, weights: {} } }, revision: { models: { purchase: model } } })
  const hooks = installPredict(r)
  const attributes = { ...tree(), predict: { purchase: 0.99 } }
  hooks.attributes(attributes)
  assert.equal(attributes.predict.purchase, score(model, features(tree())))
  assert.ok(attributes.predict.purchase > 0.1 && attributes.predict.purchase < 0.9)
  assert.deepEqual(r.notes, [])
})

test("without a model every condition on the goal is false, $lt and $not included, and the log says why", () => {
  const r = runtime({ predict: ["purchase"], revision: { models: {} } })
  const hooks = installPredict(r)
  assert.deepEqual(r.notes, [["predict", noModel("purchase")]])
  const attributes = tree()
  hooks.attributes(attributes)
  for (const condition of [{ "predict.purchase": { $lt: 0.05 } }, { $not: { "predict.purchase": { $gt: 0.5 } } },
    { "predict.purchase": { $exists: false } }]) {
    const heard = []
    assert.equal(evalCondition(condition, attributes, (reason) => heard.push(reason)), false)
    assert.deepEqual(heard, [noModel("purchase")])
  }
  // nothing that copies or prints the tree trips on it
  assert.equal(JSON.stringify(attributes.predict), "{}")
})

test("each exposure and conversion sent carries the vector of the page view's last decision", () => {
  const hooks = installPredict(runtime({ predict: ["purchase"] }))
  hooks.attributes(tree())
  const events = [{ type: "exposure", campaign: "a" }, { type: "conversion", goal: "purchase" },
    { type: "item", action: "view" }, { type: "exposure", campaign: "b", features: { utm: 1 } }]
  hooks.batch({ visitor_id: "v1.x", events })
  assert.deepEqual(events[0].features, features(tree()))
  assert.deepEqual(events[1].features, features(tree()))
  assert.equal(events[2].features, undefined)
  assert.deepEqual(events[3].features, { utm: 1 }) // a retried event keeps the vector it was first sent with
})
