// @ts-check
// GA4 e-commerce data as the commerce and recommend modules read it (each bundles its own copy):
// data-layer entries, cart lines, product ids the server accepts. Nothing here touches the page.

/** @typedef {import("./types.js").Cart} Cart */
/** @typedef {import("./types.js").CartLine} CartLine */

// spec/schemas/ids.schema.json product_id: an id the server would refuse is never sent
export const PRODUCT_ID = /^[\w.:@+~/-]{1,100}$/
const MAX_QUANTITY = 1e5

/**
 * [event name, parameters] of a data-layer entry: Google Tag Manager's
 * `{event, ecommerce: {...}}` or gtag's `arguments` ("event", name, parameters).
 * @param {any} entry
 * @returns {[any, any]}
 */
export const ga4 = (entry) => (entry && entry[0] == "event" ? [entry[1], entry[2]] : [entry && entry.event, entry && entry.ecommerce])

/**
 * Cart lines from GA4 items (`item_id`, `quantity`, `price`) or from lines a site gives (`id`):
 * ids the server accepts, whole quantities from 1 (default 1), prices from 0 (default 0).
 * @param {any} items
 * @returns {CartLine[]}
 */
export const linesOf = (items) =>
  (Array.isArray(items) ? items : []).flatMap((item) => {
    const raw = item?.item_id ?? item?.id
    const id = raw == null ? "" : "" + raw
    const quantity = Math.round(+item?.quantity)
    const price = +item?.price
    return PRODUCT_ID.test(id)
      ? [{ id, quantity: quantity >= 1 && quantity <= MAX_QUANTITY ? quantity : 1, price: price >= 0 && price < 1e12 ? price : 0 }]
      : []
  })

/**
 * A cart from its lines: value (to the cent) and item count follow from them.
 * @param {CartLine[]} lines
 * @returns {Cart}
 */
export const cartOf = (lines) => ({
  lines,
  value: Math.round(lines.reduce((sum, line) => sum + line.price * line.quantity, 0) * 100) / 100,
  items: lines.reduce((sum, line) => sum + line.quantity, 0),
})

/** @param {CartLine[] | undefined} lines distinct ids, in order */
export const idsOf = (lines) => [...new Set((lines || []).map((line) => line.id))]

/**
 * The product on the page: the latest GA4 view_item's first item.
 * @param {any[] | undefined} dataLayer
 * @returns {string | undefined}
 */
export function pageProduct(dataLayer) {
  let id
  for (const entry of dataLayer || []) {
    const [name, parameters] = ga4(entry)
    if (name == "view_item") id = linesOf(parameters?.items)[0]?.id ?? id
  }
  return id
}

/**
 * A module's own entry in localStorage, for the visitor's current session: what was kept in an
 * earlier session reads as undefined. Written only when the visitor's consent lets modules store.
 * The first page view of a session reads nothing: nothing of this session can be kept yet, and
 * a new visitor's first page view never opens localStorage before the first paint (its first
 * use costs milliseconds, docs/DESIGN.md "First view").
 * @param {string} key
 * @param {import("./types.js").ModuleRuntime} runtime
 */
export function sessionEntry(key, runtime) {
  const visit = () => runtime.attributes().visit
  return {
    /** @param {import("./types.js").VisitState} [state] the visit state, when the caller has it (cheaper than the attributes) */
    read(state) {
      try {
        const { count, pageviews } = state ? { count: state.n, pageviews: state.p } : visit()
        // getItem: null for nothing kept, which JSON.parse reads without throwing
        const kept = pageviews > 1 && JSON.parse(/** @type {string} */ (localStorage.getItem(key)))
        return kept && kept.n == count ? kept.v : undefined
      } catch (_) {} // nothing kept, storage refused, or not ours
    },
    /** @param {any} value */
    write(value) {
      try {
        runtime.mayStore() && (/** @type {any} */ (localStorage)[key] = JSON.stringify({ n: visit().count, v: value }))
      } catch (_) {} // full, or refused: kept for this page only
    },
    forget: () => localStorage.removeItem(key),
  }
}
