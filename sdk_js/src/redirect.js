// @ts-check
// The redirect module (dist/modules/redirect.min.js): split-URL variations, whose `redirect`
// action sends the visitor to another URL (docs/DESIGN.md "Applying variations"). tag.js
// carries it only for a bundle with a redirect action (server/delivery/modules.py).
import { safeUrl } from "./guards.js"

/** @typedef {import("./types.js").ModuleRuntime} ModuleRuntime */

/**
 * Where a redirect goes: the target keeps the current query parameters it does not set, and
 * the hash; null when that is where we are (the same URL without hash).
 * @param {string} to
 * @param {Location} from
 */
export function redirectTarget(to, from) {
  const target = new URL(to, from.href)
  new URLSearchParams(from.search).forEach((value, name) => target.searchParams.has(name) || target.searchParams.append(name, value))
  target.hash = target.hash || from.hash
  return target.href.split("#")[0] == from.href.split("#")[0] ? null : target.href
}

/** @type {import("./types.js").ModuleInstall} */
export const installRedirect = (runtime) => ({
  // The first chosen variation that redirects, with a URL the guards allow, sends the visitor
  // away: its exposure is sent now, the page hidden, nothing else applied.
  apply: (decision, wanted) => {
    for (const key in decision.variations) {
      const to = (wanted[key] || []).find((action) => action.redirect)?.redirect
      const from = runtime.redirectedFrom()
      if (!to) continue
      if (!safeUrl(to, location.href)) runtime.note("refused", key + ": redirect to " + to)
      // One redirect per navigation: on a page we redirected to, another campaign's redirect is
      // not applied (two split tests sending visitors to each other would loop).
      else if (from && from != key)
        delete decision.variations[key], delete wanted[key], (decision.reasons[key] += "; not redirected twice")
      else {
        const target = redirectTarget(to, location)
        if (!target) continue
        runtime.expose(key, decision.variations[key])
        runtime.leave(key)
        runtime.dom.addStyle("html{opacity:0!important}")
        location.replace(target)
        return true
      }
    }
  },
})
