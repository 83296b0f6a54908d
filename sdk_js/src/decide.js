// docs/DESIGN.md "Decision"; server/decisions/decide.py is the twin: same rules, same reason strings.
import { evalCondition } from "./condition.js"
import { HASH_VERSION, bucketText, hash } from "./hash.js"

// ISO 8601 as the compiler writes it; no offset means UTC (Date.parse would read local time).
// Anything else is NaN, which no `now` satisfies: a broken schedule never shows a campaign.
export const parseTime = (s) => {
  const m =
    /^([1-9]\d{3})-(\d\d)-(\d\d)(?:T(\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?(Z|([+-])(\d\d):(\d\d))?)?$/.exec(s)
  return m
    ? Date.UTC(m[1], m[2] - 1, m[3], m[4] || 0, m[5] || 0, m[6] || 0, (m[7] || "").padEnd(3, "0").slice(0, 3)) -
        (m[9] ? (m[9] + 1) * (m[10] * 60 + +m[11]) * 6e4 : 0)
    : NaN
}

// Schedules repeat on every decision: each distinct time is parsed once.
const times = {}
const timeOf = (s) => (s in times ? times[s] : (times[s] = parseTime(s)))

// The variation for bucket b (null outside traffic); cumulative weights in config order.
export const chooseVariation = (c, b) => {
  const vs = c.variations || []
  const t = c.traffic ?? 1
  let s = 0
  // The fallback covers weights whose float sum falls a hair short of 1.
  return b < t ? vs.find((v) => b < (s += v.weight || 0) * t) || vs[vs.length - 1] || null : null
}

// Every selector a campaign may touch, over all its variations, so exclusion never depends on the bucket.
export const footprint = (c) =>
  (c.variations || []).flatMap((v) => (v.actions || []).map((a) => a.selector)).filter((s) => typeof s == "string")

export function decide(bundle, attributes, visitorId, options) {
  const o = options || {}
  const force = o.force || {}
  const sticky = o.sticky || {}
  const counts = o.counts || {}
  const triggered = o.triggered || []
  const now = o.now ?? Date.now()
  const segments = bundle.segments || {}
  const id = typeof visitorId == "string" ? visitorId : ""
  const scheme = bundle.hash ?? HASH_VERSION
  // Buckets of another scheme: deciding with ours would reassign everyone.
  if (scheme !== HASH_VERSION) {
    const reasons = {}
    for (const c of bundle.campaigns || []) reasons[c.key] = "unknown hash version " + scheme
    return { holdout: false, variations: {}, reasons, holdout_campaigns: [] }
  }
  const ev = (c) => evalCondition(c, attributes, o.log)
  const holdout = hash("holdout:" + (bundle.site ?? ""), id) < ((bundle.settings || {}).holdout || 0)
  const out = { holdout, variations: {}, reasons: {}, holdout_campaigns: [] }
  const chosen = []
  const taken = new Map() // selector -> the first chosen campaign touching it

  // -> [reason, variation key if chosen, forced]
  const rule = (c, k) => {
    const vs = c.variations || []
    const has = (v) => vs.some((x) => x.key === v)
    const f = force[k]
    if (f != null && has(f)) return ["forced " + f, f, 1]
    const sc = c.schedule || {}
    if ((sc.start != null && !(now >= timeOf(sc.start))) || (sc.end != null && !(now < timeOf(sc.end))))
      return ["not scheduled"]
    if (c.pages != null && !ev(c.pages)) return ["page not matched"]
    const sg = c.segment
    if (sg != null && !ev(segments[sg])) return ["segment " + sg + " not matched"]
    const cn = c.conditions != null
    if (cn && !ev(c.conditions)) return ["conditions not matched"]
    if (c.trigger != null && !triggered.includes(k)) return ["waiting for trigger"]
    const cap = c.cap || {}
    const n = counts[k] || {}
    if (
      (cap.per_visitor != null && (n.visitor || 0) >= cap.per_visitor) ||
      (cap.per_session != null && (n.session || 0) >= cap.per_session)
    )
      return ["capped"]
    const g = c.group
    let x = g != null && chosen.find((y) => y.group === g)
    if (x) return ["excluded by group " + g + " (" + x.key + ")"]
    for (const s of footprint(c)) if ((x = taken.get(s))) return ["excluded by selector " + s + " (" + x.key + ")"]
    const seed = c.seed ?? k
    const st = sticky[k]
    if (st && st.seed === seed && has(st.variation)) return ["sticky " + st.variation, st.variation]
    const b = hash(seed, id)
    const v = chooseVariation(c, b)
    const bt = "; bucket " + bucketText(b)
    if (!(b < (c.traffic ?? 1))) return ["outside traffic" + bt]
    if (!v) return ["no variations"]
    const who = sg != null ? "segment " + sg + (cn ? " and conditions" : "") : cn ? "conditions" : "all visitors"
    return [who + " matched" + bt, v.key]
  }

  for (const c of bundle.campaigns || []) {
    const k = c.key
    let r
    try {
      r = rule(c, k)
    } catch (_) {
      r = ["invalid campaign"]
    }
    if (r[1] == null) out.reasons[k] = r[0]
    else {
      chosen.push(c)
      for (const s of footprint(c)) taken.has(s) || taken.set(s, c)
      if (holdout && !r[2]) {
        out.holdout_campaigns.push(k)
        out.reasons[k] = "holdout; " + r[0]
      } else {
        out.variations[k] = r[1]
        out.reasons[k] = r[0]
      }
    }
  }
  return out
}
