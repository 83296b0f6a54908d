// @ts-check
// The debug module (dist/modules/debug.min.js): the `?vitrina_debug=1` console log and the tag's
// own time as performance.measure()s (docs/DESIGN.md "Events, goals, triggers", QA). The core
// fetches it from /sdk/modules/debug.min.js when the URL asks for it, and keeps the log's
// entries from init on, which this prints once it is there; tag.js never carries it.

import { SERVER_ONLY } from "./attributes.js"

/** @typedef {import("./types.js").Decision} Decision */

/**
 * The pairs of applied campaigns whose elements nest (one inside the other). Exclusion compares
 * selectors as written, so `#hero` and `#hero h1` both apply; only the page can tell.
 * @param {import("./types.js").Bundle | null | undefined} bundle
 * @param {Decision} decision
 */
const nestedPairs = (bundle, decision) => {
  const applied = (bundle?.campaigns || []).filter((campaign) => decision.variations[campaign.key])
  const touched = applied.map((campaign) =>
    (campaign.variations || []).flatMap((variation) =>
      (variation.actions || []).flatMap((action) => {
        try {
          return [...document.querySelectorAll(/** @type {string} */ (action.selector))]
        } catch (_) {
          return [] // no selector (a css or redirect action), or one this browser refuses
        }
      }),
    ),
  )
  const pairs = []
  for (let i = 0; i < applied.length; i++)
    for (let j = i + 1; j < applied.length; j++)
      if (touched[i].some((a) => touched[j].some((b) => a != b && (a.contains(b) || b.contains(a)))))
        pairs.push(applied[i].key + " and " + applied[j].key)
  return pairs
}

/** @type {import("./types.js").ModuleInstall} */
export const installDebug = (runtime) => {
  /** @type {{[campaign: string]: string}} the last line printed per campaign on this page view */
  let printed = {}
  /** @param {string} key @param {string | null} variation @param {string} reason */
  const line = (key, variation, reason) => {
    const text = variation + " " + reason
    if (printed[key] != text) (printed[key] = text), console.log("[vitrina]", key, variation, reason)
  }
  /** @type {{[pair: string]: boolean}} */
  const warned = {}
  /** Warns once per pair, once the elements are there. @param {Decision} decision */
  const warnNested = (decision) => {
    const check = () => {
      for (const pair of nestedPairs(runtime.bundle(), decision))
        if (!warned[pair])
          (warned[pair] = true),
            console.warn("[vitrina:nested] " + pair + " touch nested elements and both apply: give them one group to apply one")
    }
    document.readyState == "loading" ? document.addEventListener("DOMContentLoaded", check, { once: true }) : check()
  }
  /** @param {string} name @param {number} start @param {number} end */
  const measure = (name, start, end) => (performance.measure("vitrina:" + name, { start, end }), end - start)
  /** @param {any[]} entry */
  const print = ([what, detail]) => {
    if (typeof what != "string") {
      // A decision: a line per campaign, when its variation or reason differs from the last
      // line printed for it on this page view; the campaigns a module held back first.
      const decision = /** @type {Decision} */ (what)
      detail?.forEach((/** @type {string} */ reason, /** @type {string} */ key) => line(key, null, reason))
      for (const key in decision.reasons) line(key, decision.variations[key] || null, decision.reasons[key])
      warnNested(decision)
    } else if (what == "setup") console.log("[vitrina:time] after the first paint " + measure("setup", detail[0], detail[1]).toFixed(1) + " ms")
    else if (what == "set")
      for (const key in detail) SERVER_ONLY.test(key) && console.log("[vitrina:set] " + key + " comes from the server only: ignored")
    else {
      if (what == "page") printed = {}
      console.log("[vitrina:" + what + "] " + detail)
    }
  }
  runtime.debugLog.forEach(print)
  // The first decision's phases, from the script's first statement to the end of its swaps.
  const phases = runtime.phases
  for (let i = 1; i < phases.length; i++) measure(phases[i][0], phases[i - 1][1], phases[i][1])
  console.log("[vitrina:time] tag " + (phases[phases.length - 1][1] - phases[0][1]).toFixed(1) + " ms")
  runtime.emit("debug", {})
  return { debug: print }
}
