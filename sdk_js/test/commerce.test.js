import { test } from "node:test"
import assert from "node:assert/strict"
import { cartOf, ga4, idsOf, linesOf, pageProduct } from "../src/ecommerce.js"
import { nextLines } from "../src/commerce.js"

test("ga4 reads Google Tag Manager's and gtag's data-layer entries alike", () => {
  const items = [{ item_id: "sku-1" }]
  assert.deepEqual(ga4({ event: "add_to_cart", ecommerce: { items } }), ["add_to_cart", { items }])
  const gtag = (function () { return arguments })("event", "view_item", { items })
  assert.deepEqual(ga4(gtag), ["view_item", { items }])
  assert.deepEqual(ga4(null), [null, null])
  assert.deepEqual(ga4({ "gtm.start": 1 }), [undefined, undefined])
})

test("linesOf keeps what the server accepts: ids of its alphabet, whole quantities, prices from 0", () => {
  assert.deepEqual(
    linesOf([
      { item_id: "sku-1", quantity: 2, price: 12.5 },
      { item_id: 42, quantity: "3", price: "4" }, // numbers and numeric strings, as GA4 pushes them
      { id: "sku-3" }, // a site's own lines
      { item_id: "has space" }, { item_id: null }, { price: 1 }, { item_id: "x".repeat(101) }, null, "sku-9",
      { item_id: "sku-4", quantity: -1, price: -5 }, { item_id: "sku-5", quantity: 1e9, price: NaN },
    ]),
    [
      { id: "sku-1", quantity: 2, price: 12.5 },
      { id: "42", quantity: 3, price: 4 },
      { id: "sku-3", quantity: 1, price: 0 },
      { id: "sku-4", quantity: 1, price: 0 },
      { id: "sku-5", quantity: 1, price: 0 },
    ],
  )
  assert.deepEqual(linesOf(undefined), [])
  assert.deepEqual(linesOf({ item_id: "sku-1" }), [])
})

test("a cart's value and item count follow from its lines", () => {
  const cart = cartOf([{ id: "a", quantity: 3, price: 0.1 }, { id: "b", quantity: 1, price: 20 }])
  assert.equal(cart.value, 20.3)
  assert.equal(cart.items, 4)
  assert.deepEqual(idsOf([{ id: "a" }, { id: "b" }, { id: "a" }]), ["a", "b"])
})

test("GA4 cart events move the cart; other events leave it", () => {
  const one = [{ id: "a", quantity: 1, price: 10 }]
  let cart = nextLines("add_to_cart", one, [])
  cart = nextLines("add_to_cart", [{ id: "a", quantity: 2, price: 9 }, { id: "b", quantity: 1, price: 5 }], cart)
  assert.deepEqual(cart, [{ id: "a", quantity: 3, price: 9 }, { id: "b", quantity: 1, price: 5 }])
  cart = nextLines("remove_from_cart", [{ id: "a", quantity: 3, price: 9 }, { id: "zzz", quantity: 1, price: 1 }], cart)
  assert.deepEqual(cart, [{ id: "b", quantity: 1, price: 5 }])
  assert.deepEqual(nextLines("view_cart", one, cart), one) // the whole cart, as the site shows it
  assert.deepEqual(nextLines("purchase", one, cart), [])
  assert.equal(nextLines("view_item", one, cart), null)
  const kept = [{ id: "a", quantity: 1, price: 10 }]
  nextLines("add_to_cart", one, kept)
  assert.deepEqual(kept, [{ id: "a", quantity: 1, price: 10 }]) // never changed in place
})

test("the product on the page is the latest view_item's first item", () => {
  const layer = [{ event: "view_item", ecommerce: { items: [{ item_id: "a" }, { item_id: "b" }] } },
    { event: "add_to_cart", ecommerce: { items: [{ item_id: "c" }] } }]
  assert.equal(pageProduct(layer), "a")
  layer.push((function () { return arguments })("event", "view_item", { items: [{ item_id: "d" }] }))
  assert.equal(pageProduct(layer), "d")
  assert.equal(pageProduct([{ event: "view_item", ecommerce: { items: [] } }]), undefined)
  assert.equal(pageProduct(undefined), undefined)
})
