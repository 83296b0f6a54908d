// @ts-check
// Visitor id, visit state, the session's context: cookies and localStorage (docs/DESIGN.md
// "Browser storage").
// Nothing here touches the browser until called, and nothing is written while
// `allowWrites(false)` (consent required and not given).

/** @typedef {import("./types.js").VisitState} VisitState */

const SESSION_MS = 18e5 // 30 minutes without a page view ends a session
const RECENT_PATHS = 20
const VISITOR_ID = /^[\w.-]{8,64}$/

let writable = true
/** @param {boolean} allowed */
export const allowWrites = (allowed) => (writable = allowed)

/**
 * localStorage, JSON in and out: `value` undefined reads, null removes. Blocked or full
 * storage never breaks the page.
 * @param {string} key
 * @param {any} [value]
 */
export function local(key, value) {
  try {
    const storage = localStorage
    if (value === undefined) return JSON.parse(/** @type {string} */ (storage.getItem(key)))
    if (writable || value == null) value == null ? storage.removeItem(key) : storage.setItem(key, JSON.stringify(value))
  } catch (_) {}
}

/** @param {number} bytes */
export const randomHex = (bytes) => {
  let hex = ""
  for (const byte of crypto.getRandomValues(new Uint8Array(bytes))) hex += (byte | 256).toString(16).slice(1)
  return hex
}

/**
 * A first-party cookie: `value` undefined reads, "" deletes; kept 400 days, or until the
 * browser closes (`forSession`).
 * @param {string} name
 * @param {string} [value] cookie-safe (no ";", ",", space)
 * @param {boolean} [forSession]
 */
export function cookie(name, value, forSession) {
  try {
    if (value === undefined) return (document.cookie.match("(?:^|; )" + name + "=([^;]*)") || [])[1]
    // max-age in digits (400 days): a browser ignores "3456e4", which would leave a session cookie
    if (writable || !value)
      document.cookie =
        name + "=" + (value || "") + ";path=/" + (value && forSession ? "" : ";max-age=" + (value ? 3456e4 : 0)) +
        ";SameSite=Lax" + (location.protocol == "https:" ? ";Secure" : "")
  } catch (_) {} // a sandboxed frame has no cookies
}

/** @param {any} id */
export const isVisitorId = (id) => typeof id == "string" && VISITOR_ID.test(id) // test(undefined) reads "undefined"

/** A fresh visitor id: random, not derived from the page. */
export const newVisitorId = () => "v1." + randomHex(12)

/** Re-written on every page view: 400 days after the last visit. @param {string} id */
export function storeVisitorId(id) {
  cookie("vtr_id", id)
  local("vtr_id", id)
}

/**
 * @param {string[] | undefined} list
 * @param {string} path
 */
const recent = (list, path) => (list || []).filter((p) => p != path).concat(path).slice(-RECENT_PATHS)

/**
 * One page view: the visit state (or null for a first visit) moves on to `now`.
 * @param {VisitState | null} visit
 * @param {number} now
 * @param {string[] | 0 | undefined} sourceMedium the attribution module's arrival (0 when internal or direct, undefined on an SPA navigation or without the module)
 * @param {{[name: string]: string} | null} utm the page's UTM values
 * @param {string} path this page's path
 * @returns {VisitState}
 */
export function pageview(visit, now, sourceMedium, utm, path) {
  const s = visit || {}
  // A new session after 30 minutes without a page view, or mid-session on an arrival from
  // another outside source (the attribution module's [source, medium], UTM source and medium
  // included), as GA4; a direct or internal page view (an excluded referrer among them:
  // settings.referral_exclusions) keeps the session, and UTM values alone update it.
  if (
    !s.l ||
    now - s.l >= SESSION_MS ||
    (sourceMedium && /** @type {any} */ (sourceMedium) != s.r + "")
  ) {
    s.d = s.l ? Math.floor((now - s.l) / 864e5) : null
    s.n = (s.n || 0) + 1
    s.s = now
    s.p = 0
    s.g = path
    s.r = sourceMedium || ["direct", "direct"]
    s.u = utm || {}
    for (const campaign in s.x) s.x[campaign].session = 0
  } else if (utm) {
    s.u = utm
  }
  /** @type {number} */ (s.p)++
  s.t = (s.t || 0) + 1
  s.l = now
  s.h = recent(s.h, path)
  s.e = s.e || {}
  s.x = s.x || {} // exposures so far per campaign: {visitor, session}
  s.k = s.k || {} // sticky assignments {campaign: {seed, variation}}
  return s
}
