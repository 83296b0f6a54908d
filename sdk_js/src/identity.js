// @ts-check
// The identity module (sdk_js/dist/modules/identity.min.js; docs/reference/identity.md "In the
// page"): the identity token the shop's servers minted for a signed-in customer, from
// `data-identity` on the tag's script or `vitrina.identify(token)`, exchanged once with
// `POST /v1/sites/<site>/identify` for the customer's key, `crm` attributes and a signed
// identity; those feed every decision (crm.*, bucket_by "customer") and ride on collect batches.
// tag.js carries it only for a bundle that uses identity (server/delivery/modules.py), and the
// context module with it: which campaigns wait for the customer is the context module's check
// (context.js `holder`, lent as `runtime.holder`).

/** @typedef {import("./types.js").ModuleInstall} ModuleInstall */

const STORED = "vtr_u" // sessionStorage: this session's answer, for the next pages
const CRM_PATH = /^crm(?:\.|$)/
const RENEW_BEFORE_MS = 36e5 // an identity expiring within the hour is renewed (a page's token permitting)

/**
 * What a token says about the customer, to tell whether an answer fits it without asking the
 * server: its claims but the times (a shop mints a new token per page: `iat`, `exp` change).
 * Not verified: the server verifies; this only avoids asking twice. "" for no JWT.
 * @param {string} token
 */
export function tokenFacts(token) {
  try {
    const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")))
    for (const time of ["iat", "exp", "nbf", "jti"]) delete payload[time]
    return JSON.stringify(payload)
  } catch (_) {
    return ""
  }
}

/**
 * An answer of /identify, as kept: {facts, customer, crm, identity, expires_at}.
 * @typedef {{facts: string, customer: string, crm: {[name: string]: any}, identity: string, expires_at: number}} Identified
 */

/** @param {any} value @returns {value is Identified} */
const isIdentified = (value) =>
  !!value && typeof value.customer == "string" && typeof value.identity == "string" &&
  typeof value.expires_at == "number" && !!value.crm && typeof value.crm == "object" && typeof value.facts == "string"

/**
 * sessionStorage, JSON in and out: `value` undefined reads, null removes, anything else is
 * written only with the visitor's consent. Blocked storage never breaks the page.
 * @param {boolean} mayStore
 * @param {any} [value]
 */
function stored(mayStore, value) {
  try {
    if (value === undefined) return JSON.parse(/** @type {string} */ (sessionStorage.getItem(STORED)))
    if (value == null) sessionStorage.removeItem(STORED)
    else if (mayStore) sessionStorage.setItem(STORED, JSON.stringify(value))
  } catch (_) {}
}

/** @type {ModuleInstall} */
export const installIdentity = (runtime) => {
  const script = /** @type {HTMLScriptElement | null} */ (document.currentScript)
  const bundle = runtime.bundle()
  const waitMs = bundle?.settings?.antiflicker_ms ?? 400
  const hold = bundle && runtime.holder?.() // without a bundle nothing decides, nothing waits
  /** @type {Identified | null} */
  let known = null // what decisions use on this page view
  /** @type {Identified | null} */
  let later = null // came after this page view stopped waiting: the next page view's
  let asking = "" // the facts of the token on its way; decisions wait for it until `deadline`
  let deadline = 0
  let started = false

  const usable = () => !!known && known.expires_at > Date.now()
  const waiting = () => !!asking && Date.now() < deadline
  /** Kept for the session's next pages: from the first paint on, and only with consent (storage.js). @param {Identified | null} answer */
  const keep = (answer) => started && stored(runtime.mayStore(), answer)

  /** @param {string} why */
  function stopWaiting(why) {
    if (!waiting()) return
    asking = ""
    hold && hold()
    runtime.note("identity", why + ": deciding without it")
    runtime.decide()
  }

  /** @param {Identified} answer @param {boolean} renewing */
  function received(answer, renewing) {
    runtime.note("identity", "identified; crm: " + (Object.keys(answer.crm).join(", ") || "none"))
    if (renewing || asking != answer.facts || !waiting()) later = answer // this page view decided without it
    else (known = answer), (asking = ""), hold && hold(), runtime.decide(true)
    keep(answer)
  }

  /**
   * Asks the server for the customer a token names, unless the answer in hand fits it; an empty
   * token (vitrina.identify(null) at sign-out) forgets the customer.
   * @param {string} token
   */
  function identify(token) {
    if (!token || token == "null" || token == "undefined") {
      if (known || later) runtime.note("identity", "forgotten"), (known = later = null), keep(null), runtime.decide()
      return
    }
    const facts = tokenFacts(token)
    if (!facts) return runtime.note("identity", "not a JWT: ignored")
    if (known?.facts == facts && known.expires_at - Date.now() > RENEW_BEFORE_MS) return
    const endpoint = runtime.endpoint
    if (!endpoint) return runtime.note("identity", "no endpoint: not sent")
    const renewing = known?.facts == facts && usable() // decide with the one in hand meanwhile
    if (!renewing) {
      ;(known = null), (asking = facts), (deadline = Date.now() + waitMs)
      setTimeout(stopWaiting, waitMs, "no answer within antiflicker_ms")
    }
    // A string body goes as text/plain: no CORS preflight. The token never goes in a URL.
    fetch(endpoint + "/identify", {
      method: "POST",
      body: JSON.stringify({ token, visitor_id: /** @type {any} */ (window).vitrina.getVisitorId() }),
      credentials: "omit",
    })
      .then((response) => response.json().then((body) => [response.ok, body]))
      .then(([ok, body]) => {
        const answer = ok && { ...body, facts }
        if (!isIdentified(answer)) throw new Error((body && body.message) || "refused")
        received(answer, renewing)
      })
      .catch((error) => {
        runtime.note("identity", String((error && error.message) || error))
        if (asking == facts) stopWaiting("not identified")
      })
  }

  const kept = stored(false)
  if (isIdentified(kept) && kept.expires_at > Date.now()) known = kept
  const fromPage = script?.dataset?.identity
  if (fromPage) identify(fromPage)

  return {
    identify: (token) => identify("" + token),
    attributes: (attributes) => {
      if (usable()) attributes.crm = /** @type {Identified} */ (known).crm
    },
    decideOptions: (options) => {
      if (usable()) options.customer = /** @type {Identified} */ (known).customer
    },
    hold: (attributes, options) => {
      if (waiting() && hold) return [...hold(attributes, options, CRM_PATH, true)].map((key) => [key, "waiting for identity"])
    },
    batch: () => (usable() ? { identity: /** @type {Identified} */ (known).identity } : undefined),
    pageView: () => {
      if (later) (known = later), (later = null)
    },
    consent: (given) => given || stored(false, null),
    start: () => {
      started = true
      keep(later || known)
    },
  }
}
