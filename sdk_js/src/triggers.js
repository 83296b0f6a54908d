// @ts-check
// The triggers module (sdk_js/dist/modules/triggers.min.js): behavioural triggers (docs/reference/config.md
// "Triggers") and the page behaviour they share with conditions (page.scroll, page.idle,
// page.exit_intent, which it adds to the attributes). tag.js carries it only for a bundle that
// uses them (server/delivery/modules.py); without it a campaign with a trigger stays "waiting
// for trigger", and those attributes are missing.

/** @typedef {import("./types.js").Trigger} Trigger */
/** @typedef {import("./types.js").Behaviour} Behaviour */
/** @typedef {import("./types.js").ModuleInstall} ModuleInstall */

const CHECK_EVERY_MS = 250 // time_on_page and idle come due without an event
// Window-level touch listeners are passive anyway; capture sees what the page stops.
const INPUTS = ["mousemove", "keydown", "touchstart", "click", "scroll", "mouseout"]

/**
 * A trigger has exactly one kind (the config schema says so); the others read as undefined
 * here, and every comparison with undefined or NaN is false.
 * @param {Trigger} trigger
 * @param {Behaviour} behaviour
 * @param {{[name: string]: 1}} events tracked on this page view
 * @param {number} now
 */
export const due = (trigger, behaviour, events, now) =>
  behaviour.scroll >= /** @type {number} */ (trigger.scroll) ||
  now - behaviour.start >= /** @type {number} */ (trigger.time_on_page) * 1e3 ||
  now - behaviour.lastInput >= /** @type {number} */ (trigger.idle) * 1e3 ||
  (!!trigger.exit_intent && behaviour.exitIntent) ||
  (trigger.event != null && !!events[trigger.event])

/**
 * Keeps `behaviour` up to date.
 * @param {Window} win
 * @param {Behaviour} behaviour
 * @param {any} event an input event
 */
export function observe(win, behaviour, event) {
  const scrollable = event.type == "scroll" ? win.document.documentElement.scrollHeight - win.innerHeight : 0
  behaviour.lastInput = Date.now() // any input resets idle
  if (scrollable > 0)
    behaviour.scroll = Math.max(behaviour.scroll, Math.min(100, Math.round((win.scrollY / scrollable) * 100)))
  // Leaving through the top of the window: towards the tab bar, the address bar or close.
  if (event.type == "mouseout" && !event.relatedTarget && event.clientY <= 0) behaviour.exitIntent = true
}

/**
 * The behaviour's attributes in the tree: page.scroll, page.idle (seconds), page.exit_intent.
 * @param {any} attributes
 * @param {Behaviour} behaviour
 * @param {number} now
 */
export const addBehaviour = (attributes, behaviour, now) =>
  Object.assign(attributes.page, {
    scroll: behaviour.scroll,
    idle: Math.floor((now - behaviour.lastInput) / 1e3),
    exit_intent: behaviour.exitIntent,
  })

/** @type {ModuleInstall} */
export const installTriggers = (runtime) => {
  /** @type {{[campaign: string]: 1}} */
  let fired = {}
  /** @type {{[name: string]: 1}} */
  let events = {}
  /** @returns {Behaviour} */
  const fresh = (now = Date.now()) => ({ start: now, lastInput: now, scroll: 0, exitIntent: false })
  /** this page view's (a module's pageView hook may read the attributes before this one's runs) */
  let behaviour = fresh()
  const campaigns = () => (runtime.bundle()?.campaigns || []).filter((c) => c.trigger)
  // One decision for all the campaigns that come due together; each fires once per page view.
  const check = () => {
    const now = Date.now()
    const newlyDue = campaigns().filter(
      (c) => !fired[c.key] && due(/** @type {Trigger} */ (c.trigger), behaviour, events, now) && (fired[c.key] = 1),
    )
    if (newlyDue.length) runtime.decide()
  }
  return {
    attributes: (attributes) => addBehaviour(attributes, behaviour, Date.now()),
    decideOptions: (options) => {
      options.triggered = Object.keys(fired)
    },
    pageView: () => {
      fired = {}
      events = {}
      behaviour = fresh()
    },
    start: () => {
      for (const type of INPUTS) window.addEventListener(type, (event) => (observe(window, behaviour, event), check()), true)
      if (campaigns().length) setInterval(check, CHECK_EVERY_MS)
    },
    track: (name) => {
      events[name] = 1
      check()
    },
  }
}
