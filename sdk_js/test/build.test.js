// The built files, as they ship (run `npm run build` first): dist/manifest.json names the core,
// the modules and the SDK file; none of them turns strings into code (no eval, no Function
// constructor, no string timers, no document.write: docs/reference/config.md "Actions"; e2e runs them
// under a CSP without 'unsafe-eval'); each ends as a complete statement, because tag.js joins
// them (server/delivery/serving.py).
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { test } from "node:test"
import vm from "node:vm"

const dist = (path) => readFileSync(new URL("../dist/" + path, import.meta.url), "utf8")
const manifest = JSON.parse(dist("manifest.json"))
const modules = { ...manifest.modules, ...manifest.lazy }
const files = [manifest.core, manifest.all, ...Object.values(modules)]

test("the manifest names the core, the SDK file, each module tag.js may carry and each the core fetches", () => {
  assert.deepEqual(Object.keys(manifest).sort(), ["all", "core", "lazy", "modules"])
  assert.deepEqual(Object.keys(manifest.modules), ["adaptive", "attribution", "commerce", "context", "goals", "identity", "inserts", "operators", "predict", "recommend", "redirect", "slices", "styles", "triggers"])
  assert.deepEqual(Object.keys(manifest.lazy), ["debug", "preview"])
  for (const path of files) assert.ok(dist(path).length > 100, path)
})

test("the built scripts evaluate no strings", () => {
  for (const path of files)
    for (const bad of [/\beval\s*\(/, /\bFunction\s*\(/, /\bset(Timeout|Interval)\(\s*["'`]/, /document\.write/, /\bimport\s*\(/])
      assert.doesNotMatch(dist(path), bad, path)
})

test("the SDK file is the core and every module tag.js may carry but adaptive, commerce, identity, predict, recommend and slices, joined as tag.js joins them", () => {
  const apart = ["adaptive", "commerce", "identity", "predict", "recommend", "slices"]
  const carried = Object.keys(manifest.modules).sort().filter((name) => !apart.includes(name)).map((name) => dist(manifest.modules[name]))
  // V8's compile hint first (server/delivery/serving.py COMPILE_HINT), as in tag.js.
  assert.equal(dist(manifest.all), "//# allFunctionsCalledOnLoad\n" + [dist(manifest.core), ...carried].join("\n"))
  for (const path of files) assert.ok(dist(path).endsWith(";"), path)
})

test("a module registers on the core's window.vitrina, and does nothing without it", () => {
  const registered = []
  const window = { vitrina: { _module: (name, install) => registered.push([name, typeof install]) } }
  for (const name in modules) vm.runInNewContext(dist(modules[name]), { window })
  assert.deepEqual(registered, Object.keys(modules).map((name) => [name, "function"]))
  for (const name in modules) vm.runInNewContext(dist(modules[name]), { window: {} })
})

test("the core leaves out the condition reasons only the ESM build's callers hear", () => {
  assert.doesNotMatch(dist(manifest.core), /needs an array|unknown operator/)
  assert.match(readFileSync(new URL("../dist/vitrina.esm.js", import.meta.url), "utf8"), /unknown operator/)
})
