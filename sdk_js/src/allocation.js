// @ts-check
// docs/DESIGN.md "Adaptive allocation": the adaptive module. An adaptive campaign is bucketed with
// the weights the served revision gives the visitor's slice, and every assignment remembers the
// [slice, revision] it was made in. server/decisions/decide.py (slice_of, slice_weights,
// weights_revision and the `slices` of its answer) is the twin, held to it by
// spec/06-decisions.json through `adaptiveDecision`. The module works through the core's hooks
// alone (the core has no byte to spare): `hold` sets the weights before each decision, `apply`
// reads what was assigned, `batch` tells collect where each assignment was made.
import { get } from "./condition.js"

/** @typedef {import("./types.js").Bundle} Bundle */
/** @typedef {import("./types.js").Campaign} Campaign */
/** @typedef {import("./types.js").Decision} Decision */
/** @typedef {[slice: string, revision: number | null]} Made */

/**
 * [slice, weights or null, revision or null]. The slice is the first `allocation.by` entry that
 * matches: `segment:<name>` when that segment matches; an attribute path when its value is a
 * string of 1-64 letters, digits, `_ . -` (then `<path>=<value>`); else "default". The weights
 * are the served revision's for that slice, when it has as many as the campaign has variations;
 * the revision is the one that made them (a settled slice's `since`, else the served one).
 * @param {Bundle} bundle
 * @param {Campaign} campaign
 * @param {any} attributes
 * @param {(condition: any, attributes: any) => boolean} evaluate the condition evaluator
 * @returns {[string, number[] | null, number | null]}
 */
export const allocate = (bundle, campaign, attributes, evaluate) => {
  let slice = "default"
  for (const entry of campaign.allocation?.by || []) {
    const isSegment = entry.startsWith("segment:")
    const value = isSegment || get(attributes, entry)
    if (
      isSegment
        ? evaluate((bundle.segments || {})[entry.slice(8)], attributes)
        : typeof value == "string" && /^[\w.-]{1,64}$/.test(value)
    ) {
      slice = isSegment ? entry : entry + "=" + value
      break
    }
  }
  const revision = bundle.revision || {}
  const allocation = (revision.allocations || {})[campaign.key] || {}
  const weights = (allocation.weights || {})[slice]
  return Array.isArray(weights) && weights.length == campaign.variations.length
    ? [slice, weights, (allocation.since || {})[slice] ?? revision.revision ?? null]
    : [slice, null, null]
}

/**
 * Where each adaptive assignment of `decision` was made: a sticky one where it was first made
 * (`remembered(key)`), another where this decision made it (`made`); forced ones nowhere.
 * @param {Decision} decision
 * @param {{[campaign: string]: Made}} made this decision's [slice, revision] per adaptive campaign
 * @param {(campaign: string) => Made | undefined} remembered
 * @returns {{[campaign: string]: Made}}
 */
export const madeIn = (decision, made, remembered) => {
  /** @type {{[campaign: string]: Made}} */
  const out = {}
  for (const key of [...Object.keys(decision.variations), ...decision.holdout_campaigns]) {
    const reason = decision.reasons[key].replace("holdout; ", "")
    const where = !made[key] || reason.startsWith("forced ") ? null : reason.startsWith("sticky ") ? remembered(key) : made[key]
    if (where) out[key] = where
  }
  return out
}

/**
 * What the tag decides with the adaptive module: `decide` over the bundle with each adaptive
 * campaign's slice weights, plus `slices` (the twin of decide.py's answer; the spec vectors' entry).
 * @param {typeof import("./decide.js").decide} decide
 * @param {Bundle} bundle
 * @param {any} attributes
 * @param {any} visitorId
 * @param {import("./types.js").DecideOptions} options
 * @param {(condition: any, attributes: any) => boolean} evaluate
 */
export const adaptiveDecision = (decide, bundle, attributes, visitorId, options, evaluate) => {
  /** @type {{[campaign: string]: Made}} */
  const made = {}
  const campaigns = (bundle.campaigns || []).map((c) => {
    if (!c.allocation) return c
    const [slice, weights, revision] = allocate(bundle, c, attributes, evaluate)
    made[c.key] = [slice, revision]
    return weights ? { ...c, variations: c.variations.map((v, i) => ({ ...v, weight: weights[i] })) } : c
  })
  const decision = decide({ ...bundle, campaigns }, attributes, visitorId, options)
  const sticky = options.sticky || {}
  const slices = madeIn(decision, made, (key) => /** @type {any} */ (sticky[key])?.made)
  if (Object.keys(slices).length) decision.slices = slices
  return decision
}

const STORED = "vtr_a" // localStorage: {campaign: [seed, variation, slice, revision]} of adaptive assignments

/**
 * The adaptive module. `hold` (before each decision, on its final attributes) gives each adaptive
 * campaign its slice's weights, in place: the core decides with them; `apply` notes where each
 * assignment was made, kept (with consent) for the visitor's next page views; `batch` adds
 * `made: {campaign: [slice, revision]}` to every collect batch, which collect copies onto the
 * campaign's exposures. What earlier page views kept is read when first needed: for a sticky
 * assignment (the visit state came from storage too), or after the first paint.
 * @param {any} runtime
 */
export const installAdaptive = (runtime) => {
  /** @type {Map<Campaign, number[]>} */
  const own = new Map() // each campaign's own weights, before any slice's replaced them
  /** @type {{[campaign: string]: Made}} */
  let made = {}
  /** @type {{[campaign: string]: string[]}} */
  let sticky = {}
  /** @type {{[campaign: string]: any[]} | undefined} what earlier page views kept */
  let stored
  /** @type {{[campaign: string]: any[]}} assignments made on this page */
  const fresh = {}
  const kept = () => {
    if (!stored)
      try {
        stored = JSON.parse(localStorage.getItem(STORED) || "{}") || {}
      } catch (_) {}
    return { ...stored, ...fresh }
  }
  /** @type {{[campaign: string]: Made}} */
  let told = {}
  const keep = () => {
    try {
      runtime.mayStore() && localStorage.setItem(STORED, JSON.stringify(kept()))
    } catch (_) {}
  }
  return {
    /** @param {any} attributes @param {import("./types.js").DecideOptions} options */
    hold: (attributes, options) => {
      const bundle = runtime.bundle()
      made = {}
      sticky = /** @type {any} */ (options.sticky || {})
      for (const c of bundle.campaigns) {
        if (!c.allocation) continue
        own.has(c) || own.set(c, c.variations.map((/** @type {any} */ v) => v.weight))
        const [slice, weights, revision] = allocate(bundle, c, attributes, runtime.evalCondition)
        const use = weights || /** @type {number[]} */ (own.get(c))
        c.variations.forEach((/** @type {any} */ v, /** @type {number} */ i) => (v.weight = use[i]))
        made[c.key] = [slice, revision]
      }
    },
    /** @param {Decision} decision */
    apply: (decision) => {
      const remembered = (/** @type {string} */ key) => {
        const mine = kept()[key]
        const record = /** @type {any} */ (sticky[key])
        return mine && record && mine[0] == record.seed && mine[1] == record.variation ? /** @type {Made} */ ([mine[2], mine[3]]) : undefined
      }
      const where = madeIn(decision, made, remembered)
      for (const key in where) {
        const variation = decision.variations[key]
        const campaign = runtime.bundle().campaigns.find((/** @type {Campaign} */ c) => c.key == key)
        if (variation && !decision.reasons[key].startsWith("sticky ")) fresh[key] = [campaign.seed ?? key, variation, ...where[key]]
      }
      told = { ...told, ...where }
      keep()
    },
    start: keep,
    /** @param {boolean} given */
    consent: (given) => {
      try {
        given || localStorage.removeItem(STORED)
      } catch (_) {}
    },
    // every assignment this visitor kept (a queued batch may hold an earlier page's exposures), and this page's
    batch: () => {
      /** @type {{[campaign: string]: Made}} */
      const all = {}
      const assignments = kept()
      for (const key in assignments) all[key] = [assignments[key][2], assignments[key][3]]
      Object.assign(all, told)
      return Object.keys(all).length ? { made: all } : {}
    },
  }
}
