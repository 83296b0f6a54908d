// Hot data: what the SDK knows about the page, the visit and the device, as one nested
// object whose dotted paths are the attribute names conditions use (docs/DESIGN.md
// "Attributes"). The browser objects come in as arguments; collect() alone writes, to the
// visit state it is given (the products viewed).
import { isObj } from "./condition.js"

// Anchored on the registrable name, so "x.example.com" is not X and "google.co.uk" is Google.
const KNOWN =
  /(?:^|\.)(?:(google|bing|yahoo|duckduckgo|yandex|baidu|ecosia)|(facebook|fb|instagram|twitter|x|t|linkedin|lnkd|pinterest|tiktok|youtube|youtu|reddit))\.[a-z]{2,3}(?:\.[a-z]{2})?$/
const ALIAS = { fb: "facebook", x: "twitter", t: "twitter", lnkd: "linkedin", youtu: "youtube" }
const UTM = ["source", "medium", "campaign", "term", "content"]

const lc = (s) => (s || "").toLowerCase()
const bare = (h) => lc(h).replace(/^www\./, "")

// document.referrer is "" or an absolute URL.
export const hostOf = (url) => url && new URL(url).hostname

// First value wins, as in most analytics tools; inherited names are never overwritten.
export const parseQuery = (search) => {
  const q = {}
  new URLSearchParams(search).forEach((v, k) => k in q || (q[k] = v))
  return q
}

// The landing UTM values, or null when this URL has none (the session keeps its own).
export const utmOf = (q) => {
  let u = null
  for (const k of UTM) if (q["utm_" + k] != null) (u = u || {})[k] = q["utm_" + k]
  return u
}

// [source, medium] of a page view, or 0 when the visitor comes from another page of this
// site (internal: the session keeps its source). Campaign parameters beat the referrer.
export function classify(ref, host, q) {
  const um = lc(q.utm_medium)
  const click = q.gclid ? "google" : q.msclkid ? "bing" : q.fbclid && "facebook"
  const rh = bare(hostOf(ref))
  const m = KNOWN.exec(rh)
  let r = !rh
    ? []
    : /^(web)?mail\.|outlook\./.test(rh) // webmail first: mail.google.com is no search
      ? [rh, "email"]
      : m
        ? [m[1] || ALIAS[m[2]] || m[2], m[1] ? "search" : "social"]
        : [rh, "referral"]
  if (rh == bare(host)) {
    if (!q.utm_source && !um && !click) return 0
    r = []
  }
  if (click) r = [click, "paid"]
  if (q.utm_source) r[0] = lc(q.utm_source)
  if (um) r[1] = /^(e-?mail|newsletter)/.test(um) ? "email" : /^(cpc|ppc|cpm|paid)/.test(um) ? "paid" : um
  return [r[0] || "direct", r[1] || (r[0] ? "referral" : "direct")]
}

// Fallback when the server sent no device context (tag.js always sends it): type only, as
// server/delivery/context.py gives it (spec/07-devices.json). An Android UA without "Mobi" is a tablet.
export const sniff = (ua) => ({
  type: /bot\/|spider|crawl|externalhit/i.test(ua) ? "bot" : /iPad|Tablet|Android(?!.*Mobi)/.test(ua) ? "tablet" : /Mobi/.test(ua) ? "mobile" : "desktop",
})

// The visitor's local clock; weekday 0 is Sunday, as Date#getDay.
export const timeOf = (d) => ({
  hour: d.getHours(),
  weekday: d.getDay(),
  date: d.toLocaleDateString("sv"), // Swedish dates are ISO: YYYY-MM-DD
})

// Deep merge into a copy of a: plain objects merge, arrays and scalars replace.
export const merge = (a, b) => {
  const o = Object.assign({}, a)
  for (const k in b) o[k] = isObj(o[k]) && isObj(b[k]) ? merge(o[k], b[k]) : b[k]
  return o
}

const NS = /^(?:page|referrer|utm|visit|time|device|geo|history|cart|user|crm)$/

// vitrina.set({...}): a namespace key merges into that namespace ({cart: {value: 12}},
// {page: {type: "product"}}); any other key goes under `user`.
export const expand = (o) => {
  let out = {}
  for (const k in o) out = merge(out, NS.test(k) ? { [k]: o[k] } : { user: { [k]: o[k] } })
  return out
}

// Newest first, distinct, as strings, at most 20 (the visit state keeps these lists).
const front = (l, x) => (l = l || [], x == null ? l : [x + ""].concat(l.filter((y) => y != x)).slice(0, 20))

// The whole tree. v: visit state (storage.js), ctx: server context {geo, device},
// b: page behaviour (triggers.js), extra: what the site set.
export function collect(win, now, v, ctx, b, extra) {
  const sec = (t) => Math.floor((now - t) / 1e3)
  const L = win.location
  const doc = win.document
  const nav = win.navigator
  const s = win.screen
  const r = v.r || []
  // Viewed products: GA4 view_item events in the data layer, as GTM ({event, ecommerce: {items}})
  // or gtag("event", "view_item", {items}) push them, go into the visit state (index.js keeps
  // it). Re-reading the same data layer changes nothing; a malformed one is not our problem.
  try {
    for (const e of win.dataLayer || [])
      for (const i of (e[1] == "view_item" ? e[2] : e.event == "view_item" && e.ecommerce).items || [])
        (v.i = front(v.i, i.item_id)), (v.c = front(v.c, i.item_category))
  } catch (e) {}
  return merge(
    {
      page: {
        url: L.href,
        path: L.pathname,
        host: L.hostname,
        query: parseQuery(L.search),
        title: doc.title,
        // The site declares it in <head>: <meta name="vitrina:page-type" content="product">.
        type: (doc.querySelector('meta[name="vitrina:page-type"]') || 0).content,
        lang: doc.documentElement.lang,
        scroll: b.scroll,
        time: sec(b.t0),
        exit_intent: b.exit,
        idle: sec(b.last),
      },
      referrer: { url: doc.referrer, host: hostOf(doc.referrer), source: r[0], medium: r[1] },
      utm: v.u,
      visit: {
        new: v.n == 1,
        returning: v.n > 1,
        count: v.n,
        pageviews: v.p,
        total_pageviews: v.t,
        days_since_last: v.d,
        landing: v.g,
        time_on_site: sec(v.s),
      },
      time: timeOf(new Date(now)),
      device: Object.assign(sniff(nav.userAgent), ctx.device, {
        touch: nav.maxTouchPoints > 0,
        lang: nav.language,
        screen: { width: s.width, height: s.height },
      }),
      geo: ctx.geo,
      history: { pages: [...v.h].reverse(), products: front(v.i), categories: front(v.c), events: v.e },
      cart: {},
      user: {},
    },
    extra,
  )
}
