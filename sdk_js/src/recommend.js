// @ts-check
// The recommend module (sdk_js/dist/modules/recommend.min.js): content made in the browser from the
// catalogue and the visitor's data (docs/reference/recommendations.md, docs/reference/config.md).
// tag.js carries it for a bundle with a recommend or reorder action or a placeholder
// (server/delivery/modules.py). Its render hook rewrites a chosen variation's actions before the
// core applies them:
// - `recommend` fetches GET .../recommendations and becomes an `html` action: the products through
//   the merchant's template (placeholders text-escaped, prices formatted for their currency with
//   Intl, URL attributes checked as any merchant URL). Until the answer comes the variation is held
//   back (neither applied nor exposed) and only the slot is hidden; an answer later than
//   antiflicker_ms, a failed or an empty one leaves the original, unexposed, and says so in the
//   debug log. Clicks on a product and on its "add to cart" button are recommendation conversions.
// - `text` and `html` with {{placeholders}} are filled from the attributes and, for product.*,
//   from GET .../products/<id> of the product on the page (held back like a slot).
// - `reorder` becomes an op of this module's kind "x" (moveKind), undone on revert.
import { readViewedProducts } from "./attributes.js"
import { safeAttribute } from "./guards.js"
import { idsOf, linesOf, pageProduct, PRODUCT_ID, sessionEntry } from "./ecommerce.js"

/** @typedef {import("./types.js").Action} Action */
/** @typedef {import("./types.js").Recommend} Recommend */
/** @typedef {import("./types.js").ModuleInstall} ModuleInstall */
/** @typedef {import("./dom.js").OpKind} OpKind */
/** @typedef {{done?: boolean, late?: boolean, body?: any, until: number, hidden: {[selector: string]: () => void}}} Request */

// server/configs/placeholders.py PLACEHOLDER: {{name}} or {{name|default}}
export const PLACEHOLDER = /\{\{[ \t\n]*([A-Za-z_][\w.]*)[ \t\n]*(?:\|[ \t\n]*([^{}]*?)[ \t\n]*)?\}\}/g
const PRODUCT = "product."
const MAX_ANCHORS = 20
const MAX_EXCLUDED = 100
const MAX_REMEMBERED = 50 // recommended products clicked or added, per session
const MAX_EVENT_ITEMS = 20
/** @type {{[character: string]: string}} */
const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }

/** @param {string} text */
export const escapeHtml = (text) => text.replace(/[&<>"']/g, (character) => ESCAPES[character])

/**
 * The value at a dotted path of own properties, or undefined.
 * @param {any} tree
 * @param {string} path
 */
export const valueAt = (tree, path) =>
  path.split(".").reduce((node, part) => (node && typeof node == "object" && Object.prototype.hasOwnProperty.call(node, part) ? node[part] : undefined), tree)

/**
 * Fills the placeholders: a missing or empty value takes the default, or nothing.
 * @param {string} text
 * @param {(name: string) => any} lookup
 * @param {boolean} html escape for HTML (text actions set textContent: no escaping needed)
 */
export const fill = (text, lookup, html) =>
  text.replace(PLACEHOLDER, (_, name, fallback) => {
    const value = lookup(name)
    const shown = Array.isArray(value) ? value.join(", ") : value != null && typeof value != "object" && value !== "" ? "" + value : fallback ?? ""
    return html ? escapeHtml(shown) : shown
  })

/**
 * @param {number | null | undefined} amount
 * @param {string | undefined} currency
 * @param {string} locale
 */
export function money(amount, currency, locale) {
  if (amount == null) return ""
  try {
    return new Intl.NumberFormat(locale, { style: "currency", currency }).format(amount)
  } catch (_) {
    return amount.toFixed(2) + (currency ? " " + currency : "") // no currency, or one Intl does not know
  }
}

/**
 * What a template or a product.* placeholder may show of a product.
 * @param {any} product as the recommendations and products endpoints answer it
 * @param {string} locale
 * @returns {{[field: string]: any}}
 */
export const productFields = (product, locale) => ({
  ...product,
  price: money(product.sale_price ?? product.price, product.currency, locale),
  regular_price: money(product.price, product.currency, locale),
  sale_price: money(product.sale_price, product.currency, locale),
  availability: product.availability && product.availability.replace(/_/g, " "),
})

/**
 * HTML whose URL attributes (and any handler, should one get through) pass the SDK's guards, as
 * the browser will read them; the rest of the markup is the sanitised template's.
 * @param {Document} doc
 * @param {string} html
 */
export function safeHtml(doc, html) {
  const template = doc.createElement("template")
  template.innerHTML = html
  for (const element of template.content.querySelectorAll("*"))
    for (const { name, value } of [...element.attributes]) safeAttribute(name, value, doc.baseURI) || element.removeAttribute(name)
  return template.innerHTML
}

/**
 * A recommendation slot's HTML: a heading, then each product through the template, with its
 * "add to cart" button; the wrapper names the campaign and strategy its clicks count for.
 * @param {string} campaign
 * @param {Recommend} recommend
 * @param {any[]} products
 * @param {string} locale
 */
export const slotHtml = (campaign, recommend, products, locale) =>
  '<div class="vitrina-reco" data-vitrina-reco="' + escapeHtml(campaign) + '" data-vitrina-strategy="' + escapeHtml(recommend.strategy) + '">' +
  (recommend.title ? '<h2 class="vitrina-reco-title">' + escapeHtml(recommend.title) + "</h2>" : "") +
  '<div class="vitrina-reco-items">' +
  products
    .map(
      (product) =>
        '<div class="vitrina-reco-item" data-vitrina-item="' + escapeHtml(product.id) + '">' +
        fill(recommend.template, (name) => productFields(product, locale)[name], true) +
        (recommend.add ? '<button type="button" class="vitrina-reco-add" data-vitrina-add>' + escapeHtml(recommend.add) + "</button>" : "") +
        "</div>",
    )
    .join("") +
  "</div></div>"

/**
 * The recommendations request of a recommend action: anchors from the cart, the page's product,
 * the viewed products or the list given; the cart's products left out.
 * @param {string} endpoint
 * @param {Recommend} recommend
 * @param {any} attributes
 * @param {any[] | undefined} dataLayer
 */
export function recommendationsUrl(endpoint, recommend, attributes, dataLayer) {
  /** @param {any} ids */
  const valid = (ids) => (Array.isArray(ids) ? ids : []).map(String).filter((id) => PRODUCT_ID.test(id))
  const inCart = idsOf(linesOf(attributes.cart?.lines))
  const from = recommend.items
  const anchors = valid(from == "cart" ? inCart : from == "page" ? [pageProduct(dataLayer)] : from == "viewed" ? attributes.history?.products : from)
  const query = new URLSearchParams({ strategy: recommend.strategy, n: "" + recommend.n })
  anchors.length && query.set("items", anchors.slice(0, MAX_ANCHORS).join())
  inCart.length && query.set("exclude", inCart.slice(0, MAX_EXCLUDED).join())
  for (const name of /** @type {const} */ (["category", "min_price", "max_price"]))
    recommend[name] != null && query.set(name, "" + recommend[name])
  return endpoint + "/recommendations?" + query
}

/**
 * The op of a reorder action: the element's children whose data-category the visitor viewed
 * first, the most recent category first; the others after them, in their order. Returns its undo.
 * @param {string[]} categories newest first
 * @returns {(element: Element) => () => void}
 */
export const reorder = (categories) => (element) => {
  const original = [...element.children]
  /** @param {Element} child */
  const rank = (child) => {
    const found = categories.indexOf(child.getAttribute("data-category") || "")
    return found < 0 ? categories.length : found
  }
  original
    .map((child, index) => ({ child, index, rank: rank(child) }))
    .sort((a, b) => a.rank - b.rank || a.index - b.index)
    .forEach(({ child }) => element.append(child))
  return () => original.forEach((child) => child.parentNode == element && element.append(child))
}

/** @param {string | undefined} text */
const hasPlaceholder = (text) => text != null && text.search(PLACEHOLDER) >= 0

/**
 * The DOM layer's op kind "x": an action's `apply(element)`, run once per element (late ones
 * too), whose returned undo runs on revert.
 * @type {OpKind}
 */
export const moveKind = {
  ops: (action) => (action.apply ? [["", action.apply]] : []),
  early: () => undefined,
  read: (_, op, applied) => applied && op.wanted, // once applied, in its state
  write: (element, op, applied) => (applied.original = op.wanted(element)),
  undo: (original) => original(),
}

/** @type {ModuleInstall} */
export const installRecommend = (runtime) => {
  const win = /** @type {any} */ (window)
  const doc = document
  const api = win.vitrina
  /** @type {Map<string, Request>} this page view's requests, by URL */
  let requests = new Map()
  /** @type {{[campaign: string]: {signature: string, actions: Action[]}}} what each campaign shows on this page view */
  let rendered = {}
  /** @type {{[campaign: string]: {[id: string]: any}}} the products each campaign's slots show */
  let shown = {}
  // products recommended and clicked or added in this session: id -> [campaign, strategy]
  const kept = sessionEntry("vtr_m", runtime)
  /** @type {{[id: string]: string[]} | undefined} */
  let remembered
  /** @param {string} text */
  const note = (text) => runtime.note("recommend", text)
  const locale = () => doc.documentElement.lang || navigator.language
  /** @param {string} goal @param {any} fields */
  const convert = (goal, fields) => runtime.bundle()?.goals?.[goal] && runtime.convert(goal, fields.value, fields.order_id, fields)
  runtime.dom.kinds.x = moveKind

  /**
   * Hides an element of a campaign that has shown nothing yet until the request is done, at most
   * until its deadline.
   * @param {Request} made
   * @param {string} selector
   * @param {string} campaign
   */
  const hold = (made, selector, campaign) =>
    made.done || rendered[campaign] || made.hidden[selector] || (made.hidden[selector] = runtime.dom.hideFor([selector], made.until - Date.now(), ":not([data-vtr])"))

  /**
   * A request of this page view, made once. While a campaign has shown nothing yet, the elements
   * waiting for it stay hidden until applied, at most antiflicker_ms, after which it is late.
   * @param {string} url
   * @param {string} selector an element waiting for it
   * @param {string} campaign
   * @param {string} what for the debug log
   */
  function request(url, selector, campaign, what) {
    const ms = runtime.bundle()?.settings?.antiflicker_ms ?? 400
    let made = requests.get(url)
    const first = !made
    // nowhere to ask without an endpoint: no recommendations, no product
    if (!made) requests.set(url, (made = { until: Date.now() + ms, hidden: {}, done: !runtime.endpoint }))
    const hidden = made.hidden
    hold(made, selector, campaign)
    if (!first || made.done) return made
    const current = () => requests.get(url) == made
    /** @param {string} why @param {string} [then] */
    const giveUp = (why, then = ": the original stays, nothing is exposed") => {
      for (const show of Object.values(hidden)) show()
      note(campaign + ": " + what + " " + why + then)
    }
    setTimeout(() => made.done || ((made.late = true), giveUp("came after antiflicker_ms (" + ms + " ms)")), ms)
    fetch(url, { credentials: "omit" })
      .then((response) => (response.ok ? response.json() : Promise.reject(response.status)))
      .then(
        (body) => {
          made.done = true
          made.body = body
          if (made.late || !current()) return
          body.items && !body.items.length && giveUp("found none")
          runtime.decide()
        },
        (error) => {
          made.done = true
          current() && !made.late && (giveUp("failed (" + error + ")", ""), runtime.decide())
        },
      )
    return made
  }

  /** @param {string} id @param {string} campaign @param {string} strategy */
  function remember(id, campaign, strategy) {
    const products = (remembered = remembered || kept.read() || {})
    delete products[id]
    products[id] = [campaign, strategy]
    for (const old of Object.keys(products).slice(0, -MAX_REMEMBERED)) delete products[old]
    kept.write(products)
  }

  /** @param {MouseEvent} event */
  function clicked(event) {
    const target = /** @type {any} */ (event.target)
    const item = target && target.closest && target.closest("[data-vitrina-item]")
    const box = item && item.closest("[data-vitrina-reco]")
    const campaign = box && box.getAttribute("data-vitrina-reco")
    const id = item && item.getAttribute("data-vitrina-item")
    const product = campaign && shown[campaign]?.[id]
    const adding = !!target?.closest?.("[data-vitrina-add]")
    if (!product || !(adding || target.closest("a"))) return // our own slots only, and a link or the button
    const strategy = box.getAttribute("data-vitrina-strategy")
    remember(id, campaign, strategy)
    convert(adding ? "recommendation_add" : "recommendation_click", { campaign, strategy, items: [id] })
    if (adding) {
      event.preventDefault()
      runtime.emit("recommendation:add", { ...product, campaign, variation: api.getVariation(campaign), strategy })
    }
  }

  /**
   * A purchase (vitrina.track("purchase", {items}), as the commerce module makes it from GA4's):
   * the revenue of recommended products bought, per campaign, once.
   * @param {any} properties
   */
  function purchased(properties) {
    const products = (remembered = remembered || kept.read())
    if (!products) return
    /** @type {{[campaign: string]: {strategy: string, value: number, items: string[]}}} */
    const bought = {}
    for (const line of linesOf(properties?.items)) {
      const [campaign, strategy] = products[line.id] || []
      if (!campaign) continue
      const sum = (bought[campaign] = bought[campaign] || { strategy, value: 0, items: [] })
      sum.value += line.price * line.quantity
      sum.items.push(line.id)
    }
    const order_id = properties?.order_id
    for (const campaign in bought) {
      const { strategy, value, items } = bought[campaign]
      convert("recommendation_purchase", { campaign, strategy, value: Math.round(value * 100) / 100, order_id, items: items.slice(0, MAX_EVENT_ITEMS) })
    }
    kept.write((remembered = {})) // counted once: the next order starts afresh
  }
  const track = api.track
  api.track = (/** @type {any} */ name, /** @type {any} */ properties) => (track(name, properties), name == "purchase" && purchased(properties))

  /**
   * A chosen variation's actions as the page shows them, or null: not yet.
   * @param {string} campaign
   * @param {Action[]} actions
   * @param {() => any} attributesNow
   * @returns {Action[] | null}
   */
  function render(campaign, actions, attributesNow) {
    /** @type {any} */
    let attributes
    /** @type {Request | undefined} a request the actions wait for */
    let waiting
    let gaveUp = false
    /** @type {Action[]} */
    const out = []
    /** @type {string[]} */
    const signature = []
    /** @type {{[id: string]: any}} */
    const products = {}
    for (const action of actions) {
      const selector = /** @type {string} */ (action.selector)
      const recommend = action.recommend
      if (recommend && selector) {
        const made = request(recommendationsUrl(runtime.endpoint, recommend, (attributes ||= attributesNow()), win.dataLayer), selector, campaign, "recommendations")
        const items = made.body?.items
        if (made.late || (made.done && !items?.length)) gaveUp = true
        else if (!made.done) waiting = made
        else {
          for (const item of items) products[item.id] = item
          const html = safeHtml(doc, slotHtml(campaign, recommend, items, locale()))
          out.push({ selector, html })
          signature.push(html)
        }
      } else if (action.reorder) {
        // the categories viewed so far, this page's view_item included
        const viewed = { c: [...((attributes ||= attributesNow()).history?.categories || [])] }
        readViewedProducts(win, viewed)
        const categories = /** @type {string[]} */ (viewed.c)
        out.push({ selector, apply: reorder(categories) })
        signature.push(categories.join("\n"))
      } else if (hasPlaceholder(action.text) || hasPlaceholder(action.html)) {
        const text = /** @type {string} */ (action.text ?? action.html)
        let product = {}
        const id = /\{\{[ \t\n]*product\./.test(text) ? pageProduct(win.dataLayer) : undefined
        if (id) {
          const made = request(runtime.endpoint + "/products/" + encodeURIComponent(id), selector, campaign, "the product")
          if (made.late) gaveUp = true
          else if (!made.done) waiting = made
          else product = made.body ? productFields(made.body, locale()) : {} // not in the feed: the defaults
        }
        /** @param {string} name */
        const lookup = (name) => (name.startsWith(PRODUCT) ? /** @type {any} */ (product)[name.slice(PRODUCT.length)] : valueAt((attributes ||= attributesNow()), name))
        const filled = action.text != null ? { ...action, text: fill(action.text, lookup, false) } : { ...action, html: safeHtml(doc, fill(text, lookup, true)) }
        out.push(filled)
        signature.push(/** @type {string} */ (filled.text ?? filled.html))
      } else out.push(action)
    }
    // The variation shows as a whole: its other elements wait hidden with the slots.
    if (waiting && !gaveUp) for (const action of actions) action.selector && hold(waiting, action.selector, campaign)
    const previous = rendered[campaign]
    // Until every slot is ready, what was shown stays (nothing, at first: the original).
    if (waiting || gaveUp) return previous ? previous.actions : null
    if (!signature.length) return actions
    const key = signature.join("\0")
    if (previous && previous.signature == key) return previous.actions
    shown[campaign] = products
    rendered[campaign] = { signature: key, actions: out }
    return out
  }

  return {
    apply(decision, wanted) {
      /** @type {any} */
      let attributes
      const attributesNow = () => (attributes ||= runtime.attributes())
      for (const key in wanted) {
        const actions = render(key, wanted[key], attributesNow)
        if (actions) wanted[key] = actions
        else {
          // held back: neither applied nor exposed (the core exposes the decision's variations)
          delete wanted[key]
          delete decision.variations[key]
          decision.reasons[key] += "; waiting for its content"
        }
      }
    },
    pageView() {
      requests = new Map()
      rendered = {}
      shown = {}
    },
    start: () => doc.addEventListener("click", clicked, true),
    consent: (given) => given || ((remembered = undefined), kept.forget()),
  }
}
