// Visitor id and visit state (docs/DESIGN.md "Browser storage"). Nothing here touches the
// browser until called, and nothing is written while `allow(false)` (consent required).

const SESSION = 18e5 // 30 minutes without a page view ends a session
const KEEP = 20 // recent paths

let on = true
export const allow = (b) => (on = b)

// localStorage, JSON in and out; null removes. Blocked or full storage never breaks the page.
export function ls(k, v) {
  try {
    if (v === undefined) return JSON.parse(localStorage.getItem(k))
    if (on || v == null) v == null ? localStorage.removeItem(k) : localStorage.setItem(k, JSON.stringify(v))
  } catch (e) {}
}

export const rid = (n) => {
  let s = ""
  for (const b of crypto.getRandomValues(new Uint8Array(n))) s += (b | 256).toString(16).slice(1)
  return s
}

const ID = /^[\w.-]{8,64}$/

export function cookie(k, v) {
  try {
    if (v === undefined) return (document.cookie.match("(?:^|; )" + k + "=([^;]*)") || [])[1]
    if (on || !v)
      document.cookie = k + "=" + (v || "") + ";path=/;max-age=" + (v ? 3456e4 : 0) + ";SameSite=Lax" + (location.protocol == "https:" ? ";Secure" : "")
  } catch (e) {} // a sandboxed frame has no cookies
}

// The cookie wins over its localStorage mirror; a fresh id is random (not derived from the
// page), so two tabs opened at once may only disagree until the first one writes.
export function visitorId(id) {
  id = id || [cookie("vtr_id"), ls("vtr_id")].find((x) => ID.test(x)) || "v1." + rid(12)
  cookie("vtr_id", id) // re-written on every page: 400 days after the last visit
  ls("vtr_id", id)
  return id
}

const recent = (list, x) => (list || []).filter((y) => y != x).concat(x).slice(-KEEP)

// One page view: the visit state s (or null for a first visit) moves on to `now`.
// cls: [source, medium] from classify() (0 when internal, undefined on an SPA navigation),
// u: the page's UTM values or null, path: this page's path.
export function pageview(s, now, cls, u, path) {
  s = s || {}
  if (!s.l || now - s.l >= SESSION) {
    s.d = s.l ? Math.floor((now - s.l) / 864e5) : null
    s.n = (s.n || 0) + 1
    s.s = now
    s.p = 0
    s.g = path
    s.r = cls || ["direct", "direct"]
    s.u = u || {}
    for (const k in s.x) s.x[k].session = 0
  } else {
    // Within a session a new campaign click or an outside referrer takes over; a direct
    // or internal page view keeps the landing attribution.
    if (cls && cls[1] != "direct") s.r = cls
    if (u) s.u = u
  }
  s.p++
  s.t = (s.t || 0) + 1
  s.l = now
  s.h = recent(s.h, path)
  s.e = s.e || {}
  s.x = s.x || {} // exposures so far per campaign: {visitor, session}
  s.k = s.k || {} // sticky assignments {campaign: {seed, variation}}
  return s
}
