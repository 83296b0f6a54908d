// @ts-check
// The attribution module (dist/modules/attribution.min.js): where a page view comes from, as
// `referrer.source` and `referrer.medium` read it (docs/DESIGN.md "Attributes"). tag.js carries
// it only for a bundle that reads them (server/delivery/modules.py); without it the session's
// source stays direct/direct.
import { hostOf } from "./attributes.js"

// Anchored on the registrable name, so "x.example.com" is not X and "google.co.uk" is Google.
const KNOWN_HOSTS =
  /(?:^|\.)(?:(google|bing|yahoo|duckduckgo|yandex|baidu|ecosia)|(facebook|fb|instagram|twitter|x|t|linkedin|lnkd|pinterest|tiktok|youtube|youtu|reddit))\.[a-z]{2,3}(?:\.[a-z]{2})?$/
/** @type {{[alias: string]: string}} */
const ALIASES = { fb: "facebook", x: "twitter", t: "twitter", lnkd: "linkedin", youtu: "youtube" }
/** @param {string | undefined} text */
const lower = (text) => (text || "").toLowerCase()
/** @param {string | undefined} host */
const bareHost = (host) => lower(host).replace(/^www\./, "")

/**
 * [source, medium] of a page view, or 0 when it has neither referrer nor campaign parameters
 * (direct), or when the visitor comes from another page of this site or from one of the
 * `excluded` hosts (settings.referral_exclusions): the session keeps its
 * source (one that starts so is direct/direct). Campaign parameters beat the referrer.
 * @param {string} referrer
 * @param {string} host this page's
 * @param {{[name: string]: string}} query
 * @param {string[]} [excluded] lowercase, without "www." (as the compiler writes them)
 * @returns {string[] | 0}
 */
export function classify(referrer, host, query, excluded = []) {
  const utmMedium = lower(query.utm_medium)
  const click = query.gclid ? "google" : query.msclkid ? "bing" : query.fbclid && "facebook"
  const referrerHost = bareHost(hostOf(referrer))
  const known = KNOWN_HOSTS.exec(referrerHost)
  let sourceMedium = /^(web)?mail\.|outlook\./.test(referrerHost) // webmail first: mail.google.com is no search
    ? [referrerHost, "email"]
    : known
      ? [known[1] || ALIASES[known[2]] || known[2], known[1] ? "search" : "social"]
      : [referrerHost, "referral"]
  // direct, from this site or from an excluded host: the session's source, unless campaign parameters say otherwise
  if (
    !referrerHost ||
    referrerHost == bareHost(host) ||
    excluded.includes(referrerHost)
  ) {
    if (!query.utm_source && !utmMedium && !click) return 0
    sourceMedium = []
  }
  if (click) sourceMedium = [click, "paid"]
  if (query.utm_source) sourceMedium[0] = lower(query.utm_source)
  if (utmMedium)
    sourceMedium[1] = /^(e-?mail|newsletter)/.test(utmMedium)
      ? "email"
      : /^(cpc|ppc|cpm|paid)/.test(utmMedium)
        ? "paid"
        : utmMedium
  return [sourceMedium[0] || "direct", sourceMedium[1] || (sourceMedium[0] ? "referral" : "direct")]
}

/** @type {import("./types.js").ModuleInstall} */
export const installAttribution = (runtime) => ({
  arrival: (query) => classify(document.referrer, location.hostname, query, /** @type {any} */ (runtime.bundle())?.settings.referral_exclusions),
})
