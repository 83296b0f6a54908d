import { test } from "node:test"
import assert from "node:assert/strict"
import { collect, expand, merge, parseQuery, readViewedProducts, timeOf, utmOf } from "../src/attributes.js"
import { classify } from "../src/attribution.js"
import { addServerAttributes, serverContext } from "../src/context.js"
import { addBehaviour } from "../src/triggers.js"

const HOST = "shop.example"
const cls = (ref, search = "") => classify(ref, HOST, parseQuery(search))

test("parseQuery keeps the first value and never a built-in name", () => {
  assert.deepEqual(parseQuery("?a=1&a=2&b=x%20y"), { a: "1", b: "x y" })
  const q = parseQuery("?__proto__=1&constructor=2")
  assert.equal(Object.getPrototypeOf(q), Object.prototype)
  assert.equal(q.constructor, Object)
})

test("referrer classification", () => {
  const cases = [
    ["", "", 0], // direct: the session keeps its source (direct/direct when it starts so)
    ["https://www.google.com/search?q=mug", "", ["google", "search"]],
    ["https://www.google.co.uk/", "", ["google", "search"]],
    ["https://www.bing.com/", "", ["bing", "search"]],
    ["https://search.yahoo.co.jp/", "", ["yahoo", "search"]],
    ["https://duckduckgo.com/", "", ["duckduckgo", "search"]],
    ["https://yandex.ru/", "", ["yandex", "search"]],
    ["https://www.baidu.com/", "", ["baidu", "search"]],
    ["https://www.ecosia.org/", "", ["ecosia", "search"]],
    ["https://l.facebook.com/l.php", "", ["facebook", "social"]],
    ["https://www.instagram.com/", "", ["instagram", "social"]],
    ["https://t.co/abc", "", ["twitter", "social"]],
    ["https://x.com/someone", "", ["twitter", "social"]],
    ["https://www.linkedin.com/", "", ["linkedin", "social"]],
    ["https://lnkd.in/x", "", ["linkedin", "social"]],
    ["https://pinterest.fr/", "", ["pinterest", "social"]],
    ["https://www.tiktok.com/", "", ["tiktok", "social"]],
    ["https://m.youtube.com/", "", ["youtube", "social"]],
    ["https://youtu.be/x", "", ["youtube", "social"]],
    ["https://old.reddit.com/r/x", "", ["reddit", "social"]],
    ["https://mail.google.com/", "", ["mail.google.com", "email"]],
    ["https://blog.example.org/post", "", ["blog.example.org", "referral"]],
    ["https://x.example.org/", "", ["x.example.org", "referral"]],
    ["https://www.googleblog.com/", "", ["googleblog.com", "referral"]],
    ["", "?utm_source=Newsletter&utm_medium=email", ["newsletter", "email"]],
    ["", "?utm_source=nl&utm_medium=E-Mail", ["nl", "email"]],
    ["https://www.google.com/", "?gclid=abc", ["google", "paid"]],
    ["", "?msclkid=abc", ["bing", "paid"]],
    ["https://m.facebook.com/", "?fbclid=abc", ["facebook", "paid"]],
    ["https://www.google.com/", "?utm_source=google&utm_medium=cpc", ["google", "paid"]],
    ["", "?utm_source=partner&utm_medium=ppc", ["partner", "paid"]],
    ["", "?utm_source=fb&utm_medium=paid_social", ["fb", "paid"]],
    ["", "?utm_source=partner&utm_medium=affiliate", ["partner", "affiliate"]],
    ["https://www.google.com/", "?utm_source=partner", ["partner", "search"]],
    ["", "?utm_source=partner", ["partner", "referral"]],
    // Back on our own site, campaign parameters still start a new attribution.
    ["https://shop.example/cart", "?utm_source=banner&utm_medium=internal", ["banner", "internal"]],
  ]
  for (const [ref, search, want] of cases) assert.deepEqual(cls(ref, search), want, ref + search)
})

test("a referrer from this same site is internal (0): the session keeps its source", () => {
  assert.equal(cls("https://shop.example/products"), 0)
  assert.equal(cls("https://www.shop.example/"), 0)
  assert.equal(classify("https://shop.example/", "www.shop.example", {}), 0)
})

test("a referral exclusion is as this site: the session keeps its source, unless campaign parameters", () => {
  const excluded = ["checkout.stripe.com", "paypal.com"] // as the compiler writes them
  const from = (ref, search = "") => classify(ref, HOST, parseQuery(search), excluded)
  assert.equal(from("https://checkout.stripe.com/pay/x"), 0)
  assert.equal(from("https://www.paypal.com/checkoutnow"), 0)
  assert.deepEqual(from("https://stripe.com/"), ["stripe.com", "referral"]) // hosts by name, not their parents
  assert.deepEqual(from("https://notpaypal.com/"), ["notpaypal.com", "referral"])
  assert.deepEqual(from("https://paypal.com/", "?utm_source=paypal&utm_medium=partner"), ["paypal", "partner"])
})

test("utmOf: landing values, or null when the URL has none", () => {
  assert.equal(utmOf(parseQuery("?a=1")), null)
  assert.deepEqual(utmOf(parseQuery("?utm_source=nl&utm_campaign=bf&utm_term=mug&utm_content=hero&utm_medium=email")), {
    source: "nl",
    medium: "email",
    campaign: "bf",
    term: "mug",
    content: "hero",
  })
})

test("timeOf reads the local clock", () => {
  const d = new Date(2026, 10, 23, 7, 5) // a Monday, local time
  assert.deepEqual(timeOf(d), { hour: 7, weekday: 1, date: "2026-11-23" })
  assert.equal(timeOf(new Date(2026, 0, 1, 23, 59)).date, "2026-01-01")
})

test("timeOf formats the date by hand as toLocaleDateString('sv') does, without loading locale data", () => {
  for (let day = 0; day < 800; day += 7) {
    const d = new Date(1999, 11, 25 + day, (day * 5) % 24, 30)
    assert.equal(timeOf(d).date, d.toLocaleDateString("sv"))
  }
})

test("merge copies, deep-merges objects and replaces arrays", () => {
  const a = { cart: { value: 1, items: 2 }, h: [1, 2] }
  const m = merge(a, { cart: { value: 5 }, h: [3] })
  assert.deepEqual(m, { cart: { value: 5, items: 2 }, h: [3] })
  assert.deepEqual(a, { cart: { value: 1, items: 2 }, h: [1, 2] })
})

test("expand: namespaces address the tree, other keys go under user", () => {
  assert.deepEqual(expand({ plan: "gold", cart: { value: 12 }, page: { type: "product" } }), {
    user: { plan: "gold" },
    cart: { value: 12 },
    page: { type: "product" },
  })
  const polluted = merge({}, expand(JSON.parse('{"__proto__": {"polluted": 1}, "user": {"__proto__": {"polluted": 1}}}')))
  assert.equal({}.polluted, undefined)
  assert.ok(polluted)
})

function fakeWindow(href, { referrer = "", title = "T", lang = "fr", pageType = null } = {}) {
  const u = new URL(href)
  return {
    location: { href: u.href, pathname: u.pathname, hostname: u.hostname, search: u.search },
    document: {
      title,
      referrer,
      documentElement: { lang },
      querySelector: (s) => (pageType && s == 'meta[name="vitrina:page-type"]' ? { content: pageType } : null),
    },
    navigator: { userAgent: "Mozilla/5.0 (iPhone; Mobile)", maxTouchPoints: 5, language: "fr-FR" },
    screen: { width: 390, height: 844 },
  }
}

// The tree a decision reads: the core's, the context module's and the triggers module's attributes, the site's values.
const tree = (w, now, visit, ctx, b, extra) => {
  const a = collect(w, now, visit, b.start)
  const context = serverContext(ctx)
  if (context) addServerAttributes(a, context)
  addBehaviour(a, b, now)
  return merge(a, extra)
}

test("collect fills every namespace: the browser's device type, the server's os and browser, site values last", () => {
  const now = Date.UTC(2026, 10, 23, 12)
  const visit = { n: 2, s: now - 65e3, l: now, p: 3, t: 9, d: 4, g: "/landing", r: ["google", "search"], u: { source: "nl" }, h: ["/", "/p"], e: { purchase: 1 } }
  const b = { start: now - 12e3, lastInput: now - 3e3, scroll: 40, exitIntent: false }
  const ctx = { geo: { country: "FR", region: "IDF", city: "Paris", continent: "EU", timezone: "Europe/Paris" }, device: { type: "tablet", os: "ios", browser: "safari" } }
  const w = fakeWindow("https://shop.example/p/mug?color=red&utm_source=nl#top", { referrer: "https://www.google.com/", pageType: "product" })
  const a = tree(w, now, visit, ctx, b, { user: { plan: "gold" }, cart: { value: 12, items: 1 }, page: { type: "override" } })
  assert.deepEqual(a.page, {
    url: "https://shop.example/p/mug?color=red&utm_source=nl#top",
    path: "/p/mug",
    host: "shop.example",
    query: { color: "red", utm_source: "nl" },
    title: "T",
    type: "override",
    lang: "fr",
    time: 12,
    scroll: 40,
    idle: 3,
    exit_intent: false,
  })
  assert.deepEqual(a.referrer, { url: "https://www.google.com/", host: "www.google.com", source: "google", medium: "search" })
  assert.deepEqual(a.utm, { source: "nl" })
  assert.deepEqual(a.visit, { new: false, returning: true, count: 2, pageviews: 3, total_pageviews: 9, days_since_last: 4, landing: "/landing", time_on_site: 65 })
  // The context's type is not the browser's: the browser's own classification wins.
  assert.deepEqual(a.device, { type: "mobile", os: "ios", browser: "safari", touch: true, lang: "fr-FR", screen: { width: 390, height: 844 } })
  assert.deepEqual(a.geo, ctx.geo)
  assert.deepEqual(a.history, { pages: ["/p", "/"], products: [], categories: [], events: { purchase: 1 } })
  assert.deepEqual(a.cart, { value: 12, items: 1 })
  assert.deepEqual(a.user, { plan: "gold" })
  assert.equal(a.time.hour, new Date(now).getHours())
  // Without server context: the type, and no os or browser.
  const alone = collect(w, now, visit, b.start)
  assert.deepEqual([alone.device.type, alone.device.os, alone.device.browser, alone.geo], ["mobile", undefined, undefined, undefined])
  assert.deepEqual([alone.page.scroll, alone.page.idle, alone.page.exit_intent], [undefined, undefined, undefined]) // the triggers module's
  assert.equal(collect(fakeWindow("https://shop.example/"), now, visit, b.start).page.type, undefined)
})

// What readViewedProducts() records into the visit state v from the data layer dl.
function viewed(v, dl) {
  const s = { h: [], ...v }
  readViewedProducts({ ...fakeWindow("https://shop.example/"), dataLayer: dl }, s)
  for (const k of ["i", "c"]) if (s[k]) v[k] = s[k]
}

// GA4's view_item as Google Tag Manager pushes it, and as gtag() does (an arguments object).
const gtm = (...items) => ({ event: "view_item", ecommerce: { currency: "EUR", items } })
function gtag() {
  return arguments
}

test("viewed: GA4 view_item events in the data layer, newest first, distinct, as strings", () => {
  const v = {}
  viewed(v, [
    { event: "gtm.js" },
    gtm({ item_id: "mug", item_category: "kitchen" }),
    { event: "add_to_cart", ecommerce: { items: [{ item_id: "cart-only", item_category: "x" }] } },
    gtag("event", "view_item_list", { items: [{ item_id: "list-only" }] }),
    gtag("event", "view_item", { items: [{ item_id: 42, item_category: "toys" }] }),
    gtm({ item_id: "kettle", item_category: "kitchen" }, { item_id: "no-category" }),
  ])
  assert.deepEqual(v, { i: ["no-category", "kettle", "42", "mug"], c: ["kitchen", "toys"] })
  // The same data layer read again (each decision re-reads it) changes nothing.
  viewed(v, [gtm({ item_id: "mug", item_category: "kitchen" }), gtm({ item_id: "kettle", item_category: "kitchen" })])
  viewed(v, [gtm({ item_id: "mug", item_category: "kitchen" }), gtm({ item_id: "kettle", item_category: "kitchen" })])
  assert.deepEqual(v, { i: ["kettle", "mug", "no-category", "42"], c: ["kitchen", "toys"] })
})

test("viewed: at most 20 of each, the oldest dropped", () => {
  const v = {}
  for (let n = 0; n < 30; n++) viewed(v, [gtm({ item_id: "p" + n, item_category: "c" + n })])
  assert.equal(v.i.length, 20)
  assert.deepEqual([v.i[0], v.i[19], v.c[0]], ["p29", "p10", "c29"])
})

test("viewed: a malformed data layer never throws", () => {
  for (const dl of [undefined, null, {}, 5, "abc", [null], [gtm(null)], [{ event: "view_item" }], [gtag("event", "view_item")], [gtm({})]]) {
    const v = { i: ["kept"] }
    assert.doesNotThrow(() => viewed(v, dl))
    assert.deepEqual(v.i, ["kept"])
  }
})

test("collect: history holds the products and categories the page's data layer shows, kept in the visit state", () => {
  const w = fakeWindow("https://shop.example/p/mug")
  w.dataLayer = [gtm({ item_id: "mug", item_category: "kitchen" })]
  const visit = { n: 1, s: 0, h: ["/", "/p/mug"], i: ["old"], c: ["garden"], e: {} }
  readViewedProducts(w, visit)
  const a = collect(w, 0, visit, 0)
  assert.deepEqual(a.history.products, ["mug", "old"])
  assert.deepEqual(a.history.categories, ["kitchen", "garden"])
  assert.deepEqual([visit.i, visit.c], [["mug", "old"], ["kitchen", "garden"]])
  assert.deepEqual(a.history.pages, ["/p/mug", "/"]) // this page first
})
