// @ts-check
// The tag's runtime, the core: defines window.vitrina (docs/reference/js-api.md). tag.js is
// this file's build (core.min.js), then the modules the bundle needs (docs/DESIGN.md "Modules"),
// then `vitrina.init({bundle, reads})`, run in <head>. The first decision and its swaps are
// synchronous; whatever can wait (storage writes, the event queue, listeners, triggers) waits
// for idle time after the first paint, or for `pagehide` if the page goes first.
// The runtime's state is this file's top-level variables (the build shortens their names).
import { endPhase, phases } from "./timing.js"
import { decide } from "./decide.js"
import { collect, expand, merge, parseQuery, readViewedProducts, utmOf } from "./attributes.js"
import { allowWrites, cookie, isVisitorId, local, newVisitorId, pageview, randomHex, storeVisitorId } from "./storage.js"
import { createDom } from "./dom.js"
import { queue } from "./tracker.js"
import { tracked } from "./goals.js"
import { addOperators, evalCondition } from "./condition.js"

/** @typedef {import("./types.js").Action} Action */
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
// This script's own URL (tag.js, or the SDK file a page loads before calling init): the Vitrina server's.
const ownUrl = /** @type {HTMLScriptElement | null} */ (doc.currentScript)?.src
const DEFAULT_ANTIFLICKER_MS = 400
const AFTER_PAINT_AT_LATEST_MS = 3000 // a background tab paints no frame
// What may change after init that a bundle's conditions may read (init's `reads`).
const ALL_READS = ["products", "document"]

/** @type {Bundle | null} null without one, and once the page is leaving */
let bundle = null
/** @type {Map<string, Campaign>} the bundle's campaigns, by key */
const campaignsByKey = new Map()
let initialised = false
let readsProducts = false // a condition reads the viewed products: the data layer is read before each decision
let readsDocument = false // a condition reads what may change until DOMContentLoaded: decide again then
let endpoint = "" // absolute URL of /v1/sites/<site> ("" when unknown: nothing is sent)
let visitorId = ""
let consented = false // may we store and send (read from storage after the first paint)
let consentKnown = false
let consentRequired = false // settings.consent: "required"
let returning = false // the vtr_id cookie was there: the visit state was read at init
let visitStored = false // this page view's visit state is written (from the first paint on)
/** @type {VisitState} */
let visit = {}
/** @type {VisitState} the visit state as this page view started: caps and sticky assignments count earlier page views only */
let pageStart = {}
let pageStartedAt = 0
/** @type {Decision | undefined} the latest */
let decision
/** @type {string | undefined} the context this session keeps, packed (the vtr_ctx cookie, written after the first paint) */
let contextToKeep
/** @type {Map<string, string> | undefined} campaigns the modules hold back from the decision, with the reason (the context and identity modules', waiting for them) */
let held
let readyEmitted = false
let href = "" // this page view's URL without hash
/** @type {{[campaign: string]: 1}} on this page view */
let exposed = {}
let debug = false // ?vitrina_debug=1
/** @type {any[][]} the debug log's entries, from init on: the debug module, fetched when the URL asks for it, prints them */
const debugLog = []
/** @type {{[campaign: string]: string}} ?vitrina_force, or the preview's variations */
const forced = {}
/** @type {InitOptions | undefined} ?vitrina_preview: init's first options (the preview module then inits with preview.json's bundle); nothing is sent */
let previewOf
let redirectedFrom = "" // a campaign whose exposure the redirecting page already sent
/** @type {any} what vitrina.set() gave, for this page view (null before the first call) */
let extra = null
let startedAfterPaint = false
/** @type {TrackedEvent[]} before the queue exists */
let pendingEvents = []
/** @type {ReturnType<typeof queue> | undefined} */
let tracker
/** @type {{[event: string]: Function[]}} */
const handlers = {}
/** @type {[string, any][]} every event so far: a late handler still hears them */
const emitted = []
/** @type {ModuleInstall[]} */
const registered = []
/** @type {ModuleHooks[]} */
const modules = []
/** @type {ModuleRuntime} made by init */
let runtime

const pageUrl = () => location.href.split("#")[0]

// A site's handler (or a module) that throws is reported, and breaks neither us nor the others.
/** @param {Function} fn @param {any[]} args */
const call = (fn, ...args) => {
  try {
    return fn(...args)
  } catch (error) {
    console.error(error)
  }
}
/** @param {string} name @param {any} payload */
const emit = (name, payload) => {
  emitted.push([name, payload])
  for (const handler of handlers[name] || []) call(handler, payload)
}
/** Each module's answer to a hook (undefined from those without it). @param {keyof ModuleHooks} name @param {any[]} args */
const hook = (name, ...args) => modules.map((hooks) => hooks[name] && call(/** @type {Function} */ (hooks[name]), ...args))
/** @param {ModuleInstall} install */
const installModule = (install) => modules.push(call(install, runtime) || {})
/**
 * An entry of the debug log (?vitrina_debug=1): [topic, text] for a line of its own, [decision,
 * held] for a decision, ["page", url] when a page view starts, ["setup", [start, end]], ["set",
 * values] for `vitrina.set(values)`.
 * @param {any[]} entry
 */
const log = (...entry) => debug && (debugLog.push(entry), hook("debug", entry))

// Storage is written after the first paint (startAfterPaint); until then the state lives in memory.
const saveVisit = () => visitStored && local("vtr_v", visit)
const saveContext = () => startedAfterPaint && contextToKeep && cookie("vtr_ctx", contextToKeep, true)

/** The attribute tree: the core's, what modules add (the context, the page behaviour), what the site set. */
const collectAttributes = () => {
  if (readsProducts) readViewedProducts(win, visit)
  const attributes = collect(win, Date.now(), visit, pageStartedAt)
  hook("attributes", attributes)
  return extra ? merge(attributes, extra) : attributes
}

/** @param {TrackedEvent} event */
function send(event) {
  if (previewOf) return // a preview's bundle is no published version: nothing of it is counted
  event.id = randomHex(10)
  event.version = bundle?.version
  event.ts = Date.now()
  tracker ? tracker.add(event) : pendingEvents.push(event)
}

/**
 * Once per campaign per page view; a null variation is a holdout visitor's would-be exposure.
 * Handlers and dataLayer hear every exposure; the server hears each one once.
 * @param {string} key
 * @param {string | null} variation
 * @param {string | null} [customer] the decision's (a customer-bucketed campaign's sticky assignment names it)
 */
function expose(key, variation, customer) {
  if (exposed[key]) return
  exposed[key] = 1
  /** @type {TrackedEvent} */
  const event = { type: "exposure", campaign: key, variation, holdout: variation == null }
  if (variation != null && forced[key] == variation) event.forced = true
  // The page that redirected here already sent and counted this one.
  else if (redirectedFrom != key) {
    const counts = (/** @type {any} */ (visit.x)[key] ||= { visitor: 0, session: 0 })
    counts.visitor++
    counts.session++
    if (variation != null) /** @type {any} */ (visit.k)[key] = { seed: campaignsByKey.get(key)?.seed || key, variation, customer }
    saveVisit()
  }
  if (redirectedFrom != key) send(event)
  emit("exposure", event)
  ;(win.dataLayer || []).push({ event: "vitrina_exposure", campaign: key, variation })
}

/**
 * @param {string} goal
 * @param {any} [value]
 * @param {any} [order_id] (the server ignores one it cannot count by)
 * @param {Partial<TrackedEvent>} [fields] a module's campaign, strategy, items
 */
function convert(goal, value, order_id, fields) {
  /** @type {TrackedEvent} */
  const event = { type: "conversion", goal, order_id, ...fields }
  if (Number.isFinite(value)) event.value = value
  // A visitor previewing a forced variation is QA, not traffic.
  if (Object.keys(forced).length) event.forced = true
  send(event)
  emit(event.type, event)
}

/**
 * Decides for the current page view and makes the page show it.
 * @param {boolean} [firstPaint] hide the chosen elements until applied (anti-flicker): at
 *   init, and when what a module held campaigns back for arrives
 */
function decideAndApply(firstPaint) {
  if (!bundle) return
  const timed = !decision
  timed && endPhase("init")
  const attributes = collectAttributes()
  timed && endPhase("attributes")
  /** @type {DecideOptions} */
  const options = { now: Date.now(), force: forced, sticky: pageStart.k, counts: pageStart.x, memo: new Map() }
  hook("decideOptions", options)
  const holds = hook("hold", attributes, options).filter(Boolean)
  const holding = (held = holds[0] && new Map(holds.flat()))
  const latest = (decision = decide(
    holding?.size ? { ...bundle, campaigns: bundle.campaigns.filter((c) => !holding.has(c.key)) } : bundle,
    attributes,
    visitorId,
    options,
  ))
  timed && endPhase("decide")
  /** @type {{[campaign: string]: Action[]}} */
  const wanted = {}
  for (const key in latest.variations)
    wanted[key] = campaignsByKey.get(key)?.variations.find((v) => v.key == latest.variations[key])?.actions || []
  if (hook("apply", latest, wanted).some(Boolean)) return // the page is leaving (a redirect)
  runtime.dom.sync(wanted, firstPaint ? runtime.antiflickerUntil - Date.now() : 0)
  for (const key in latest.variations) expose(key, latest.variations[key], options.customer)
  for (const key of latest.holdout_campaigns) expose(key, null)
  timed && endPhase("apply")
  log(latest, held)
  if (!held?.size && !readyEmitted) (readyEmitted = true), emit("ready", latest)
}

/**
 * A page view: the first at init, then each SPA navigation.
 * @param {string[] | 0} [sourceMedium] how the visitor arrived (the attribution module's); undefined on an SPA navigation
 */
function startPageView(sourceMedium) {
  const now = (pageStartedAt = Date.now())
  href = pageUrl()
  visit = pageview(visit, now, sourceMedium, utmOf(parseQuery(location.search)), location.pathname)
  saveVisit()
  // decide reads these two: copied, since this page view's exposures change them.
  pageStart = { x: {}, k: { ...visit.k } }
  for (const key in visit.x) /** @type {any} */ (pageStart.x)[key] = { .../** @type {any} */ (visit.x)[key] }
  exposed = {}
  log("page", href)
  hook("pageView", visit)
}

function refresh() {
  // The redirect's exposure was skipped once, on its first view.
  if (pageUrl() != href) (redirectedFrom = ""), startPageView()
  decideAndApply()
}

/** Whether we may store and send: settings.consent and what the visitor said (vtr_c), read once. */
function resolveConsent() {
  if (consentKnown) return
  consentKnown = true
  const said = local("vtr_c")
  allowWrites((consented = said === 1 || (said !== 0 && !consentRequired)))
}

/** @param {boolean} given */
function consent(given) {
  given = !!given
  if (!given) {
    cookie("vtr_id", "")
    for (const key of ["vtr_id", "vtr_v", "vtr_q", "vtr_u"]) local(key, null)
    cookie("vtr_ctx", "")
    pendingEvents = []
  }
  hook("consent", given)
  allowWrites(true)
  local("vtr_c", +given) // a refusal is remembered too, or the next page would ask again
  allowWrites((consented = given))
  consentKnown = true
  if (given && visitStored) storeVisitorId(visitorId), saveVisit(), saveContext()
  tracker?.enable(given && !!endpoint)
}

/** After the first paint (idle time), or at once when the page goes first: whatever could wait. */
function startAfterPaint() {
  if (startedAfterPaint || !initialised) return
  startedAfterPaint = true
  const started = performance.now()
  resolveConsent()
  // Without the cookie the visitor was taken for a new one, without reading the local storage
  // at init (its first read costs milliseconds). A mirror there means the cookie alone was
  // cleared: the stored id comes back from the next page view on, this one keeps its own.
  const mirror = returning ? null : local("vtr_id")
  visitStored = !isVisitorId(mirror)
  visitStored ? storeVisitorId(visitorId) : cookie("vtr_id", mirror)
  readViewedProducts(win, visit)
  saveVisit()
  saveContext()
  const collectUrl = endpoint + "/collect"
  /** @param {TrackedEvent[]} events */
  const body = (events) => JSON.stringify(Object.assign({ visitor_id: visitorId, events }, ...hook("batch")))
  const queued = (tracker = queue({
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
  queued.enable(consented && !!endpoint)
  for (const event of pendingEvents) queued.add(event)
  pendingEvents = []
  win.addEventListener("online", () => queued.flush()) // the network is back: send what waited
  // SPA navigation is a new page view.
  const navigated = () => pageUrl() != href && refresh()
  for (const method of /** @type {const} */ (["pushState", "replaceState"])) {
    const original = history[method]
    history[method] = function () {
      const result = original.apply(this, /** @type {any} */ (arguments))
      call(navigated)
      return result
    }
  }
  win.addEventListener("popstate", navigated)
  hook("start")
  navigated() // one that came before we listened
  log("setup", [started, performance.now()])
}

// The page is going (pagehide, hidden, a redirect): store and send what waited, now.
const leaving = () => (startAfterPaint(), tracker?.flush(true))

/** @param {InitOptions} [options] */
function init(options) {
  if (initialised) return // a second tag on the page
  options = options || {}
  const script = /** @type {HTMLScriptElement | null} */ (doc.currentScript)
  const nonce = script?.nonce
  endpoint = options.endpoint || (script?.src || "").replace(/[?#].*/, "").replace(/\/tag\.js$/, "")
  const query = parseQuery(location.search)
  // A workspace's preview link (QA): the preview module fetches the previewed bundle, then inits.
  if (query.vitrina_preview && !options.preview) return (previewOf = { ...options, endpoint }), fetchModule("preview", nonce)
  initialised = true
  endPhase("load")
  bundle = options.bundle || null
  for (const campaign of bundle?.campaigns || []) campaignsByKey.set(campaign.key, campaign)
  // As tag.js says from the bundle (server/delivery/modules.py); a page calling init itself gets all.
  const reads = options.reads || ALL_READS
  readsProducts = reads.includes("products")
  readsDocument = reads.includes("document")
  const settings = bundle?.settings || {}
  consentRequired = settings.consent == "required"
  // Identity and visit state: a visitor without the cookie is a new one (see startAfterPaint).
  const id = cookie("vtr_id")
  returning = isVisitorId(id)
  visitorId = returning ? /** @type {string} */ (id) : newVisitorId()
  visit = (returning && local("vtr_v")) || {}
  redirectedFrom = visit.j || ""
  delete visit.j
  // QA: ?vitrina_force=campaign:variation,...&vitrina_debug=1
  for (const pair of (query.vitrina_force || "").split(",")) {
    const [key, variation] = pair.split(":")
    if (variation) forced[key] = variation
  }
  Object.assign(forced, options.preview)
  debug = query.vitrina_debug == "1"
  runtime = {
    options,
    bundle: () => bundle,
    endpoint,
    antiflickerUntil: Date.now() + (settings.antiflicker_ms ?? DEFAULT_ANTIFLICKER_MS),
    dom: createDom(doc, nonce, (text) => log("refused", text)),
    decide: (firstPaint) => (decideAndApply(firstPaint), hook("decided")),
    held: () => held,
    attributes: collectAttributes,
    convert,
    send,
    note: log,
    evalCondition,
    addOperators,
    cookie,
    keepContext: (context) => ((contextToKeep = context), saveContext()),
    expose,
    mayStore: () => consented,
    redirectedFrom: () => redirectedFrom,
    leave: (key) => ((visit.j = key), (bundle = null), leaving()),
    emit,
    phases,
    debugLog,
  }
  registered.map(installModule)
  startPageView(hook("arrival", query).find(Boolean)) // the attribution module's
  decideAndApply(true)
  if (!bundle) (readyEmitted = true), emit("ready", {})

  win.addEventListener("pagehide", leaving)
  doc.addEventListener("visibilitychange", () => doc.visibilityState == "hidden" && leaving())
  // Page facts declared after the tag (title, meta, the data layer) count once the document is
  // parsed: decide again if the bundle reads any.
  doc.addEventListener("DOMContentLoaded", () => (readsDocument && decideAndApply(), hook("decided")))
  const idle = win.requestIdleCallback
  requestAnimationFrame(() => (idle ? idle(startAfterPaint, { timeout: 1e3 }) : setTimeout(startAfterPaint)))
  setTimeout(startAfterPaint, AFTER_PAINT_AT_LATEST_MS)
  if (debug) fetchModule("debug", nonce)
}

/**
 * A module the core fetches itself from the Vitrina server (QA only: a shopper's page never asks
 * for one): the debug log's, and the preview's.
 * @param {string} name
 * @param {string} [nonce]
 */
function fetchModule(name, nonce) {
  const script = doc.createElement("script")
  script.src = new URL("/sdk/modules/" + name + ".min.js", ownUrl || location.href).href
  script.nonce = nonce || ""
  doc.head.append(script)
}

const api = {
  init,
  /** @param {string} name @param {Function} handler */
  on(name, handler) {
    ;(handlers[name] ||= []).push(handler)
    for (const [event, payload] of emitted) event == name && call(handler, payload)
  },
  /** @param {any} values */
  set(values) {
    log("set", values)
    extra = merge(extra, expand(values))
    decideAndApply()
  },
  /** @param {any} name @param {any} [properties] {value, order_id} */
  track(name, properties) {
    name = "" + name
    const counts = /** @type {{[name: string]: number}} */ (visit.e)
    counts[name] = (counts[name] || 0) + 1
    saveVisit()
    for (const goal of tracked(bundle?.goals, name)) convert(goal, properties?.value, properties?.order_id)
    hook("track", name)
  },
  /** The identity module's (tag.js carries it when the bundle uses identity). @param {any} token */
  identify: (token) => hook("identify", token),
  consent,
  refresh,
  /**
   * The server-resolved context; context.js calls it when the tag ran first. Before init it
   * waits for init (window.vitrinaContext); after, the context module takes it (without it,
   * no condition reads it).
   * @param {any} raw
   */
  context: (raw) => ((win.vitrinaContext = raw), hook("context", raw)),
  /** @param {string} key */
  getVariation: (key) => decision?.variations[key] || null,
  getVisitorId: () => visitorId,
  /**
   * A module registers itself: before init (tag.js), or after it (the debug module, fetched
   * later), when it is installed at once (docs/DESIGN.md "Modules"). The preview module comes
   * while init waits for it, and is given init's options instead (preview.js).
   * @param {string} _name
   * @param {ModuleInstall} install
   */
  _module: (_name, install) => (initialised ? installModule(install) : previewOf ? call(install, previewOf) : registered.push(install)),
}

if (!win.vitrina?.init) win.vitrina = api
