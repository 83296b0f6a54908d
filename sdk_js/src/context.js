// @ts-check
// The server-resolved attributes (geo.*, device.os, device.browser; crm.* with the identity
// module): which conditions read them, and which campaigns must wait for them when the tag runs
// without them (docs/DESIGN.md "Server-resolved context").
import { evalCondition, isObj } from "./condition.js"
import { footprint, isCapped, isScheduled } from "./decide.js"

/** @typedef {import("./types.js").Bundle} Bundle */
/** @typedef {import("./types.js").Campaign} Campaign */
/** @typedef {import("./types.js").DecideOptions} DecideOptions */
/** @typedef {import("./types.js").ServerContext} ServerContext */

// A path that reads them, or reads a whole object holding them ("device").
export const SERVER_PATH = /^geo(?:\.|$)|^device(?:$|\.(?:os|browser)(?:\.|$))/

/**
 * The attribute paths a condition reads: its keys, through $and, $or, $nor and $not.
 * @param {any} condition
 * @param {string[]} [into]
 */
export function conditionPaths(condition, into = []) {
  if (isObj(condition))
    for (const key in condition) {
      const value = condition[key]
      if (key == "$not") conditionPaths(value, into)
      else if (key == "$and" || key == "$or" || key == "$nor") Array.isArray(value) && value.forEach((c) => conditionPaths(c, into))
      else into.push(key)
    }
  return into
}

/**
 * Whether any campaign or page-view goal of the bundle reads an attribute path matching `paths`.
 * @param {Bundle} bundle
 * @param {RegExp} paths
 */
export const bundleReads = (bundle, paths) => {
  const segments = bundle.segments || {}
  const goals = bundle.goals || {}
  /** @param {any} condition */
  const readsIt = (condition) => conditionPaths(condition).some((path) => paths.test(path))
  return (
    (bundle.campaigns || []).some((c) => [c.pages, c.segment != null && segments[c.segment], c.conditions].some(readsIt)) ||
    Object.keys(goals).some((key) => readsIt(goals[key].pageview))
  )
}

/** Whether a condition reads an attribute path matching `paths`. @param {any} condition @param {RegExp} paths */
const readsPath = (condition, paths) => conditionPaths(condition).some((path) => paths.test(path))

const CUSTOMER = {} // the step of rule 4, "not identified"
const DECIDED = 0 // its decision is known without the context: not chosen, or forced
const CANDIDATE = 1 // it passes every condition; bucketing or exclusion by another decides
const WAITS = 2 // a condition it reaches reads the context

/**
 * decide()'s rules 1 to 8, as far as they can be told without the server's data.
 * @param {Campaign} campaign
 * @param {Bundle} bundle
 * @param {any} attributes
 * @param {DecideOptions} options
 * @param {RegExp} paths the attributes still to come
 * @param {boolean} [customer] the customer is still to come: customer-bucketed campaigns wait
 */
function outcomeWithout(campaign, bundle, attributes, options, paths, customer) {
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
    if (!evalCondition(condition, attributes)) return DECIDED
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
 * @param {RegExp} [paths] the attributes still to come (default: the context's)
 * @param {boolean} [customer] the customer is still to come (the identity module)
 * @returns {Set<string>}
 */
export function awaitingContext(bundle, attributes, options, paths = SERVER_PATH, customer) {
  /** @type {Set<string>} */
  const waiting = new Set()
  /** @type {Set<any>} the groups and selectors of the waiting campaigns */
  const held = new Set()
  for (const campaign of bundle.campaigns || []) {
    let outcome = DECIDED
    /** @type {string[]} */
    let reach = []
    try {
      outcome = outcomeWithout(campaign, bundle, attributes, options, paths, customer)
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
