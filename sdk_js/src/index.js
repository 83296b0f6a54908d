// The tag's runtime: defines window.vitrina (ARCHITECTURE.md "The JS API"). tag.js is this
// file's IIFE build followed by vitrina.init({endpoint, bundle, context}), run in <head>.
import { decide } from "./decide.js"
import { classify, collect, expand, merge, parseQuery, utmOf } from "./attributes.js"
import { allow, cookie, ls, pageview, rid, visitorId } from "./storage.js"
import { createDom } from "./dom.js"
import { queue } from "./tracker.js"
import { clicked, tracked, viewed } from "./goals.js"
import { watch } from "./triggers.js"

const W = window
const D = document
const L = location
const H = {} // event -> handlers
const past = [] // [event, payload] so far: a late handler still hears them
let B // bundle
let C // server context {geo, device}
let V // visit state; set once init has run
let R // the last decision
let vid, q, dom, trig, href, base, seen, debug, hide
let extra = {}
let force = {}
let skip

const page = () => L.href.split("#")[0]
// A site's handler that throws is reported, and breaks neither us nor the other handlers.
const call = (f, ...a) => {
  try {
    f(...a)
  } catch (e) {
    console.error(e)
  }
}
const emit = (n, p) => {
  past.push([n, p])
  for (const f of H[n] || []) call(f, p)
}
const keep = () => ls("vtr_v", V)
const camp = (k) => B.campaigns.find((c) => c.key == k)
const attrs = () => collect(W, Date.now(), V, C, trig.b, extra)

const send = (e) => {
  e.id = rid(10)
  e.version = B.version
  e.ts = Date.now()
  q.add(e)
}

// Once per campaign per page view; v null is a holdout visitor's would-be exposure.
// Handlers and dataLayer hear every exposure; the server hears each one once.
function expose(k, v) {
  if (seen[k]) return
  seen[k] = 1
  const e = { type: "exposure", campaign: k, variation: v, holdout: v == null }
  if (v != null && force[k] == v) e.forced = true
  // The page that redirected here already sent and counted this one.
  else if (skip != k) {
    const x = (V.x[k] = V.x[k] || { visitor: 0, session: 0 })
    x.visitor++
    x.session++
    if (v != null) V.k[k] = { seed: camp(k).seed || k, variation: v }
    keep()
  }
  if (skip != k) send(e)
  emit("exposure", e)
  ;(W.dataLayer || []).push({ event: "vitrina_exposure", campaign: k, variation: v })
}

function convert(g, value) {
  const e = { type: "conversion", goal: g }
  if (typeof value == "number" && isFinite(value)) e.value = value
  // A visitor previewing a forced variation is QA, not traffic.
  if (Object.keys(force).length) e.forced = true
  send(e)
  emit("conversion", e)
}

// Split-URL variations keep the query string and hash, and never redirect to where we are.
function redirect(k, v, to) {
  const t = new URL(to, L.href)
  new URLSearchParams(L.search).forEach((x, n) => t.searchParams.has(n) || t.searchParams.append(n, x))
  t.hash = t.hash || L.hash
  if (t.href.split("#")[0] == page()) return 0
  expose(k, v)
  V.j = k // the target page must not count it again
  keep()
  q.flush(1)
  dom.style("html{opacity:0!important}")
  L.replace(t.href)
  B = null // this page is leaving: decide and send nothing more
  return 1
}

// ?vitrina_debug=1: a line per campaign and decision.
const log = (r) => {
  if (debug) for (const k in r.reasons) console.log("[vitrina]", k, r.variations[k] || null, r.reasons[k])
}

function run() {
  if (!B) return
  const now = Date.now()
  const r = (R = decide(B, attrs(), vid, { now, force, sticky: base.k, counts: base.x, triggered: trig.fired() }))
  keep() // attrs() adds the products the data layer shows to the visit state
  const map = {}
  for (const k in r.variations) {
    const acts = camp(k).variations.find((x) => x.key == r.variations[k]).actions || []
    const to = acts.find((a) => a.redirect)
    // One redirect per navigation: on a page we redirected to, another campaign's redirect is
    // not applied (two split tests sending visitors to each other would loop).
    if (to && skip && skip != k) delete r.variations[k], (r.reasons[k] += "; not redirected twice")
    else if (to && redirect(k, r.variations[k], to.redirect)) return log(r)
    else map[k] = acts
  }
  log(r)
  dom.sync(map, hide)
  hide = 0 // anti-flicker only for the first paint
  for (const k in r.variations) expose(k, r.variations[k])
  for (const k of r.holdout_campaigns) expose(k, null)
}

function goals() {
  if (B) for (const g of viewed(B.goals, attrs())) convert(g)
}

// A page view: the first at init (cls: how the visitor arrived), then each SPA navigation.
function view(cls) {
  const qy = parseQuery(L.search)
  href = page()
  V = pageview(V, Date.now(), cls, utmOf(qy), L.pathname)
  keep()
  // Caps and sticky assignments count earlier page views only: re-deciding here keeps a campaign,
  // for the same reason as at first.
  base = JSON.parse(JSON.stringify(V))
  seen = {}
  trig.reset()
}

function refresh() {
  if (page() != href) (skip = 0), view(), goals() // the redirect's exposure was skipped once, on its first view
  run()
}

function consent(b) {
  b = !!b
  if (!b) {
    cookie("vtr_id", "")
    for (const k of ["id", "v", "q", "u"]) ls("vtr_" + k, null)
  }
  allow(1)
  ls("vtr_c", +b) // a refusal is remembered too, or the next page would ask again
  allow(b)
  if (b) visitorId(vid), keep()
  q.enable(b)
}

function init(o) {
  if (V) return // a second tag on the page
  o = o || {}
  B = o.bundle || null
  C = o.context || {}
  const st = (B && B.settings) || {}
  const url = o.endpoint + "/collect"
  const body = (ev) => JSON.stringify({ visitor_id: vid, events: ev })
  const c = ls("vtr_c")
  const ok = c === 1 || (c !== 0 && st.consent != "required")
  allow(ok)
  vid = visitorId()
  V = ls("vtr_v") || {}
  skip = V.j
  delete V.j
  hide = st.antiflicker_ms == null ? 400 : st.antiflicker_ms

  // QA preview: ?vitrina_force=campaign:variation,...&vitrina_debug=1
  const qy = parseQuery(L.search)
  for (const p of (qy.vitrina_force || "").split(",")) {
    const [k, v] = p.split(":")
    if (v) force[k] = v
  }
  debug = qy.vitrina_debug == "1"

  q = queue({
    post: (ev) =>
      // A string body goes as text/plain: no CORS preflight, as for sendBeacon.
      fetch(url, { method: "POST", body: body(ev), keepalive: true }).then(
        (r) => r.status < 500 && r.status != 429, // a 4xx batch would be refused again: drop it
        () => false,
      ),
    beacon: (ev) => navigator.sendBeacon(url, body(ev)),
    load: () => ls("vtr_q"),
    save: (ev) => ls("vtr_q", ev),
  })
  q.enable(ok)
  dom = createDom(D, (D.currentScript || {}).nonce)
  trig = watch(W, B ? B.campaigns.filter((c) => c.trigger) : [], run)
  view(classify(D.referrer, L.hostname, qy))
  run()

  const flush = () => q.flush(1)
  W.addEventListener("pagehide", flush)
  W.addEventListener("online", () => q.flush()) // the network is back: send what waited
  D.addEventListener("visibilitychange", () => D.visibilityState == "hidden" && flush())
  D.addEventListener("click", (e) => B && clicked(B.goals, e.target).forEach((g) => convert(g)), true)
  // Page facts declared after the tag (title, meta) count once the document is parsed.
  if (D.readyState == "loading") D.addEventListener("DOMContentLoaded", () => (run(), goals()))
  else goals()
  // SPA navigation is a new page view.
  const nav = () => page() != href && refresh()
  for (const m of ["pushState", "replaceState"]) {
    const f = history[m]
    history[m] = function () {
      const r = f.apply(this, arguments)
      call(nav)
      return r
    }
  }
  W.addEventListener("popstate", nav)
  emit("ready", R || {})
}

const api = {
  init,
  on(n, f) {
    ;(H[n] = H[n] || []).push(f)
    for (const [m, p] of past) m == n && call(f, p)
  },
  set(o) {
    extra = merge(extra, expand(o))
    run()
  },
  track(n, p) {
    n = "" + n
    V.e[n] = (V.e[n] || 0) + 1
    keep()
    if (B) for (const g of tracked(B.goals, n)) convert(g, p && p.value)
    trig.event(n)
  },
  identify: (t) => ls("vtr_u", "" + t),
  consent,
  refresh,
  getVariation: (k) => (R && R.variations[k]) || null,
  getVisitorId: () => vid,
}

if (!(W.vitrina && W.vitrina.init)) W.vitrina = api
