// @ts-check
// The context module (dist/modules/context.min.js): the server-resolved attributes (geo.*,
// device.os, device.browser) in the attribute tree, the session's copy of them, and which
// campaigns must wait for them when the tag runs without them (docs/DESIGN.md "Server-resolved
// context"); the identity module waits with the same check, for crm.* and the customer. tag.js
// carries it only for a bundle that reads them.
import { isObj } from "./condition.js"
import { footprint, isCapped, isScheduled } from "./decide.js"
import { bundleReads, conditionPaths } from "./reads.js"

/** @typedef {import("./types.js").Bundle} Bundle */
/** @typedef {import("./types.js").Campaign} Campaign */
/** @typedef {import("./types.js").DecideOptions} DecideOptions */
/** @typedef {import("./types.js").ServerContext} ServerContext */
/** @typedef {import("./types.js").ModuleRuntime} ModuleRuntime */

// A path that reads them, or reads a whole object holding them ("device").
export const SERVER_PATH = /^geo(?:\.|$)|^device(?:$|\.(?:os|browser)(?:\.|$))/

/** @type {Map<RegExp, WeakMap<object, boolean>>} */
const readsMemo = new Map()
/**
 * Whether a condition reads an attribute path matching `paths` (worked out once per condition).
 * @param {any} condition
 * @param {RegExp} [paths]
 */
export const readsPath = (condition, paths = SERVER_PATH) => {
  if (!isObj(condition)) return false
  const memo = readsMemo.get(paths) || readsMemo.set(paths, new WeakMap()).get(paths)
  let reads = memo?.get(condition)
  if (reads == null) memo?.set(condition, (reads = conditionPaths(condition).some((path) => paths.test(path))))
  return reads
}

const ASK_AT_LATEST_MS = 100 // for the context, when no frame comes first (a background tab)
const CUSTOMER = {} // the step of rule 4, "not identified"
const DECIDED = 0 // its decision is known without the context: not chosen, or forced
const CANDIDATE = 1 // it passes every condition; bucketing or exclusion by another decides
const WAITS = 2 // a condition it reaches reads the context

/** @typedef {(condition: any, attributes: any) => boolean} Matches the condition evaluator (the core's, with the operators it has) */

/**
 * decide()'s rules 1 to 8, as far as they can be told without the server's data.
 * @param {Campaign} campaign
 * @param {Bundle} bundle
 * @param {any} attributes
 * @param {DecideOptions} options
 * @param {Matches} matches
 * @param {RegExp} paths the attributes still to come
 * @param {boolean} [customer] the customer is still to come: customer-bucketed campaigns wait
 */
function outcomeWithout(campaign, bundle, attributes, options, matches, paths, customer) {
  const forced = (options.force || {})[campaign.key]
  if (forced != null && campaign.variations.some((v) => v.key === forced)) return DECIDED
  if (!isScheduled(campaign, options.now ?? Date.now())) return DECIDED
  const segment = campaign.segment
  /** @type {[boolean, any][]} the conditions of rules 3, 5 and 6; rule 4 (identity) after the pages */
  const steps = [
    [campaign.pages != null, campaign.pages],
    [!!customer && campaign.bucket_by == "customer", CUSTOMER],
    [segment != null, segment != null && (bundle.segments || {})[segment]],
    [campaign.conditions != null, campaign.conditions],
  ]
  for (const [present, condition] of steps) {
    if (!present) continue
    // its reason depends on the server's data from here on (a customer-bucketed campaign: the customer)
    if (condition === CUSTOMER || readsPath(condition, paths)) return WAITS
    if (!matches(condition, attributes)) return DECIDED
  }
  if (campaign.trigger != null && !(options.triggered || []).includes(campaign.key)) return DECIDED
  return isCapped(campaign, options.counts || {}) ? DECIDED : CANDIDATE
}

/**
 * The keys of the campaigns whose decision may differ once the context is known: those that
 * read it, and those a waiting campaign of higher priority could exclude (same group or a
 * shared selector), transitively. Every other campaign decides now exactly as it would with
 * the context: `decide` over the bundle without the waiting campaigns gives the very same
 * variation and reason, since nothing else it decides depends on them.
 * @param {Bundle} bundle
 * @param {any} attributes without the server-resolved ones
 * @param {DecideOptions} options decide()'s
 * @param {Matches} matches evalCondition
 * @param {RegExp} [paths] the attributes still to come (default: the context's)
 * @param {boolean} [customer] the customer is still to come (the identity module)
 * @returns {Set<string>}
 */
export function awaitingContext(bundle, attributes, options, matches, paths = SERVER_PATH, customer) {
  /** @type {Set<string>} */
  const waiting = new Set()
  /** @type {Set<any>} the groups and selectors of the waiting campaigns */
  const held = new Set()
  for (const campaign of bundle.campaigns || []) {
    let outcome = DECIDED
    /** @type {string[]} */
    let reach = []
    try {
      outcome = outcomeWithout(campaign, bundle, attributes, options, matches, paths, customer)
      if (outcome != DECIDED) reach = footprint(campaign).map((selector) => "#" + selector)
      if (outcome != DECIDED && campaign.group != null) reach.push("@" + campaign.group)
    } catch (_) {
      outcome = DECIDED // a malformed campaign: decide() says "invalid campaign" without any context
    }
    if (outcome == WAITS || (outcome == CANDIDATE && reach.some((x) => held.has(x)))) {
      waiting.add(campaign.key)
      reach.forEach((x) => held.add(x))
    }
  }
  return waiting
}

/**
 * The core's evaluator, sharing its results with decide() through the decision's memo.
 * @param {ModuleRuntime} runtime
 * @param {DecideOptions} options
 * @returns {Matches}
 */
const memoised = (runtime, options) => (condition, attributes) => {
  const memo = /** @type {Map<any, boolean>} */ (options.memo)
  let result = memo.get(condition)
  if (result == null) memo.set(condition, (result = runtime.evalCondition(condition, attributes)))
  return result
}

/**
 * A holder: before each decision, given what is still to come (attribute paths, and the
 * customer), the keys of the campaigns to hold back until it comes (awaitingContext), whose
 * elements it hides (every selector of every variation; body for one that may redirect),
 * antiflicker_ms at most; with nothing to come (`paths` undefined) it holds nothing and shows
 * them. The context module makes one for itself and lends the identity module another
 * (`runtime.holder`).
 * @param {ModuleRuntime} runtime
 * @param {Bundle} bundle
 * @returns {import("./types.js").Holder}
 */
export const holder = (runtime, bundle) => {
  let hidden = ""
  /** @type {(() => void) | null} */
  let show = null
  return (attributes, options, paths, customer) => {
    const decideOptions = /** @type {DecideOptions} */ (options)
    const keys = paths ? awaitingContext(bundle, attributes, decideOptions, memoised(runtime, decideOptions), paths, customer) : new Set()
    const selectors = bundle.campaigns
      .filter((c) => keys.has(c.key))
      .flatMap((c) => footprint(c).concat(c.variations.some((v) => (v.actions || []).some((a) => a.redirect)) ? ["body"] : []))
    if (selectors.join() != hidden) {
      show && show()
      hidden = selectors.join()
      show = hidden ? runtime.dom.hideFor(selectors, runtime.antiflickerUntil - Date.now()) : null
    }
    return keys
  }
}

/**
 * A context as the SDK keeps it: geo and device.os/browser when they are plain values;
 * device.type never (the browser's own classification is the one), crm never (only the
 * identity module brings it, from the server: a page calling vitrina.context cannot).
 * @param {any} raw
 * @returns {ServerContext | null}
 */
export function serverContext(raw) {
  if (!isObj(raw)) return null
  /** @type {ServerContext} */
  const context = {}
  if (isObj(raw.geo)) context.geo = raw.geo
  const device = isObj(raw.device) ? raw.device : {}
  context.device = {}
  for (const name of /** @type {const} */ (["os", "browser"]))
    if (typeof device[name] == "string") context.device[name] = device[name]
  return context
}

// The vtr_ctx cookie: these fields, URI-encoded, "|" between them, "" for null.
/** @type {[part: "geo" | "device", name: string][]} */
const PACKED = [["geo", "country"], ["geo", "region"], ["geo", "city"], ["geo", "continent"], ["geo", "timezone"], ["device", "os"], ["device", "browser"]]

/**
 * The context as the session keeps it (a cookie: its first read at init costs nothing more,
 * where sessionStorage's costs milliseconds).
 * @param {ServerContext} context
 */
export const packContext = (context) =>
  PACKED.map(([part, name]) => encodeURIComponent(/** @type {any} */ (context)[part]?.[name] ?? "")).join("|")

/**
 * @param {string | undefined} packed
 * @returns {ServerContext | null}
 */
export function unpackContext(packed) {
  const values = (packed || "").split("|")
  if (values.length != PACKED.length) return null
  /** @type {any} */
  const context = { geo: {}, device: {} }
  try {
    PACKED.forEach(([part, name], i) => (context[part][name] = decodeURIComponent(values[i]) || null))
  } catch (_) {
    return null // not ours
  }
  return serverContext(context)
}

/**
 * The context's attributes in the tree: geo, device.os and device.browser (device.type stays
 * the browser's own; crm is the identity module's).
 * @param {any} attributes
 * @param {ServerContext} context
 */
export const addServerAttributes = (attributes, context) => {
  Object.assign(attributes.device, { os: context.device?.os, browser: context.device?.browser })
  attributes.geo = context.geo
}

/**
 * The context module (dist/modules/context.min.js): the server-resolved attributes in the
 * attribute tree, from what the page gave (init's `context`, context.js before the tag), this
 * session's, or, when the bundle reads them and there is none, GET /v1/context. While that
 * request is out, only the campaigns whose decision depends on it wait, with their elements
 * hidden, until it comes or antiflicker_ms runs out; then they decide, on it or without it.
 * @type {import("./types.js").ModuleInstall}
 */
export const installContext = (runtime) => {
  const bundle = /** @type {Bundle} */ (runtime.bundle())
  /** @type {ServerContext | null} what this page view decides with */
  let context = null
  let waiting = false
  let missing = false // not in time: this page view decides without it
  /** @type {ServerContext | null} came after this page view gave up on it: the next page view's */
  let late = null
  /** @type {any} */
  let deadline
  const hold = holder(runtime, bundle)
  runtime.holder = () => holder(runtime, bundle)
  /** @param {string} why */
  const giveUp = (why) => {
    if (!waiting) return
    waiting = false
    missing = true
    runtime.note("context", why + ": deciding without it")
    hold()
    runtime.decide()
  }
  /** @param {any} raw */
  const receive = (raw) => {
    const given = serverContext(raw)
    if (!given) return
    runtime.keepContext(packContext(given))
    if (missing) return void (late = given)
    context = given
    if (!waiting) return
    waiting = false
    clearTimeout(deadline)
    hold()
    runtime.decide(true)
  }

  // tag.js says whether the bundle reads the context (server/delivery/modules.py); a page calling init itself does not.
  const reads = runtime.options.reads
  context = serverContext(runtime.options.context) || serverContext(/** @type {any} */ (window).vitrinaContext)
  if (context) runtime.keepContext(packContext(context))
  else if ((reads ? reads.includes("context") : bundleReads(bundle, SERVER_PATH)) && !(context = unpackContext(runtime.cookie("vtr_ctx"))))
    if (!runtime.endpoint) (missing = true), runtime.note("context", "no endpoint: deciding without it")
    else {
      waiting = true
      // Once the first frame is painted: starting a request costs the main thread a millisecond
      // or two, which the first paint need not wait for (the campaigns that wait for it are
      // hidden meanwhile). A background tab paints no frame: then after a bound.
      let asked = false
      const ask = () =>
        asked ||
        ((asked = true),
        fetch(runtime.endpoint.replace(/\/sites\/[^/]*$/, "/context"), { credentials: "omit" })
          .then((response) => (response.ok ? response.json() : Promise.reject(response.status)))
          .then(receive, (error) => giveUp("request failed: " + error)))
      requestAnimationFrame(() => setTimeout(ask))
      setTimeout(ask, ASK_AT_LATEST_MS)
      deadline = setTimeout(giveUp, Math.max(0, runtime.antiflickerUntil - Date.now()), "not within antiflicker_ms")
    }

  return {
    attributes: (attributes) => context && addServerAttributes(attributes, context),
    hold: (attributes, options) => {
      if (!waiting) return
      return [...hold(attributes, options, SERVER_PATH)].map((key) => [key, "waiting for context"])
    },
    context: receive,
    pageView: () => {
      if (late) (context = late), (missing = false), (late = null)
    },
  }
}
