import { test } from "node:test"
import assert from "node:assert/strict"
import { escapeHtml, fill, money, productFields, recommendationsUrl, reorder, valueAt } from "../src/recommend.js"

test("placeholders: defaults for what is missing or empty, escaped for HTML, own properties only", () => {
  const tree = { geo: { city: "Paris" }, cart: { value: 54.9, lines: [] }, user: { name: "" }, history: { categories: ["a", "b"] } }
  const lookup = (name) => valueAt(tree, name)
  assert.equal(fill("Hello {{geo.city|there}}, {{ user.name | friend }}!", lookup, false), "Hello Paris, friend!")
  assert.equal(fill("{{cart.value}} {{geo.region|}} {{history.categories}}", lookup, false), "54.9  a, b")
  assert.equal(fill("{{geo}} {{constructor}} {{geo.city.length|?}}", lookup, false), "  ?")
  assert.equal(fill("{{x|<b>&</b>}}", () => undefined, true), "&lt;b&gt;&amp;&lt;/b&gt;")
  assert.equal(fill('<a title="{{t}}">', () => '"><img src=x onerror=alert(1)>', true),
    '<a title="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;">')
  assert.equal(fill("{{ not a name }} {{a|b}c}}", () => "X", false), "{{ not a name }} {{a|b}c}}")
  assert.equal(escapeHtml(`&<>"'`), "&amp;&lt;&gt;&quot;&#39;")
})

test("prices are formatted for the product's currency, sale price first", () => {
  assert.equal(money(12.5, "EUR", "en-US"), "€12.50")
  assert.equal(money(1234, "JPY", "ja-JP"), "￥1,234")
  assert.equal(money(12.5, "XYZW", "en"), "12.50 XYZW") // not a currency Intl knows
  assert.equal(money(null, "EUR", "en"), "")
  const fields = productFields({ id: "a", price: 20, sale_price: 15, currency: "USD", availability: "out_of_stock" }, "en-US")
  assert.deepEqual([fields.price, fields.regular_price, fields.sale_price, fields.availability], ["$15.00", "$20.00", "$15.00", "out of stock"])
  assert.equal(productFields({ price: 20, sale_price: null, currency: "USD" }, "en-US").sale_price, "")
})

test("a recommendations request: anchors from where the action says, the cart left out, ids the server takes", () => {
  const attributes = { cart: { lines: [{ id: "c1", quantity: 1, price: 1 }, { id: "c2", quantity: 1, price: 1 }] },
    history: { products: ["v1", "bad id", "v2"] } }
  const layer = [{ event: "view_item", ecommerce: { items: [{ item_id: "p1" }] } }]
  const url = (recommend) => new URL(recommendationsUrl("https://x.example/v1/sites/shop", { n: 4, ...recommend }, attributes, layer))
  const cart = url({ strategy: "bought_together", items: "cart" })
  assert.equal(cart.pathname, "/v1/sites/shop/recommendations")
  assert.deepEqual(Object.fromEntries(cart.searchParams), { strategy: "bought_together", n: "4", items: "c1,c2", exclude: "c1,c2" })
  assert.equal(url({ strategy: "upsell", items: "page" }).searchParams.get("items"), "p1")
  assert.equal(url({ strategy: "personal", items: "viewed" }).searchParams.get("items"), "v1,v2")
  const fixed = url({ strategy: "similar", items: ["s1"], category: "Home > Mugs", min_price: 5, max_price: 0 })
  assert.deepEqual([fixed.searchParams.get("items"), fixed.searchParams.get("category"), fixed.searchParams.get("min_price"),
    fixed.searchParams.get("max_price")], ["s1", "Home > Mugs", "5", "0"])
  assert.equal(url({ strategy: "bestsellers", items: "page" }).searchParams.has("min_price"), false)
  const empty = new URL(recommendationsUrl("https://x.example/v1/sites/shop", { strategy: "trending", items: "cart", n: 2 }, {}, []))
  assert.equal(empty.search, "?strategy=trending&n=2")
})

test("reorder puts the viewed categories first, newest first, keeps the rest in order, and undoes itself", () => {
  const child = (category) => ({ category, getAttribute: () => category })
  const children = ["home", "garden", "kids", "garden", null].map(child)
  const element = { children: [...children], append(node) { this.children = this.children.filter((c) => c != node).concat(node) } }
  for (const c of children) c.parentNode = element
  const undo = reorder(["garden", "kids"])(element)
  assert.deepEqual(element.children.map((c) => c.category), ["garden", "garden", "kids", "home", null])
  undo()
  assert.deepEqual(element.children, children)
})
