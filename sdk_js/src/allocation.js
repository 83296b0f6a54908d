// @ts-check
// docs/DESIGN.md "Adaptive allocation": an adaptive campaign's slice and the weights the served
// revision gives it. server/decisions/decide.py (slice_of, slice_weights) is the twin, held to
// it by spec/06-decisions.json; the adaptive module hands this to the core's decide.
import { evalCondition, get } from "./condition.js"

/** @typedef {import("./types.js").Bundle} Bundle */
/** @typedef {import("./types.js").Campaign} Campaign */

/**
 * [slice, the campaign with that slice's weights or null, revision or null]. The slice is the first `allocation.by` entry that
 * matches: `segment:<name>` when that segment matches; an attribute path when its value is a
 * string of 1-64 letters, digits, `_ . -` (then `<path>=<value>`); else "default". The weights
 * are the served revision's for that slice, when it has as many as the campaign has variations.
 * @param {Bundle} bundle
 * @param {Campaign} campaign
 * @param {any} attributes
 * @returns {[string, Campaign | null, number | null]}
 */
export const allocate = (bundle, campaign, attributes) => {
  let slice = "default"
  for (const entry of campaign.allocation?.by || []) {
    const isSegment = entry.startsWith("segment:")
    const value = isSegment || get(attributes, entry)
    if (
      isSegment
        ? evalCondition((bundle.segments || {})[entry.slice(8)], attributes)
        : typeof value == "string" && /^[\w.-]{1,64}$/.test(value)
    ) {
      slice = isSegment ? entry : entry + "=" + value
      break
    }
  }
  const revision = bundle.revision || {}
  const weights = (((revision.allocations || {})[campaign.key] || {}).weights || {})[slice]
  return Array.isArray(weights) && weights.length == campaign.variations.length
    ? [slice, { ...campaign, variations: campaign.variations.map((v, i) => ({ ...v, weight: weights[i] })) }, revision.revision ?? null]
    : [slice, null, null]
}

/**
 * The adaptive module: each decision gets `allocate` over this page view's attributes.
 * @param {any} runtime
 */
export const installAdaptive = (runtime) => {
  /** @type {any} */
  let attributes
  return {
    /** @param {any} tree */
    attributes: (tree) => void (attributes = tree),
    /** @param {import("./types.js").DecideOptions} options */
    decideOptions: (options) => void (options.allocate = (campaign) => allocate(runtime.bundle(), campaign, attributes)),
  }
}
