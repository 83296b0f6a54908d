// The built files, as they ship (run `npm run build` first): dist/manifest.json names the core,
// the modules and the SDK file; none of them turns strings into code (no eval, no Function
// constructor, no string timers, no document.write: ARCHITECTURE.md "Actions"; e2e runs them
// under a CSP without 'unsafe-eval'); each ends as a complete statement, because tag.js joins
// them (server/delivery/serving.py).
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { test } from "node:test"
import vm from "node:vm"

const dist = (path) => readFileSync(new URL("../dist/" + path, import.meta.url), "utf8")
const manifest = JSON.parse(dist("manifest.json"))
const files = [manifest.core, manifest.all, ...Object.values(manifest.modules)]

test("the manifest names the core, the SDK file and each module", () => {
  assert.deepEqual(Object.keys(manifest).sort(), ["all", "core", "modules"])
  assert.deepEqual(Object.keys(manifest.modules), ["identity", "triggers"])
  for (const path of files) assert.ok(dist(path).length > 100, path)
})

test("the built scripts evaluate no strings", () => {
  for (const path of files)
    for (const bad of [/\beval\s*\(/, /\bFunction\s*\(/, /\bset(Timeout|Interval)\(\s*["'`]/, /document\.write/, /\bimport\s*\(/])
      assert.doesNotMatch(dist(path), bad, path)
})

test("the SDK file is the core and every module, joined as tag.js joins them", () => {
  const modules = Object.keys(manifest.modules).sort().map((name) => dist(manifest.modules[name]))
  assert.equal(dist(manifest.all), [dist(manifest.core), ...modules].join("\n"))
  for (const path of files) assert.ok(dist(path).endsWith(";"), path)
})

test("a module registers on the core's window.vitrina, and does nothing without it", () => {
  const registered = []
  const window = { vitrina: { _module: (name, install) => registered.push([name, typeof install]) } }
  for (const name in manifest.modules) vm.runInNewContext(dist(manifest.modules[name]), { window })
  assert.deepEqual(registered, Object.keys(manifest.modules).map((name) => [name, "function"]))
  for (const name in manifest.modules) vm.runInNewContext(dist(manifest.modules[name]), { window: {} })
})
