// @ts-check
// docs/DESIGN.md "Slices and exclusions": the slices module. Results break a campaign down by
// the slice of each visitor's first exposure to it; the browser says what the server cannot
// know: the segments the visitor matched, how the session arrived and what the visitor did
// before. And a browser marked with ?vitrina_internal=1 (until ?vitrina_internal=0) is internal
// traffic: nothing it sends is counted. The module works through the core's hooks alone (the
// core has no byte to spare): `hold` sees each decision's attributes, `apply` its exposures,
// `batch` tells collect, once per batch, what each campaign's first exposure claimed
// (`first_exposure`, which collect copies onto the exposures) and whether the browser is internal.
// server/events/slices.py matched_segments reads the bitset back: spec/09-segments.json holds both.
import { MAX_AGE_MS } from "./tracker.js"

/** @typedef {import("./types.js").Bundle} Bundle */
/** @typedef {import("./types.js").Decision} Decision */
/** @typedef {{segments: string, acquisition: string, pre: number[]}} Claims */

// localStorage, written with consent: {campaign: [claims, ts]} of the first exposures of the
// last MAX_AGE_MS (an older exposure the queue would not send anyway), and the internal mark.
const FIRST_EXPOSURES = "vtr_f"
const INTERNAL = "vtr_i"
const MAX_CAMPAIGNS = 50 // collect's first_exposure names at most this many campaigns
const MAX_SEGMENTS = 500 // the bitset's bound on the wire (125 hex characters)

/**
 * The hex bitset of the segments `matches` says yes to, over `names` in their order: segment i is
 * bit i % 4 of character i / 4, trailing zeros dropped ("" when none matches).
 * @param {string[]} names
 * @param {(name: string) => boolean} matches
 */
export const segmentBitset = (names, matches) => {
  let hex = ""
  for (let i = 0; i < names.length && i < MAX_SEGMENTS; i += 4) {
    let nibble = 0
    for (let bit = 0; bit < 4; bit++) if (names[i + bit] != null && matches(names[i + bit])) nibble |= 1 << bit
    hex += nibble.toString(16)
  }
  return hex.replace(/0+$/, "")
}

/**
 * What an exposure made with these attributes claims: the bundle's segments matched (names
 * sorted), the session's acquisition (utm.medium when set, else referrer.medium; lowercase, at
 * most 64 characters) and `pre`, [sessions before this one, page views before this one].
 * @param {Bundle} bundle
 * @param {any} attributes
 * @param {(condition: any, attributes: any) => boolean} evaluate
 * @returns {Claims}
 */
export const claimsOf = (bundle, attributes, evaluate) => {
  const segments = bundle.segments || {}
  const visit = attributes.visit || {}
  return claimed(
    segmentBitset(Object.keys(segments).sort(), (name) => evaluate(segments[name], attributes)),
    attributes.utm?.medium || attributes.referrer?.medium || "",
    [visit.count - 1, visit.total_pageviews - 1],
  )
}

/**
 * Claims as collect accepts them, whatever a site's vitrina.set() put in the attributes (or a
 * hand's edit in storage): a hex bitset, a lowercase acquisition of at most 64 characters, and
 * two counts from 0 to 1e9.
 * @param {string} segments
 * @param {any} acquisition
 * @param {any[]} pre
 * @returns {Claims}
 */
const claimed = (segments, acquisition, pre) => ({
  segments: segments.replace(/[^\da-f]/g, "").slice(0, 125),
  acquisition: ("" + acquisition).toLowerCase().slice(0, 64),
  pre: [pre[0], pre[1]].map((count) => (count >= 0 && count <= 1e9 ? ~~count : 0)),
})

/**
 * A kept first exposure as `claimsOf` made it (storage edited by hand, or by another script, must
 * not get every batch of this browser refused by collect), recent enough to send.
 * @param {string} key
 * @param {any} entry
 */
const sound = (key, entry) => {
  try {
    const [{ segments, acquisition, pre }, ts] = entry
    return (
      ts > Date.now() - MAX_AGE_MS && /^[a-z\d][\w-]{0,63}$/i.test(key) &&
      JSON.stringify(entry) == JSON.stringify([claimed(segments, acquisition, pre), ts])
    )
  } catch (_) {
    return false
  }
}

/**
 * The slices module. Nothing on the critical path touches storage: what earlier page views kept
 * is read at `start` (or by the first batch, if one goes before), and what they kept wins, being
 * earlier. `?vitrina_internal=1` marks the browser, `=0` forgets the mark; the mark goes on every
 * batch sent while it holds, so events queued before it was read (a queue left by an earlier page)
 * are internal too.
 * @param {any} runtime
 */
export const installSlices = (runtime) => {
  const said = new URLSearchParams(location.search).get("vitrina_internal")
  let internal = said == "1"
  /** @type {{[campaign: string]: [Claims, number]}} */
  let first = {}
  let loaded = false
  let attributes = {}
  /** @type {Map<any, boolean>} */
  let memo = new Map()
  const storage = () => localStorage
  const load = () => {
    if (loaded) return
    loaded = true
    try {
      const kept = JSON.parse(/** @type {string} */ (storage().getItem(FIRST_EXPOSURES))) || {}
      for (const key in kept) if (sound(key, kept[key])) first[key] = kept[key]
      if (said == null) internal = storage().getItem(INTERNAL) == "1"
    } catch (_) {}
    // the newest MAX_CAMPAIGNS
    first = Object.fromEntries(Object.entries(first).sort((a, b) => b[1][1] - a[1][1]).slice(0, MAX_CAMPAIGNS))
  }
  const keep = () => {
    load()
    try {
      if (!internal) storage().removeItem(INTERNAL)
      if (runtime.mayStore()) storage().setItem(FIRST_EXPOSURES, JSON.stringify(first)), internal && storage().setItem(INTERNAL, "1")
    } catch (_) {}
  }
  // the core's evaluator, sharing its results with decide() through the decision's memo
  const evaluate = (/** @type {any} */ condition, /** @type {any} */ tree) => {
    let result = memo.get(condition)
    if (result == null) memo.set(condition, (result = runtime.evalCondition(condition, tree)))
    return /** @type {boolean} */ (result)
  }
  return {
    /** @param {any} tree @param {import("./types.js").DecideOptions} options */
    hold: (tree, options) => {
      attributes = tree
      memo = options.memo || new Map()
    },
    /** @param {Decision} decision */
    apply: (decision) => {
      /** @type {Claims | undefined} */
      let claims
      for (const key of [...Object.keys(decision.variations), ...decision.holdout_campaigns])
        first[key] ||= [(claims ||= claimsOf(runtime.bundle(), attributes, evaluate)), Date.now()]
      loaded && keep() // before the first paint, `start` keeps them
    },
    start: () => (load(), keep()),
    batch: () => {
      load()
      /** @type {{[campaign: string]: Claims}} */
      const claims = {}
      for (const key in first) claims[key] = first[key][0]
      return Object.assign(Object.keys(claims).length ? { first_exposure: claims } : {}, internal && { internal })
    },
    /** A refusal deletes what the module kept; consent given stores it once the core takes it. @param {boolean} given */
    consent: (given) => {
      if (given) return setTimeout(keep)
      try {
        storage().removeItem(FIRST_EXPOSURES)
        storage().removeItem(INTERNAL)
      } catch (_) {}
    },
  }
}
