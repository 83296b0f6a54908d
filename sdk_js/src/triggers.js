// Behavioural triggers (ARCHITECTURE.md "Triggers") and the page attributes they share:
// page.scroll (deepest, %), page.time and page.idle (s), page.exit_intent.

// t: a campaign's trigger, b: page behaviour, ev: events tracked on this page view.
export const due = (t, b, now, ev) =>
  t.scroll != null
    ? b.scroll >= t.scroll
    : t.time_on_page != null
      ? now - b.t0 >= t.time_on_page * 1e3
      : t.idle != null
        ? now - b.last >= t.idle * 1e3
        : t.exit_intent
          ? b.exit
          : !!b.ev[t.event]

// list: campaigns that have a trigger; fire() runs when one or more come due.
export function watch(win, list, fire) {
  const doc = win.document
  const b = {}
  const check = (e) => {
    const now = Date.now()
    const h = e && e.type == "scroll" && doc.documentElement.scrollHeight - win.innerHeight
    if (e) b.last = now // any input resets idle
    if (h > 0) b.scroll = Math.max(b.scroll, Math.min(100, Math.round((win.scrollY / h) * 100)))
    // Leaving through the top of the window: towards the tab bar, the address bar or close.
    if (e && e.type == "mouseout" && !e.relatedTarget && e.clientY <= 0) b.exit = true
    const go = list.filter((c) => !b.f[c.key] && due(c.trigger, b, now, b.ev))
    for (const c of go) b.f[c.key] = 1
    if (go.length) fire()
  }
  const reset = () => Object.assign(b, { t0: Date.now(), last: Date.now(), scroll: 0, exit: false, ev: {}, f: {} })
  reset()
  for (const e of ["mousemove", "keydown", "touchstart", "click", "scroll", "mouseout"]) win.addEventListener(e, check, { passive: true, capture: true })
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
