// The shipped tag never turns strings into code: no eval, no Function constructor, no string
// timers, no document.write (ARCHITECTURE.md "Actions"; e2e/test_dom_layer.py runs it under a
// CSP without 'unsafe-eval'). Reads the very file that ships: run `npm run build` first.
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { test } from "node:test"

const tag = readFileSync(new URL("../dist/vitrina.min.js", import.meta.url), "utf8")

test("the built tag evaluates no strings", () => {
  for (const bad of [/\beval\s*\(/, /\bFunction\s*\(/, /\bset(Timeout|Interval)\(\s*["'`]/, /document\.write/, /\bimport\s*\(/])
    assert.doesNotMatch(tag, bad)
})
