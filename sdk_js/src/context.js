// @ts-check
// The context module (dist/modules/context.min.js): the server-resolved attributes (geo.*,
// device.os, device.browser, crm.*) in the attribute tree, the session's copy of them, and
// which campaigns must wait for them when the tag runs without them (docs/DESIGN.md
// "Server-resolved context"). tag.js carries it only for a bundle that reads them.
import { isObj } from "./condition.js"
import { footprint, isCapped, isScheduled } from "./decide.js"
import { bundleReads, conditionPaths } from "./reads.js"

/** @typedef {import("./types.js").Bundle} Bundle */
/** @typedef {import("./types.js").Campaign} Campaign */
/** @typedef {import("./types.js").DecideOptions} DecideOptions */
/** @typedef {import("./types.js").ServerContext} ServerContext */

// A path that reads them, or reads a whole object holding them ("device").
export const SERVER_PATH = /^(?:geo|crm)(?:\.|$)|^device(?:$|\.(?:os|browser)(?:\.|$))/

/** @type {WeakMap<object, boolean>} */
const readsMemo = new WeakMap()
/** Whether a condition reads a server-resolved attribute (worked out once per condition). @param {any} condition */
export const readsServerContext = (condition) => {
  if (!isObj(condition)) return false
  let reads = readsMemo.get(condition)
  if (reads == null) readsMemo.set(condition, (reads = conditionPaths(condition).some((path) => SERVER_PATH.test(path))))
  return reads
}

const ASK_AT_LATEST_MS = 100 // for the context, when no frame comes first (a background tab)
const DECIDED = 0 // its decision is known without the context: not chosen, or forced
const CANDIDATE = 1 // it passes every condition; bucketing or exclusion by another decides
const WAITS = 2 // a condition it reaches reads the context

/** @typedef {(condition: any, attributes: any) => boolean} Matches the condition evaluator (the core's, with the operators it has) */

/**
 * decide()'s rules 1 to 7, as far as they can be told without the context.
 * @param {Campaign} campaign
 * @param {Bundle} bundle
 * @param {any} attributes
 * @param {DecideOptions} options
 * @param {Matches} matches
 */
function outcomeWithoutContext(campaign, bundle, attributes, options, matches) {
  const forced = (options.force || {})[campaign.key]
  if (forced != null && campaign.variations.some((v) => v.key === forced)) return DECIDED
  if (!isScheduled(campaign, options.now ?? Date.now())) return DECIDED
  const segment = campaign.segment
  /** @type {[boolean, any][]} */
  const steps = [
    [campaign.pages != null, campaign.pages],
    [segment != null, segment != null && (bundle.segments || {})[segment]],
    [campaign.conditions != null, campaign.conditions],
  ]
  for (const [present, condition] of steps) {
    if (!present) continue
    if (readsServerContext(condition)) return WAITS // its reason depends on the context from here on
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
 * @returns {Set<string>}
 */
export function awaitingContext(bundle, attributes, options, matches) {
  /** @type {Set<string>} */
  const waiting = new Set()
  /** @type {Set<any>} the groups and selectors of the waiting campaigns */
  const held = new Set()
  for (const campaign of bundle.campaigns || []) {
    let outcome = DECIDED
    /** @type {string[]} */
    let reach = []
    try {
      outcome = outcomeWithoutContext(campaign, bundle, attributes, options, matches)
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
 * A context as the SDK keeps it: geo, crm and device.os/browser when they are plain values;
 * device.type never (the browser's own classification is the one).
 * @param {any} raw
 * @returns {ServerContext | null}
 */
export function serverContext(raw) {
  if (!isObj(raw)) return null
  /** @type {ServerContext} */
  const context = {}
  if (isObj(raw.geo)) context.geo = raw.geo
  if (isObj(raw.crm)) context.crm = raw.crm
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
 * where sessionStorage's costs milliseconds). crm is not kept.
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
 * The context's attributes in the tree: geo, crm, device.os and device.browser (device.type
 * stays the browser's own).
 * @param {any} attributes
 * @param {ServerContext} context
 */
export const addServerAttributes = (attributes, context) => {
  Object.assign(attributes.device, { os: context.device?.os, browser: context.device?.browser })
  attributes.geo = context.geo
  attributes.crm = context.crm
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
  let hidden = ""
  /** @type {(() => void) | null} */
  let show = null

  /** Hides the elements of the waiting campaigns (every selector of every variation; body for a redirect). @param {Set<string>} keys */
  const hideWhileWaiting = (keys) => {
    const selectors = bundle.campaigns
      .filter((c) => keys.has(c.key))
      .flatMap((c) => footprint(c).concat(c.variations.some((v) => (v.actions || []).some((a) => a.redirect)) ? ["body"] : []))
    if (selectors.join() == hidden) return
    show && show()
    hidden = selectors.join()
    show = hidden ? runtime.dom.hideFor(selectors, runtime.antiflickerUntil - Date.now()) : null
  }
  /** @param {string} why */
  const giveUp = (why) => {
    if (!waiting) return
    waiting = false
    missing = true
    runtime.note("context", why + ": deciding without it")
    hideWhileWaiting(new Set())
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
    hideWhileWaiting(new Set())
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
      const memo = /** @type {Map<any, boolean>} */ (options.memo)
      /** @type {import("./context.js").Matches} decide() finds these results in the memo */
      const matches = (condition) => {
        let result = memo.get(condition)
        if (result == null) memo.set(condition, (result = runtime.evalCondition(condition, attributes)))
        return result
      }
      const keys = awaitingContext(bundle, attributes, options, matches)
      hideWhileWaiting(keys)
      return new Map([...keys].map((key) => [key, "waiting for context"]))
    },
    context: receive,
    pageView: () => {
      if (late) (context = late), (missing = false), (late = null)
    },
  }
}
