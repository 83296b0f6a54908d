// @ts-check
// Hot data: what the SDK knows about the page, the visit and the device, as one nested
// object whose dotted paths are the attribute names conditions use (docs/DESIGN.md
// "Attributes"). The browser objects come in as arguments; nothing here writes but
// readViewedProducts(), to the visit state it is given.
import { isObj } from "./condition.js"

/** @typedef {import("./types.js").VisitState} VisitState */

const UTM = ["source", "medium", "campaign", "term", "content"]

/**
 * document.referrer is "" or an absolute URL.
 * @param {string} url
 */
export const hostOf = (url) => url && new URL(url).hostname

/**
 * First value wins, as in most analytics tools; inherited names are never overwritten.
 * @param {string} search
 */
export const parseQuery = (search) => {
  /** @type {{[name: string]: string}} */
  const query = {}
  new URLSearchParams(search).forEach((value, name) => name in query || (query[name] = value))
  return query
}

/**
 * The landing UTM values, or null when this URL has none (the session keeps its own).
 * @param {{[name: string]: string}} query
 */
export const utmOf = (query) => {
  /** @type {{[name: string]: string} | null} */
  let utm = null
  for (const name of UTM) if (query["utm_" + name] != null) (utm = utm || /** @type {{[name: string]: string}} */ ({}))[name] = query["utm_" + name]
  return utm
}

/**
 * device.type from the user agent, as server/delivery/context.py classifies it
 * (spec/07-devices.json holds both to the same answers). An Android UA without "Mobi" is a tablet.
 * No user agent tests as "undefined", which matches none of the patterns: desktop.
 * @param {string | undefined} userAgent
 */
export const deviceType = (userAgent) =>
  /bot\/|spider|crawl|externalhit/i.test(/** @type {string} */ (userAgent))
    ? "bot"
    : /iPad|Tablet|Android(?!.*Mobi)/.test(/** @type {string} */ (userAgent))
      ? "tablet"
      : /Mobi/.test(/** @type {string} */ (userAgent))
        ? "mobile"
        : "desktop"

/** @param {number} n */
const twoDigits = (n) => (n < 10 ? "0" : "") + n

/**
 * The visitor's local clock; weekday 0 is Sunday, as Date#getDay. The date is formatted by
 * hand: a locale-aware formatter would load the browser's locale data on the critical path.
 * @param {Date} date
 */
export const timeOf = (date) => ({
  hour: date.getHours(),
  weekday: date.getDay(),
  date: date.getFullYear() + "-" + twoDigits(date.getMonth() + 1) + "-" + twoDigits(date.getDate()),
})

/**
 * Deep merge into a copy of `a`: plain objects merge, arrays and scalars replace.
 * @param {any} a
 * @param {any} b
 * @returns {any}
 */
export const merge = (a, b) => {
  const out = Object.assign({}, a)
  for (const key in b) out[key] = isObj(out[key]) && isObj(b[key]) ? merge(out[key], b[key]) : b[key]
  return out
}

const NAMESPACES = /^(?:page|referrer|utm|visit|time|device|geo|history|cart|user)$/
// Cold data comes from the server only (the identity module): vitrina.set cannot set it.
export const SERVER_ONLY = /^(?:crm|predict)$/

/**
 * vitrina.set({...}): a namespace key merges into that namespace ({cart: {value: 12}},
 * {page: {type: "product"}}); `crm` and `predict` are dropped; any other key goes under `user`.
 * @param {{[key: string]: any}} values
 */
export const expand = (values) => {
  /** @type {any} */
  let out = {}
  for (const key in values)
    if (!SERVER_ONLY.test(key))
      out = merge(out, NAMESPACES.test(key) ? { [key]: values[key] } : { user: { [key]: values[key] } })
  return out
}

/**
 * Newest first, distinct, as strings, at most 20 (the visit state keeps these lists).
 * @param {string[] | undefined} list
 * @param {any} [item]
 */
const newestFirst = (list, item) => (
  (list = list || []), item == null ? list : [item + ""].concat(list.filter((x) => x != item)).slice(0, 20)
)

/**
 * Viewed products: GA4 view_item events in the data layer, as GTM ({event, ecommerce: {items}})
 * or gtag("event", "view_item", {items}) push them, go into the visit state. Re-reading the
 * same data layer changes nothing; a malformed one is not our problem.
 * @param {any} win
 * @param {VisitState} visit
 */
export function readViewedProducts(win, visit) {
  try {
    for (const entry of win.dataLayer || [])
      for (const item of (entry[1] == "view_item" ? entry[2] : entry.event == "view_item" && entry.ecommerce).items || [])
        (visit.i = newestFirst(visit.i, item.item_id)), (visit.c = newestFirst(visit.c, item.item_category))
  } catch (_) {}
}

/**
 * The core's attribute tree: modules add theirs (the context module geo, device.os and
 * device.browser; the identity module crm; the triggers module page.scroll, idle and
 * exit_intent), then the site's
 * `vitrina.set()` values are merged over it.
 * @param {Window} win
 * @param {number} now
 * @param {VisitState} visit
 * @param {number} pageStartedAt when this page view started (ms)
 * @returns {any}
 */
export function collect(win, now, visit, pageStartedAt) {
  /** @param {number | undefined} since */
  const secondsSince = (since) => Math.floor((now - (since || 0)) / 1e3)
  const location = win.location
  const doc = win.document
  const navigator = win.navigator
  const screen = win.screen
  const sourceMedium = visit.r || []
  return {
    page: {
      url: location.href,
      path: location.pathname,
      host: location.hostname,
      query: parseQuery(location.search),
      title: doc.title,
      // The site declares it in <head>: <meta name="vitrina:page-type" content="product">.
      type: /** @type {HTMLMetaElement | null} */ (doc.querySelector('meta[name="vitrina:page-type"]'))?.content,
      lang: doc.documentElement.lang,
      time: secondsSince(pageStartedAt),
    },
    referrer: { url: doc.referrer, host: hostOf(doc.referrer), source: sourceMedium[0], medium: sourceMedium[1] },
    utm: visit.u,
    visit: {
      new: visit.n == 1,
      returning: /** @type {number} */ (visit.n) > 1,
      count: visit.n,
      pageviews: visit.p,
      total_pageviews: visit.t,
      days_since_last: visit.d,
      landing: visit.g,
      time_on_site: secondsSince(visit.s),
    },
    time: timeOf(new Date(now)),
    device: {
      type: deviceType(navigator.userAgent),
      touch: navigator.maxTouchPoints > 0,
      lang: navigator.language,
      screen: { width: screen.width, height: screen.height },
    },
    history: {
      pages: [...(visit.h || [])].reverse(),
      products: newestFirst(visit.i),
      categories: newestFirst(visit.c),
      events: visit.e,
    },
    cart: {},
    user: {},
  }
}
