// The in-page half of bench/eval_browser.py. Loaded after the Vitrina evaluator (global
// VitrinaEval: decide, built by esbuild from sdk_js/dist/vitrina.esm.js) and GrowthBook's browser
// bundle (global growthbook, node_modules/@growthbook/growthbook/dist/bundles/index.min.js).
//
// What one "full page decision" is, on each side:
// - Vitrina: decide(bundle, attributes, visitorId, {now, force, sticky, counts, triggered}),
//   exactly as the tag calls it on each page: for every one of the 200 campaigns, schedule,
//   pages condition, segment condition, inline conditions, trigger, caps, group and selector
//   exclusion, bucketing (FNV-1a + fmix32) and a reason string, plus the site holdout.
// - GrowthBook: gb.setAttributes(attributes) then gb.evalFeature(key) for the 200 features,
//   each with one rule whose `condition` is the same targeting ($and of the campaign's pages,
//   segment and conditions) and an experiment (same variations, weights, coverage = traffic,
//   hashed on `id`) or, for a single-variation personalization, a force rule with the same
//   coverage. One GrowthBook instance is built once, before timing (the generous choice: a
//   page would pay its constructor too); no tracking callback, no sticky buckets, no dev mode.
// GrowthBook does no schedules, caps, triggers, mutual exclusion nor reason strings: Vitrina
// does strictly more work per campaign. Both sides run interleaved in the same page, on the
// same attribute profiles, after a warm-up, and must agree on which campaigns target whom.

// Campaigns whose targeting (pages, segment, conditions) matched, from decide's reasons.
const TARGETING_MISSES = /^(page not matched|segment \S+ not matched|conditions not matched)$/
const vitrinaTargeted = (r) => Object.keys(r.reasons).filter((k) => !TARGETING_MISSES.test(r.reasons[k]))

function growthbookTargeted(gb, bundle) {
  // A rule whose condition passed either ran (experiment / force) or was skipped only by its
  // coverage; evaluate the condition directly so coverage and hashing do not blur the check.
  const out = []
  for (const c of bundle.campaigns) {
    const rule = gb.getFeatures()[c.key].rules[0]
    if (!rule.condition || growthbook.evalCondition(gb.getAttributes(), rule.condition)) out.push(c.key)
  }
  return out
}

window.runBench = function (workload, opts) {
  const { bundle, profiles, growthbook_features: features } = workload
  const { decide } = window.VitrinaEval
  const gb = new growthbook.GrowthBook({ features, attributes: {} })
  const vitrinaDecision = (p) =>
    decide(bundle, p.attributes, p.visitor_id, { now: Date.now(), force: {}, sticky: {}, counts: {}, triggered: [] })
  let sink = 0 // results are consumed, so no engine can drop the work
  const growthbookDecision = (p) => {
    gb.setAttributes({ ...p.attributes, id: p.visitor_id })
    for (const key in features) if (gb.evalFeature(key).on) sink++
  }
  const vitrinaTimed = (p) => {
    if (vitrinaDecision(p).holdout) sink++
  }

  // Fairness check first: both engines target the same visitors with the same campaigns.
  let agree = 0
  const disagreements = []
  let vitrinaVariations = 0
  for (const p of profiles) {
    const r = vitrinaDecision(p)
    vitrinaVariations += Object.keys(r.variations).length
    gb.setAttributes({ ...p.attributes, id: p.visitor_id })
    const a = vitrinaTargeted(r).join(",")
    const b = growthbookTargeted(gb, bundle).join(",")
    if (a == b) agree++
    else disagreements.push({ visitor: p.visitor_id, vitrina: a, growthbook: b })
  }

  const block = (fn) => {
    const t0 = performance.now()
    for (let i = 0; i < opts.perBlock; i++) fn(profiles[i % profiles.length])
    return (performance.now() - t0) / opts.perBlock
  }
  // Warm-up: let both engines reach optimized code.
  const warmEnd = performance.now() + opts.warmupMs
  while (performance.now() < warmEnd) {
    block(vitrinaTimed)
    block(growthbookDecision)
  }
  // Interleaved blocks, alternating which side goes first; bounded in count and in time.
  const v = []
  const g = []
  const end = performance.now() + opts.maxMs
  for (let round = 0; round < opts.rounds && performance.now() < end; round++) {
    if (round % 2) {
      v.push(block(vitrinaTimed))
      g.push(block(growthbookDecision))
    } else {
      g.push(block(growthbookDecision))
      v.push(block(vitrinaTimed))
    }
  }
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b)
    const m = s.length >> 1
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
  }
  return {
    vitrinaMs: median(v),
    growthbookMs: median(g),
    rounds: v.length,
    perBlock: opts.perBlock,
    agree,
    profiles: profiles.length,
    disagreements: disagreements.slice(0, 3),
    meanVariations: vitrinaVariations / profiles.length,
    sink,
    userAgent: navigator.userAgent,
  }
}
