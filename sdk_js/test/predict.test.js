// The predict module as the core runs it (sdk_js/src/predict.js): models from the served revision,
// predict.<goal> in each decision's tree, the feature vector on each exposure and conversion sent.
import assert from "node:assert/strict"
import { test } from "node:test"
import { evalCondition } from "../src/condition.js"
import { features, installPredict, noModel, score } from "../src/predict.js"

const model = { features: 1, intercept: -3, weights: { "visit.pageviews": 1.2, "cart.value": 0.4 } }
const tree = () => ({ visit: { count: 2, pageviews: 5 }, cart: { value: 40 } })
// The core's runtime as the module sees it: attributes() is the whole tree (its own hook's call
// back into the module included), as index.js collectAttributes gives it.
const runtime = (bundle, whole = tree) => {
  const notes = []
  const r = { notes, bundle: () => bundle, note: (topic, text) => notes.push([topic, text]) }
  r.attributes = () => {
    const built = whole()
    r.hooks.attributes(built)
    return built
  }
  return r
}
const install = (r) => (r.hooks = installPredict(r))

test("predict.<goal> comes from the served revision's model, and only from it", () => {
  const r = runtime({ predict: ["purchase"], models: { purchase: { intercept: 9, weights: {} } }, revision: { models: { purchase: model } } })
  const hooks = install(r)
  const attributes = { ...tree(), predict: { purchase: 0.99 } }
  hooks.attributes(attributes)
  assert.equal(attributes.predict.purchase, score(model, features(tree())))
  assert.ok(attributes.predict.purchase > 0.1 && attributes.predict.purchase < 0.9)
  assert.deepEqual(r.notes, [])
})

test("without a model every condition on the goal is false, $lt and $not included, and the log says why", () => {
  const r = runtime({ predict: ["purchase"], revision: { models: {} } })
  const hooks = install(r)
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

test("the score and the batch's vector see what the site set after the modules' hooks (the cart)", () => {
  // the tree the hook is given lacks the cart the core merges in later; attributes() has it
  const withCart = () => ({ ...tree(), cart: { value: 400 } })
  const r = runtime({ predict: ["purchase"], revision: { models: { purchase: model } } }, withCart)
  const hooks = install(r)
  assert.equal(hooks.batch(), undefined) // nothing decided yet
  const given = { visit: { count: 2, pageviews: 5 } }
  hooks.attributes(given)
  assert.equal(given.predict.purchase, score(model, features(withCart())))
  assert.notEqual(given.predict.purchase, score(model, features(tree())))
  assert.deepEqual(hooks.batch(), { features: features(withCart()) })
})
