// The shared vectors in spec/ against the JS twins; tests/test_spec_vectors.py runs the same files.
import assert from "node:assert/strict"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { describe, test } from "node:test"
import { adaptiveDecision } from "../src/allocation.js"
import { bucketText, chooseVariation, decide, evalCondition, hash } from "../src/esm.js"
import { fmix32, fnv1a } from "../src/hash.js"
import { features, installPredictions } from "../src/predict.js"
import { claimsOf } from "../src/slices.js"

const spec = new URL("../../spec/", import.meta.url)
// Peer vectors beside the project checkout; a fresh clone has none and skips them.
const conformance = new URL("../../../shared/conformance/growthbook-cases.json", import.meta.url)
const load = (url) => JSON.parse(readFileSync(url, "utf8"))
const index = load(new URL("index.json", spec))
const files = index.files.map(({ file, topic }) => ({ file, topic, doc: load(new URL(file, spec)) }))

test("index lists every vector file with its topic and version", () => {
  const onDisk = readdirSync(spec).filter((f) => /^\d\d-.*\.json$/.test(f))
  assert.deepEqual(onDisk.sort(), files.map((f) => f.file).sort())
  for (const { topic, doc } of files) {
    assert.equal(doc.topic, topic)
    assert.equal(doc.specVersion, index.specVersion)
  }
  assert.ok(files.reduce((n, f) => n + f.doc.cases.length, 0) >= 300)
})

const run = {
  conditions: (c) => assert.equal(evalCondition(c.condition, c.attributes), c.expected),
  hashing: (c) => {
    if (c.function == "fnv1a") assert.equal(fnv1a(c.input), c.expected)
    else if (c.function == "fmix32") assert.equal(fmix32(c.input), c.expected)
    else if (c.function == "hash") {
      const b = hash(c.seed, c.id)
      assert.equal(b, c.expected)
      assert.equal(bucketText(b), c.expected_text)
    } else assert.equal(bucketText(c.bucket), c.expected)
  },
  bucketing: (c) => {
    let b = c.bucket
    if (b === undefined) {
      b = hash(c.campaign.seed, c.visitor_id)
      assert.equal(bucketText(b), c.expected_bucket_text)
    }
    const v = chooseVariation(c.campaign, b)
    assert.equal(v && v.key, c.expected_variation)
  },
  // what the tag decides with the adaptive module (allocation.js): an adaptive campaign's slice weights and slices
  decisions: (c) =>
    assert.deepEqual(adaptiveDecision(decide, c.bundle, c.attributes, c.visitor_id, c.options, evalCondition), c.expected),
}
run.regex = run.versions = run.conditions
// the bitset claimsOf writes, every segment's condition evaluated (here: true for the matched names)
run.segments = (c) => {
  const bundle = { campaigns: [], segments: Object.fromEntries(c.segments.map((name) => [name, { name }])) }
  assert.equal(claimsOf(bundle, {}, (condition) => c.matched.includes(condition.name)).segments, c.bitset)
}
// Feature vectors and scores agree with the Python twin within 1e-9; a missing model's reason is logged.
run.predict = (c) => {
  const close = (actual, expected) => assert.ok(Math.abs(actual - expected) <= 1e-9, `${actual} vs ${expected}`)
  const found = features(c.attributes)
  assert.deepEqual(Object.keys(found).sort(), Object.keys(c.expected_features).sort())
  for (const name in found) close(found[name], c.expected_features[name])
  if (!c.goals) return
  const tree = installPredictions(structuredClone(c.attributes), c.models, c.goals)
  for (const [goal, expected] of Object.entries(c.expected)) {
    if (expected == null) assert.throws(() => tree.predict[goal])
    else close(tree.predict[goal], expected)
  }
  for (const check of c.conditions || []) {
    const heard = []
    assert.equal(evalCondition(check.condition, tree, (reason) => heard.push(reason)), check.matches)
    if (check.reason) assert.deepEqual(heard, [check.reason])
  }
}

// 07-devices.json: sdk_js/test/devices.test.js (the UA fallback answers the type only).
for (const { file, topic, doc } of files.filter((f) => f.topic != "devices")) {
  describe(file, () => {
    for (const c of doc.cases) test(c.description, () => run[topic](c))
  })
}

describe("growthbook conformance (evalCondition)", () => {
  if (!existsSync(conformance)) {
    test("peer vectors", { skip: "no ../shared/conformance beside this checkout" }, () => {})
    return
  }
  load(conformance).evalCondition.forEach(([name, condition, attributes, expected, ...saved], n) => {
    const skip = (saved.length || /\$(inGroup|notInGroup)/.test(JSON.stringify(condition))) && "saved groups are outside Vitrina's language"
    test(`${String(n).padStart(3, "0")} ${name}`, { skip }, () => assert.equal(evalCondition(condition, attributes), expected))
  })
})
