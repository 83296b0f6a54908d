// @ts-check
// docs/DESIGN.md "Decision"; server/decisions/decide.py is the twin: same rules, same reason strings.
import { evalCondition } from "./condition.js"
import { HASH_VERSION, bucketText, hash } from "./hash.js"

/** @typedef {import("./types.js").Bundle} Bundle */
/** @typedef {import("./types.js").Campaign} Campaign */
/** @typedef {import("./types.js").Decision} Decision */
/** @typedef {import("./types.js").DecideOptions} DecideOptions */
/** @typedef {import("./types.js").ExposureCounts} ExposureCounts */

/**
 * ISO 8601 as the compiler writes it; no offset means UTC (Date.parse would read local time).
 * Anything else is NaN, which no `now` satisfies: a broken schedule never shows a campaign.
 * @param {any} text
 */
export const parseTime = (text) => {
  const m =
    /^([1-9]\d{3})-(\d\d)-(\d\d)(?:T(\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?(Z|([+-])(\d\d):(\d\d))?)?$/.exec(text)
  return m
    ? Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4] || 0, +m[5] || 0, +m[6] || 0, +(m[7] || "").padEnd(3, "0").slice(0, 3)) -
        (m[9] ? +(m[9] + 1) * (+m[10] * 60 + +m[11]) * 6e4 : 0)
    : NaN
}

// Schedules repeat on every decision: each distinct time is parsed once.
/** @type {{[text: string]: number}} */
const parsedTimes = {}
/** @param {string} text */
const timeOf = (text) => (text in parsedTimes ? parsedTimes[text] : (parsedTimes[text] = parseTime(text)))

/** Rule 2: within the schedule at `now`. @param {Campaign} campaign @param {number} now */
export const isScheduled = (campaign, now) => {
  const schedule = campaign.schedule || {}
  return (
    (schedule.start == null || now >= timeOf(schedule.start)) && (schedule.end == null || now < timeOf(schedule.end))
  )
}

/** Rule 7: a per-visitor or per-session cap reached. @param {Campaign} campaign @param {ExposureCounts} counts */
export const isCapped = (campaign, counts) => {
  const cap = campaign.cap || {}
  const seen = counts[campaign.key] || { visitor: 0, session: 0 }
  return (
    (cap.per_visitor != null && (seen.visitor || 0) >= cap.per_visitor) ||
    (cap.per_session != null && (seen.session || 0) >= cap.per_session)
  )
}

/**
 * The variation for `bucket` (null outside traffic); cumulative weights in config order.
 * @param {Campaign} campaign
 * @param {number} bucket
 */
export const chooseVariation = (campaign, bucket) => {
  const variations = campaign.variations || []
  const traffic = campaign.traffic ?? 1
  let upTo = 0
  // The fallback covers weights whose float sum falls a hair short of 1.
  return bucket < traffic
    ? variations.find((v) => bucket < (upTo += v.weight || 0) * traffic) || variations[variations.length - 1] || null
    : null
}

/** @type {WeakMap<Campaign, string[]>} a campaign's footprint, worked out once */
const footprints = new WeakMap()

/**
 * Every selector a campaign may touch, over all its variations, so exclusion never depends on the bucket.
 * @param {Campaign} campaign
 * @returns {string[]}
 */
export const footprint = (campaign) => {
  let selectors = footprints.get(campaign)
  if (!selectors)
    footprints.set(
      campaign,
      (selectors = (campaign.variations || [])
        .flatMap((v) => (v.actions || []).map((action) => action.selector))
        .filter((selector) => typeof selector == "string")),
    )
  return selectors
}

/**
 * @param {Bundle} bundle
 * @param {any} attributes
 * @param {any} visitorId
 * @param {DecideOptions} [options]
 * @returns {Decision}
 */
export function decide(bundle, attributes, visitorId, options) {
  const o = options || {}
  const force = o.force || {}
  const sticky = o.sticky || {}
  const counts = o.counts || {}
  const triggered = o.triggered || []
  const now = o.now ?? Date.now()
  const segments = bundle.segments || {}
  const id = typeof visitorId == "string" ? visitorId : ""
  // bucket_by "customer": the identified customer's key (from /identify) is the unit, holdout included
  const customer = typeof o.customer == "string" ? o.customer : null
  const scheme = bundle.hash ?? HASH_VERSION
  /** @type {Decision} */
  const out = { holdout: false, variations: {}, reasons: {}, holdout_campaigns: [] }
  // Buckets of another scheme: deciding with ours would reassign everyone.
  if (scheme !== HASH_VERSION) {
    for (const c of bundle.campaigns || []) out.reasons[c.key] = "unknown hash version " + scheme
    return out
  }
  // A condition several campaigns share (a segment) is evaluated once on these attributes.
  const memo = o.memo || new Map()
  /** @param {any} condition */
  const matches = (condition) => {
    let result = memo.get(condition)
    if (result == null) memo.set(condition, (result = evalCondition(condition, attributes, o.log)))
    return result
  }
  const holdoutSeed = "holdout:" + (bundle.site ?? "")
  const holdoutShare = (bundle.settings || {}).holdout || 0
  const holdout = (out.holdout = hash(holdoutSeed, id) < holdoutShare)
  const customerHoldout = customer != null && hash(holdoutSeed, customer) < holdoutShare
  /** @type {Campaign[]} */
  const chosen = []
  /** @type {Map<string, Campaign>} */
  const taken = new Map() // selector -> the first chosen campaign touching it

  /**
   * @param {Campaign} c
   * @param {string} key
   * @returns {[reason: string, variation?: string, forced?: boolean]}
   */
  const rule = (c, key) => {
    const variations = c.variations || []
    /** @param {string} v */
    const has = (v) => variations.some((x) => x.key === v)
    const forced = force[key]
    if (forced != null && has(forced)) return ["forced " + forced, forced, true]
    if (!isScheduled(c, now)) return ["not scheduled"]
    if (c.pages != null && !matches(c.pages)) return ["page not matched"]
    const byCustomer = c.bucket_by == "customer"
    if (byCustomer && customer == null) return ["not identified"]
    const segment = c.segment
    if (segment != null && !matches(segments[segment])) return ["segment " + segment + " not matched"]
    const hasConditions = c.conditions != null
    if (hasConditions && !matches(c.conditions)) return ["conditions not matched"]
    if (c.trigger != null && !triggered.includes(key)) return ["waiting for trigger"]
    if (isCapped(c, counts)) return ["capped"]
    const group = c.group
    let other = group != null && chosen.find((y) => y.group === group)
    if (other) return ["excluded by group " + group + " (" + other.key + ")"]
    for (const s of footprint(c)) if ((other = taken.get(s))) return ["excluded by selector " + s + " (" + other.key + ")"]
    const seed = c.seed ?? key
    const assigned = sticky[key]
    if (assigned && assigned.seed === seed && has(assigned.variation) && (!byCustomer || assigned.customer === customer))
      return ["sticky " + assigned.variation, assigned.variation]
    const bucket = hash(seed, byCustomer ? /** @type {string} */ (customer) : id)
    const variation = chooseVariation(c, bucket)
    const bucketSuffix = "; bucket " + bucketText(bucket)
    if (!(bucket < (c.traffic ?? 1))) return ["outside traffic" + bucketSuffix]
    if (!variation) return ["no variations"]
    const who =
      segment != null ? "segment " + segment + (hasConditions ? " and conditions" : "") : hasConditions ? "conditions" : "all visitors"
    return [who + " matched" + bucketSuffix, variation.key]
  }

  for (const c of bundle.campaigns || []) {
    const key = c.key
    /** @type {[string, string?, boolean?]} */
    let result
    try {
      result = rule(c, key)
    } catch (_) {
      result = ["invalid campaign"]
    }
    const [reason, variation, forced] = result
    if (variation == null) out.reasons[key] = reason
    else {
      chosen.push(c)
      for (const s of footprint(c)) taken.has(s) || taken.set(s, c)
      if ((c.bucket_by == "customer" ? customerHoldout : holdout) && !forced) {
        out.holdout_campaigns.push(key)
        out.reasons[key] = "holdout; " + reason
      } else {
        out.variations[key] = variation
        out.reasons[key] = reason
      }
    }
  }
  return out
}
