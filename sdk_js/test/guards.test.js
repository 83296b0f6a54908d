// What no action may set (sdk_js/src/guards.js), with the payloads of the adversarial review
// (issue 10): URLs are read as the browser's URL parser reads them. e2e/test_guards.py applies
// the same payloads in Chromium.
import { test } from "node:test"
import assert from "node:assert/strict"
import { safeAttribute, safeUrl } from "../src/guards.js"

const BASE = "https://shop.example/p/mug"
const SCRIPT_URLS = [
  "javascript:alert(1)",
  "JavaScript:alert(1)",
  "java\tscript:alert(1)",
  "java\nscript:alert(1)",
  "java\rscript:alert(1)",
  "\x01javascript:alert(1)",
  " \x00\x1fjavascript:alert(1)",
  "javascript\t:alert(1)",
  "vbscript:msgbox(1)",
  "data:text/html,<script>alert(1)</script>",
  "blob:https://shop.example/1",
  "file:///etc/passwd",
]

test("safeUrl: http(s), mailto, tel and relative URLs only, as the URL parser reads them", () => {
  for (const url of ["https://a.example/x", "http://a.example", "/cart", "cart?x=1", "#top", "?q=1", "//cdn.example/x.png", "mailto:a@b.example", "tel:+331", ""])
    assert.equal(safeUrl(url, BASE), true, url)
  for (const url of SCRIPT_URLS) assert.equal(safeUrl(url, BASE), false, JSON.stringify(url))
  // An HTML character reference is not decoded in an attribute set by setAttribute: a relative path.
  assert.equal(safeUrl("jav&NewLine;ascript:alert(1)", BASE), true)
  assert.equal(new URL("jav&NewLine;ascript:alert(1)", BASE).protocol, "https:")
})

test("safeAttribute: no handlers, srcdoc or style; URL attributes with safe URLs only", () => {
  for (const name of ["onclick", "ONERROR", "onmouseover", "on", "srcdoc", "SrcDoc", "style"])
    assert.equal(safeAttribute(name, "x", BASE), false, name)
  for (const name of ["href", "src", "action", "formaction", "xlink:href", "poster", "data", "background", "cite", "HREF"])
    for (const url of SCRIPT_URLS) assert.equal(safeAttribute(name, url, BASE), false, name + " " + JSON.stringify(url))
  assert.equal(safeAttribute("srcset", "a.jpg 1x, javascript:alert(1) 2x", BASE), false)
  assert.equal(safeAttribute("srcset", "a.jpg 1x, /b.jpg 2x", BASE), true)
  // ping is a space-separated list, split as the browser splits it.
  assert.equal(safeAttribute("ping", "/a https://b.example/p", BASE), true)
  assert.equal(safeAttribute("ping", "/a javascript:alert(1)", BASE), false)
  assert.equal(safeAttribute("href", "/promo?utm_content=v1", BASE), true)
  // Removing an attribute the action may set is fine; removing a handler is not an action either.
  assert.equal(safeAttribute("href", null, BASE), true)
  assert.equal(safeAttribute("onclick", null, BASE), false)
  // Other attributes hold text, whatever it looks like.
  for (const [name, value] of [["title", "javascript:alert(1)"], ["alt", "x"], ["data-x", "javascript:"], ["aria-label", "y"], ["class", "promo"]])
    assert.equal(safeAttribute(name, value, BASE), true, name)
})
