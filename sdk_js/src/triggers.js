// Behavioural triggers (ARCHITECTURE.md "Triggers") and the page attributes they share:
// page.scroll (deepest, %), page.time and page.idle (s), page.exit_intent.

// t: a campaign's trigger, b: page behaviour (b.ev: events tracked on this page view).
// A trigger has exactly one kind (the config schema says so); the others read as undefined
// here, and every comparison with undefined or NaN is false.
export const due = (t, b, now) =>
  b.scroll >= t.scroll ||
  now - b.t0 >= t.time_on_page * 1e3 ||
  now - b.last >= t.idle * 1e3 ||
  (t.exit_intent && b.exit) ||
  !!b.ev[t.event]

// list: campaigns that have a trigger; fire() runs when one or more come due.
export function watch(win, list, fire) {
  const doc = win.document
  const b = {}
  const check = (e) => {
    const now = Date.now()
    const t = e && e.type
    const h = t == "scroll" && doc.documentElement.scrollHeight - win.innerHeight
    if (e) b.last = now // any input resets idle
    if (h > 0) b.scroll = Math.max(b.scroll, Math.min(100, Math.round((win.scrollY / h) * 100)))
    // Leaving through the top of the window: towards the tab bar, the address bar or close.
    if (t == "mouseout" && !e.relatedTarget && e.clientY <= 0) b.exit = true
    // One fire() for all the campaigns that come due together; each fires once per page view.
    if (list.filter((c) => !b.f[c.key] && due(c.trigger, b, now) && (b.f[c.key] = 1)).length) fire()
  }
  const reset = (t = Date.now()) => Object.assign(b, { t0: t, last: t, scroll: 0, exit: false, ev: {}, f: {} })
  reset()
  for (const e of ["mousemove", "keydown", "touchstart", "click", "scroll", "mouseout"]) win.addEventListener(e, check, true) // window-level touch listeners are passive anyway
  if (list.length) setInterval(check, 250) // time_on_page and idle come due without an event
  return {
    b,
    reset,
    fired: () => Object.keys(b.f),
    event(n) {
      b.ev[n] = 1
      check()
    },
  }
}
