// @ts-check
// The tag's runtime, the core: defines window.vitrina (ARCHITECTURE.md "The JS API"). tag.js is
// this file's build (core.min.js), then the modules the bundle needs (docs/DESIGN.md "Modules"),
// then `vitrina.init({bundle})`, run in <head>. The first decision and its swaps are
// synchronous; whatever can wait (storage writes, the event queue, listeners, triggers) waits
// for idle time after the first paint, or for `pagehide` if the page goes first.
import { endPhase, phases, scriptStart } from "./timing.js"
import { decide, footprint } from "./decide.js"
import { classify, collect, expand, merge, parseQuery, readViewedProducts, SERVER_ONLY, utmOf } from "./attributes.js"
import { allowWrites, cookie, isVisitorId, local, newVisitorId, pageview, randomHex, session, storeVisitorId } from "./storage.js"
import { createDom } from "./dom.js"
import { queue } from "./tracker.js"
import { clicked, hasClickGoals, tracked, viewed } from "./goals.js"
import { awaitingContext, bundleReads, SERVER_PATH, serverContext } from "./context.js"
import { safeUrl } from "./guards.js"

/** @typedef {import("./types.js").Action} Action */
/** @typedef {import("./types.js").Behaviour} Behaviour */
/** @typedef {import("./types.js").Bundle} Bundle */
/** @typedef {import("./types.js").Campaign} Campaign */
/** @typedef {import("./types.js").Decision} Decision */
/** @typedef {import("./types.js").DecideOptions} DecideOptions */
/** @typedef {import("./types.js").InitOptions} InitOptions */
/** @typedef {import("./types.js").ModuleHooks} ModuleHooks */
/** @typedef {import("./types.js").ModuleInstall} ModuleInstall */
/** @typedef {import("./types.js").ModuleRuntime} ModuleRuntime */
/** @typedef {import("./types.js").ServerContext} ServerContext */
/** @typedef {import("./types.js").TrackedEvent} TrackedEvent */
/** @typedef {import("./types.js").VisitState} VisitState */

const win = /** @type {any} */ (window)
const doc = document
const location = win.location
const DEFAULT_ANTIFLICKER_MS = 400
const AFTER_PAINT_AT_LATEST_MS = 3000 // a background tab paints no frame
// Attribute paths that need the data layer read before each decision.
const PRODUCT_PATHS = /^history(?:$|\.(?:products|categories)(?:\.|$))/
// What may change between init and DOMContentLoaded: page facts declared later, the data layer.
const DOCUMENT_PATHS = /^(?:page(?:$|\.(?:title|type|lang)$)|history(?:$|\.(?:products|categories)(?:\.|$)))/

// Where the server-resolved context stands on this page view.
const KNOWN = 0 // in hand, or not needed by the bundle
const WAITING = 1 // asked for: campaigns that read it wait, with their elements hidden
const MISSING = 2 // it did not come in time: this page view decides without it

/**
 * The runtime's whole state.
 * @typedef {Object} RuntimeState
 * @property {Bundle | null} [bundle]
 * @property {Map<string, Campaign>} campaigns the bundle's, by key
 * @property {boolean} [initialised]
 * @property {string} endpoint absolute URL of /v1/sites/<site> ("" when unknown: nothing is sent)
 * @property {string} visitorId
 * @property {boolean} [consented] may we store and send (read from storage after the first paint)
 * @property {boolean} [consentKnown]
 * @property {boolean} [consentRequired] settings.consent: "required"
 * @property {boolean} [returning] the vtr_id cookie was there: the visit state was read at init
 * @property {boolean} [visitStored] this page view's visit state is written (from the first paint on)
 * @property {VisitState} visit
 * @property {VisitState} pageStart the visit state as this page view started: caps and sticky assignments count earlier page views only
 * @property {Decision} [decision] the latest
 * @property {ServerContext} context
 * @property {number} [contextState] KNOWN, WAITING or MISSING
 * @property {ServerContext | null} [lateContext] came after this page view gave up on it: the next page view's
 * @property {boolean} [contextToStore] came from the server on this page: kept for the session
 * @property {any} [contextDeadline] the timer that gives up on it
 * @property {Map<string, string>} waiting campaigns waiting for the context or a module (what for)
 * @property {string} [hiddenWhileWaiting] their selectors, hidden
 * @property {(() => void) | null} [showWaiting]
 * @property {number} antiflickerUntil
 * @property {boolean} [readyEmitted]
 * @property {string} [href] this page view's URL without hash
 * @property {{[campaign: string]: 1}} exposed on this page view
 * @property {{[campaign: string]: string}} logged the last debug line per campaign on this page view
 * @property {boolean} [debug]
 * @property {{[campaign: string]: string}} forced ?vitrina_force
 * @property {{[campaign: string]: string}} [preview] ?vitrina_preview: the bundle came from preview.json; nothing is sent
 * @property {string} [redirectedFrom] a campaign whose exposure the redirecting page already sent
 * @property {any} extra what vitrina.set() gave, for this page view
 * @property {Behaviour} behaviour
 * @property {boolean} [startedAfterPaint]
 * @property {boolean} [goalsDone] on this page view
 * @property {TrackedEvent[]} pendingEvents before the queue exists
 * @property {ReturnType<typeof queue>} [tracker]
 * @property {ReturnType<typeof createDom>} dom
 * @property {{[event: string]: Function[]}} handlers
 * @property {[string, any][]} emitted every event so far: a late handler still hears them
 * @property {[string, ModuleInstall][]} registered
 * @property {ModuleHooks[]} modules
 */

/** @type {RuntimeState} */
const state = {
  dom: /** @type {any} */ (null), // made by init
  campaigns: new Map(),
  endpoint: "",
  visitorId: "",
  visit: {},
  pageStart: {},
  context: {},
  waiting: new Map(),
  antiflickerUntil: 0,
  exposed: {},
  logged: {},
  forced: {},
  extra: {},
  behaviour: { start: 0, lastInput: 0, scroll: 0, exitIntent: false },
  pendingEvents: [],
  handlers: {},
  emitted: [],
  registered: [],
  modules: [],
}

const pageUrl = () => location.href.split("#")[0]
/** @param {string} key */
const campaignOf = (key) => /** @type {Campaign} */ (state.campaigns.get(key))
/** @type {{[paths: string]: boolean}} */
const bundleReadsMemo = {}
/** Whether the bundle reads these attributes (it never changes after init). @param {RegExp} paths */
const reads = (paths) =>
  !!state.bundle && (bundleReadsMemo[paths.source] ??= bundleReads(state.bundle, paths))

// A site's handler that throws is reported, and breaks neither us nor the other handlers.
/** @param {Function} fn @param {any[]} args */
const call = (fn, ...args) => {
  try {
    fn(...args)
  } catch (error) {
    console.error(error)
  }
}
/** @param {string} name @param {any} payload */
const emit = (name, payload) => {
  state.emitted.push([name, payload])
  for (const handler of state.handlers[name] || []) call(handler, payload)
}
/** @param {keyof ModuleHooks} name @param {any} [argument] */
const hook = (name, argument) => {
  for (const hooks of state.modules) hooks[name] && call(/** @type {Function} */ (hooks[name]), argument)
}
/** A `?vitrina_debug=1` line that is not a decision. @param {string} topic @param {string} text */
const note = (topic, text) => state.debug && console.log("[vitrina:" + topic + "] " + text)

// Storage is written after the first paint (startAfterPaint); until then the state lives in memory.
const saveVisit = () => state.visitStored && local("vtr_v", state.visit)
const saveContext = () => state.startedAfterPaint && state.contextToStore && session("vtr_ctx", state.context)

const collectAttributes = () => {
  if (reads(PRODUCT_PATHS)) readViewedProducts(win, state.visit)
  const attributes = collect(win, Date.now(), state.visit, state.context, state.behaviour, state.extra)
  hook("attributes", attributes)
  return attributes
}

/** @param {TrackedEvent} event */
function send(event) {
  if (state.preview) return // a preview's bundle is no published version: nothing of it is counted
  event.id = randomHex(10)
  event.version = state.bundle?.version
  event.ts = Date.now()
  state.tracker ? state.tracker.add(event) : state.pendingEvents.push(event)
}

/**
 * Once per campaign per page view; a null variation is a holdout visitor's would-be exposure.
 * Handlers and dataLayer hear every exposure; the server hears each one once.
 * @param {string} key
 * @param {string | null} variation
 * @param {string | null} [customer] the decision's (a customer-bucketed campaign's sticky assignment names it)
 */
function expose(key, variation, customer) {
  if (state.exposed[key]) return
  state.exposed[key] = 1
  /** @type {TrackedEvent} */
  const event = { type: "exposure", campaign: key, variation, holdout: variation == null }
  if (variation != null && state.forced[key] == variation) event.forced = true
  // The page that redirected here already sent and counted this one.
  else if (state.redirectedFrom != key) {
    const visit = state.visit
    const counts = (/** @type {any} */ (visit.x)[key] = /** @type {any} */ (visit.x)[key] || { visitor: 0, session: 0 })
    counts.visitor++
    counts.session++
    if (variation != null) /** @type {any} */ (visit.k)[key] = { seed: campaignOf(key).seed || key, variation, customer }
    saveVisit()
  }
  if (state.redirectedFrom != key) send(event)
  emit("exposure", event)
  ;(win.dataLayer || []).push({ event: "vitrina_exposure", campaign: key, variation })
}

/** @param {string} goal @param {any} [value] */
function convert(goal, value) {
  /** @type {TrackedEvent} */
  const event = { type: "conversion", goal }
  if (typeof value == "number" && isFinite(value)) event.value = value
  // A visitor previewing a forced variation is QA, not traffic.
  if (Object.keys(state.forced).length) event.forced = true
  send(event)
  emit("conversion", event)
}

/**
 * Split-URL variations keep the query string and hash, and never redirect to where we are.
 * @param {string} key
 * @param {string} variation
 * @param {string} to
 */
function redirect(key, variation, to) {
  const target = new URL(to, location.href)
  new URLSearchParams(location.search).forEach(
    (value, name) => target.searchParams.has(name) || target.searchParams.append(name, value),
  )
  target.hash = target.hash || location.hash
  if (target.href.split("#")[0] == pageUrl()) return false
  expose(key, variation)
  state.visit.j = key // the target page must not count it again
  state.bundle = null // this page is leaving: decide and send nothing more
  startAfterPaint() // stores the visit state and sends the exposure, now
  state.tracker?.flush(true)
  state.dom.addStyle("html{opacity:0!important}")
  location.replace(target.href)
  return true
}

/**
 * ?vitrina_debug=1: a line per campaign, when its variation or reason differs from the last
 * line printed for it on this page view.
 * @param {Decision} decision
 */
function logDecision(decision) {
  if (!state.debug) return
  /** @param {string} key @param {string | null} variation @param {string} reason */
  const line = (key, variation, reason) => {
    const text = variation + " " + reason
    if (state.logged[key] != text) (state.logged[key] = text), console.log("[vitrina]", key, variation, reason)
  }
  for (const [key, what] of state.waiting) line(key, null, "waiting for " + what)
  for (const key in decision.reasons) line(key, decision.variations[key] || null, decision.reasons[key])
}

/** Hides the elements of the campaigns waiting for the context (and shows them once none waits). */
function hideWhileWaiting() {
  const selectors = [...state.waiting.keys()].flatMap((key) => {
    const campaign = campaignOf(key)
    const redirects = campaign.variations.some((v) => (v.actions || []).some((action) => action.redirect))
    return footprint(campaign).concat(redirects ? ["body"] : [])
  })
  const text = selectors.join()
  if (text == state.hiddenWhileWaiting) return
  state.showWaiting && state.showWaiting()
  state.hiddenWhileWaiting = text
  state.showWaiting = text ? state.dom.hideFor(selectors, state.antiflickerUntil - Date.now()) : null
}

/**
 * Decides for the current page view and makes the page show it.
 * @param {boolean} [firstPaint] hide the chosen elements until applied (anti-flicker): at
 *   init, and when the context some campaigns waited for arrives
 */
function decideAndApply(firstPaint) {
  const bundle = state.bundle
  if (!bundle) return
  const timed = !state.decision
  timed && endPhase("init")
  const attributes = collectAttributes()
  timed && endPhase("attributes")
  /** @type {DecideOptions} */
  const options = { now: Date.now(), force: state.forced, sticky: state.pageStart.k, counts: state.pageStart.x }
  hook("decideOptions", options)
  state.waiting = new Map()
  if (state.contextState == WAITING) for (const key of awaitingContext(bundle, attributes, options)) state.waiting.set(key, "context")
  hook("waiting", { waiting: state.waiting, attributes, options })
  const decidable = state.waiting.size ? { ...bundle, campaigns: bundle.campaigns.filter((c) => !state.waiting.has(c.key)) } : bundle
  const decision = (state.decision = decide(decidable, attributes, state.visitorId, options))
  timed && endPhase("decide")
  /** @type {{[campaign: string]: Action[]}} */
  const wanted = {}
  for (const key in decision.variations) {
    const actions = campaignOf(key).variations.find((v) => v.key == decision.variations[key])?.actions || []
    const to = actions.find((action) => action.redirect)?.redirect
    const refused = to != null && !safeUrl(to, location.href)
    refused && note("refused", key + ": redirect to " + to)
    // One redirect per navigation: on a page we redirected to, another campaign's redirect is
    // not applied (two split tests sending visitors to each other would loop).
    if (to && !refused && state.redirectedFrom && state.redirectedFrom != key)
      delete decision.variations[key], (decision.reasons[key] += "; not redirected twice")
    else if (to && !refused && redirect(key, decision.variations[key], to)) return logDecision(decision)
    else wanted[key] = actions
  }
  state.dom.sync(wanted, firstPaint ? state.antiflickerUntil - Date.now() : 0)
  hideWhileWaiting()
  for (const key in decision.variations) expose(key, decision.variations[key], options.customer)
  for (const key of decision.holdout_campaigns) expose(key, null)
  timed && endPhase("apply")
  logDecision(decision)
  timed && state.debug && endPhase("debug log")
  if (!state.waiting.size && !state.readyEmitted) (state.readyEmitted = true), emit("ready", decision)
}

/** {"pageview": condition} goals, once per page view: when the document is parsed, after the first paint. */
function pageViewGoals() {
  if (!state.bundle || state.goalsDone || !state.startedAfterPaint || doc.readyState == "loading") return
  if (state.contextState == WAITING) return // called again once the waiting campaigns decide
  state.goalsDone = true
  for (const goal of viewed(state.bundle.goals, collectAttributes())) convert(goal)
}

/**
 * A page view: the first at init, then each SPA navigation.
 * @param {string[] | 0} [sourceMedium] how the visitor arrived (classify()); undefined on an SPA navigation
 */
function startPageView(sourceMedium) {
  const now = Date.now()
  state.href = pageUrl()
  state.visit = pageview(state.visit, now, sourceMedium, utmOf(parseQuery(location.search)), location.pathname)
  saveVisit()
  state.pageStart = JSON.parse(JSON.stringify(state.visit))
  state.exposed = {}
  state.logged = {}
  state.goalsDone = false
  Object.assign(state.behaviour, { start: now, lastInput: now, scroll: 0, exitIntent: false })
  if (state.lateContext) (state.context = state.lateContext), (state.contextState = KNOWN), (state.lateContext = null)
  hook("pageView")
}

function refresh() {
  // The redirect's exposure was skipped once, on its first view.
  if (pageUrl() != state.href) (state.redirectedFrom = ""), startPageView(), pageViewGoals()
  decideAndApply()
}

/**
 * The server-resolved context arrived (context.js, the fetch, vitrina.context()).
 * @param {any} raw
 */
function receiveContext(raw) {
  const context = serverContext(raw)
  if (!context) return
  if (!state.initialised) return void (win.vitrinaContext = context) // init takes it
  state.contextToStore = true
  if (state.contextState == MISSING) return void (state.lateContext = context)
  const waited = state.contextState == WAITING
  state.context = context
  state.contextState = KNOWN
  clearTimeout(state.contextDeadline)
  saveContext()
  if (waited) decideAndApply(true), pageViewGoals()
}

/** @param {string} why */
function giveUpOnContext(why) {
  if (state.contextState != WAITING) return
  state.contextState = MISSING
  note("context", why + ": deciding without it")
  decideAndApply()
  pageViewGoals()
}

function fetchContext() {
  const url = state.endpoint.replace(/\/sites\/[^/]*$/, "/context")
  if (!state.endpoint) return giveUpOnContext("no endpoint")
  fetch(url, { credentials: "omit" })
    .then((response) => (response.ok ? response.json() : Promise.reject(response.status)))
    .then(receiveContext, (error) => giveUpOnContext("request failed: " + error))
  state.contextDeadline = setTimeout(
    giveUpOnContext,
    Math.max(0, state.antiflickerUntil - Date.now()),
    "not within antiflicker_ms",
  )
}

/** Whether we may store and send: settings.consent and what the visitor said (vtr_c), read once. */
function resolveConsent() {
  if (state.consentKnown) return
  state.consentKnown = true
  const said = local("vtr_c")
  state.consented = said === 1 || (said !== 0 && !state.consentRequired)
  allowWrites(state.consented)
}

/**
 * @param {boolean} given
 */
function consent(given) {
  given = !!given
  if (!given) {
    cookie("vtr_id", "")
    for (const key of ["id", "v", "q", "u"]) local("vtr_" + key, null)
    session("vtr_ctx", null)
    session("vtr_u", null)
    state.pendingEvents = []
  }
  allowWrites(true)
  local("vtr_c", +given) // a refusal is remembered too, or the next page would ask again
  allowWrites(given)
  state.consented = given
  state.consentKnown = true
  if (given && state.visitStored) storeVisitorId(state.visitorId), saveVisit(), saveContext()
  state.tracker?.enable(given && !!state.endpoint)
}

/** @type {ModuleRuntime} */
const moduleRuntime = {
  bundle: () => state.bundle,
  behaviour: state.behaviour,
  decide: (hideFirst) => decideAndApply(hideFirst),
  endpoint: () => state.endpoint,
  visitorId: () => state.visitorId,
  note,
  session,
  awaiting: (attributes, options, paths, customer) =>
    awaitingContext(/** @type {Bundle} */ (state.bundle), attributes, options, paths, customer),
}

/** After the first paint (idle time), or at once when the page goes first: whatever could wait. */
function startAfterPaint() {
  if (state.startedAfterPaint || !state.initialised) return
  state.startedAfterPaint = true
  const started = performance.now()
  resolveConsent()
  // Without the cookie the visitor was taken for a new one, without reading the local storage
  // at init (its first read costs milliseconds). A mirror there means the cookie alone was
  // cleared: the stored id comes back from the next page view on, this one keeps its own.
  const mirror = state.returning ? null : local("vtr_id")
  state.visitStored = !isVisitorId(mirror)
  state.visitStored ? storeVisitorId(state.visitorId) : cookie("vtr_id", mirror)
  readViewedProducts(win, state.visit)
  saveVisit()
  saveContext()
  const collectUrl = state.endpoint + "/collect"
  /** @param {TrackedEvent[]} events */
  const body = (events) => {
    const batch = { visitor_id: state.visitorId, events }
    hook("batch", batch)
    return JSON.stringify(batch)
  }
  const tracker = (state.tracker = queue({
    post: (events) =>
      // A string body goes as text/plain: no CORS preflight, as for sendBeacon.
      fetch(collectUrl, { method: "POST", body: body(events), keepalive: true }).then(
        (response) => response.status < 500 && response.status != 429, // a 4xx batch would be refused again: drop it
        () => false,
      ),
    beacon: (events) => navigator.sendBeacon(collectUrl, body(events)),
    load: () => local("vtr_q"),
    save: (events) => local("vtr_q", events),
  }))
  tracker.enable(!!state.consented && !!state.endpoint)
  for (const event of state.pendingEvents) tracker.add(event)
  state.pendingEvents = []
  win.addEventListener("online", () => tracker.flush()) // the network is back: send what waited
  // SPA navigation is a new page view.
  const navigated = () => pageUrl() != state.href && refresh()
  for (const method of ["pushState", "replaceState"]) {
    const original = history[/** @type {"pushState"} */ (method)]
    history[/** @type {"pushState"} */ (method)] = function () {
      const result = original.apply(this, /** @type {any} */ (arguments))
      call(navigated)
      return result
    }
  }
  win.addEventListener("popstate", navigated)
  hook("start")
  pageViewGoals()
  navigated() // one that came before we listened
  if (state.debug) {
    const ended = performance.now()
    performance.measure("vitrina:setup", { start: started, end: ended })
    note("time", "after the first paint " + (ended - started).toFixed(1) + " ms")
  }
}

/** Schedules startAfterPaint() at idle time after the next paint, or after a bound (pagehide comes in init). */
function afterFirstPaint() {
  const idle = win.requestIdleCallback
  requestAnimationFrame(() => (idle ? idle(startAfterPaint, { timeout: 1e3 }) : setTimeout(startAfterPaint)))
  setTimeout(startAfterPaint, AFTER_PAINT_AT_LATEST_MS)
}

/** ?vitrina_debug=1: the tag's own time, phase by phase, as performance.measure()s and one line. */
function reportTime() {
  let start = scriptStart
  if (state.debug) {
    for (const [name, end] of phases) performance.measure("vitrina:" + name, { start, end }), (start = end)
    note("time", "tag " + (start - scriptStart).toFixed(1) + " ms")
  }
}

/**
 * @param {InitOptions} [options]
 */
function init(options) {
  if (state.initialised) return // a second tag on the page
  options = options || {}
  const script = /** @type {HTMLScriptElement | null} */ (doc.currentScript)
  const endpoint = options.endpoint || (script?.src || "").replace(/[?#].*/, "").replace(/\/tag\.js$/, "")
  const query = parseQuery(location.search)
  if (query.vitrina_preview && !options.preview) return preview({ ...options, endpoint }, query.vitrina_preview)
  state.initialised = true
  endPhase("load")
  const bundle = (state.bundle = options.bundle || null)
  for (const campaign of bundle?.campaigns || []) state.campaigns.set(campaign.key, campaign)
  const settings = bundle?.settings || {}
  state.consentRequired = settings.consent == "required"
  state.endpoint = endpoint
  // Identity and visit state: a visitor without the cookie is a new one (see startAfterPaint).
  const id = cookie("vtr_id")
  state.returning = isVisitorId(id)
  state.visitorId = state.returning ? /** @type {string} */ (id) : newVisitorId()
  state.visit = (state.returning && local("vtr_v")) || {}
  state.redirectedFrom = state.visit.j || ""
  delete state.visit.j
  state.antiflickerUntil = Date.now() + (settings.antiflicker_ms ?? DEFAULT_ANTIFLICKER_MS)
  // QA preview: ?vitrina_force=campaign:variation,...&vitrina_debug=1
  for (const pair of (query.vitrina_force || "").split(",")) {
    const [key, variation] = pair.split(":")
    if (variation) state.forced[key] = variation
  }
  Object.assign(state.forced, (state.preview = options.preview))
  state.debug = query.vitrina_debug == "1"
  state.dom = createDom(doc, script?.nonce, (text) => note("refused", text))

  // The context, in this order: init's option, context.js (before or after the tag), this session's.
  const given = serverContext(options.context) || serverContext(win.vitrinaContext)
  const needed = !given && reads(SERVER_PATH)
  const fromSession = needed && serverContext(session("vtr_ctx"))
  state.context = given || fromSession || {}
  state.contextToStore = !!given
  state.contextState = needed && !fromSession ? WAITING : KNOWN

  for (const [, install] of state.registered) state.modules.push(install(moduleRuntime))
  startPageView(classify(doc.referrer, location.hostname, query))
  decideAndApply(true)
  if (state.contextState == WAITING) fetchContext()
  if (!bundle) (state.readyEmitted = true), emit("ready", {})

  const leaving = () => (startAfterPaint(), state.tracker?.flush(true))
  win.addEventListener("pagehide", leaving)
  doc.addEventListener("visibilitychange", () => doc.visibilityState == "hidden" && leaving())
  // Page facts declared after the tag (title, meta, the data layer) count once the document is
  // parsed: decide again if the bundle reads any.
  doc.addEventListener("DOMContentLoaded", () => (reads(DOCUMENT_PATHS) && decideAndApply(), pageViewGoals()))
  // At once, not after the paint: a click on the first frame must convert.
  if (hasClickGoals(bundle?.goals))
    doc.addEventListener("click", (event) => state.bundle && clicked(state.bundle.goals, event.target).forEach((goal) => convert(goal)), true)
  afterFirstPaint()
  reportTime()
}

/**
 * ?vitrina_preview=<token> (a workspace's preview link, QA): the previewed bundle (a draft, or a
 * version) and its forced variation come from preview.json (never cached); then the tag starts
 * with them and sends nothing. A refused token (the answer has no bundle) starts it with the live
 * bundle, forcing nothing. The page may show its original a moment first: this is QA, and the
 * byte budget goes to visitors.
 * @param {InitOptions} options
 * @param {string} token
 */
function preview(options, token) {
  /** @param {any} [body] */
  const start = (body) =>
    init({ ...options, bundle: body?.bundle || options.bundle, preview: (body?.bundle && body.force) || {} })
  fetch(options.endpoint + "/preview.json?token=" + encodeURIComponent(token))
    .then((response) => response.json())
    .then(start, start)
}

const api = {
  init,
  /** @param {string} name @param {Function} handler */
  on(name, handler) {
    ;(state.handlers[name] = state.handlers[name] || []).push(handler)
    for (const [emitted, payload] of state.emitted) emitted == name && call(handler, payload)
  },
  /** @param {any} values */
  set(values) {
    for (const key in values) SERVER_ONLY.test(key) && note("set", key + " comes from the server only: ignored")
    state.extra = merge(state.extra, expand(values))
    decideAndApply()
  },
  /** @param {any} name @param {any} [properties] */
  track(name, properties) {
    name = "" + name
    const counts = /** @type {{[name: string]: number}} */ (state.visit.e)
    counts[name] = (counts[name] || 0) + 1
    saveVisit()
    if (state.bundle) for (const goal of tracked(state.bundle.goals, name)) convert(goal, properties && properties.value)
    hook("track", name)
  },
  /** The identity module sends it (tag.js carries it when the bundle uses identity). @param {any} token */
  identify: (token) =>
    state.modules.some((hooks) => hooks.identify) ? hook("identify", "" + token) : note("identity", "no live campaign uses it"),
  consent,
  refresh,
  /** The server-resolved context; context.js calls it when the tag ran first. */
  context: receiveContext,
  /** @param {string} key */
  getVariation: (key) => state.decision?.variations[key] || null,
  getVisitorId: () => state.visitorId,
  /**
   * A module registers itself, before init (docs/DESIGN.md "Modules").
   * @param {string} name
   * @param {ModuleInstall} install
   */
  _module: (name, install) => state.registered.push([name, install]),
}

if (!(win.vitrina && win.vitrina.init)) win.vitrina = api
