// @ts-check
// The commerce module (sdk_js/dist/modules/commerce.min.js): the cart the SDK knows, kept for the
// session, and GA4 e-commerce events from the data layer (docs/reference/js-api.md "The cart" and
// "E-commerce events"). tag.js carries it for a bundle that recommends, reads the cart, or sets
// settings.ecommerce (server/delivery/modules.py).
//
// - The cart (`cart.value`, `cart.items`, `cart.lines`) is what the site sets with
//   vitrina.set({cart}) or what GA4 view_cart, add_to_cart and remove_from_cart events say,
//   whichever came last; it is kept in localStorage (`vtr_b`, with the visitor's consent) until
//   the session ends, and added to the attributes of each decision.
// - view_item, add_to_cart and purchase are sent as item events: signals for recommendations.
// - A purchase is also vitrina.track("purchase", {value, order_id: transaction_id, items}), so a
//   goal on the purchase event counts it with its order id, and the cart empties.
import { merge } from "./attributes.js"
import { cartOf, ga4, idsOf, linesOf, sessionEntry } from "./ecommerce.js"

/** @typedef {import("./types.js").Cart} Cart */
/** @typedef {import("./types.js").CartLine} CartLine */
/** @typedef {import("./types.js").ModuleInstall} ModuleInstall */

const MAX_EVENT_ITEMS = 20 // collect's bound on an item event
const SIGNALS = { view_item: "view", add_to_cart: "cart", purchase: "purchase" }

/**
 * The cart after a GA4 cart event, or null when the event does not change it.
 * @param {string} name
 * @param {CartLine[]} lines the event's
 * @param {CartLine[]} cart the lines so far
 * @returns {CartLine[] | null}
 */
export function nextLines(name, lines, cart) {
  if (name == "view_cart") return lines
  if (name == "purchase") return []
  const sign = name == "add_to_cart" ? 1 : name == "remove_from_cart" ? -1 : 0
  if (!sign) return null
  const next = cart.map((line) => ({ ...line }))
  for (const line of lines) {
    const found = next.find((kept) => kept.id == line.id)
    if (found) (found.quantity += sign * line.quantity), sign > 0 && (found.price = line.price)
    else if (sign > 0) next.push(line)
  }
  return next.filter((line) => line.quantity > 0)
}

/** @type {ModuleInstall} */
export const installCommerce = (runtime) => {
  const win = /** @type {any} */ (window)
  const api = win.vitrina
  const read = new WeakSet() // data-layer entries already handled
  const kept = sessionEntry("vtr_b", runtime)
  /** @type {Cart | undefined} */
  let cart
  let deciding = false // handling the data layer as a page view starts: its decision follows

  /** @param {Cart} next the cart the next decisions read */
  const use = (next) => {
    kept.write((cart = next))
    deciding || runtime.decide()
  }

  /** @param {any} entry */
  const handle = (entry) => {
    if (!entry || typeof entry != "object" || read.has(entry)) return
    read.add(entry)
    const [name, parameters] = ga4(entry)
    const lines = linesOf(parameters?.items)
    const action = SIGNALS[/** @type {keyof SIGNALS} */ (name)]
    if (action && lines.length)
      runtime.send({ type: "item", action: /** @type {any} */ (action), items: idsOf(lines).slice(0, MAX_EVENT_ITEMS), session: runtime.attributes().visit.count })
    if (name == "purchase") {
      const value = +parameters?.value
      api.track("purchase", { value: value >= 0 ? value : cartOf(lines).value, order_id: parameters?.transaction_id, items: lines })
    }
    const next = nextLines(name, lines, linesOf(cart?.lines))
    if (next) use(cartOf(next))
  }
  const scan = () => {
    try {
      ;(win.dataLayer || []).forEach(handle)
    } catch (_) {} // a malformed data layer is the site's
  }

  // What the site sets is the cart too, merged into it: kept here rather than with the page's
  // other values, so that a later GA4 event changes it.
  const set = api.set
  api.set = (/** @type {any} */ values) => {
    const given = values?.cart
    if (given && typeof given == "object") {
      const merged = merge(cart, given)
      deciding = true
      use({ ...merged, lines: linesOf(merged.lines) })
      deciding = false
      values = { ...values }
      delete values.cart // the attributes' cart is this module's
    }
    set(values)
  }

  return {
    attributes: (attributes) => cart && (attributes.cart = cart),
    pageView: (visit) => {
      deciding = true
      cart = cart || kept.read(visit)
      // GA4 pushes from now on, as gtag and Google Tag Manager make them (both keep a push they find)
      const dataLayer = (win.dataLayer = win.dataLayer || [])
      if (!dataLayer.vitrina) {
        const push = dataLayer.push
        dataLayer.push = function () {
          const length = push.apply(this, /** @type {any} */ (arguments))
          for (const entry of arguments) handle(entry)
          return length
        }
        dataLayer.vitrina = 1
      }
      scan()
      deciding = false
    },
    // a data layer the site replaced; the cart stored now that consent is known
    start: () => (scan(), cart && kept.write(cart)),
    consent: (given) => given || kept.forget(),
  }
}
