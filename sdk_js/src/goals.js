// Goals (ARCHITECTURE.md "Site config"): which goal keys a tracked event, a click or a page
// view converts. Every conversion is sent; the server attributes it to each campaign the
// visitor was exposed to.
import { evalCondition } from "./condition.js"

const each = (goals, f) => Object.keys(goals || {}).filter((k) => f(goals[k], k))

// vitrina.track(name): goals declared {"event": name}, and the goal whose key is name.
export const tracked = (goals, name) => each(goals, (g, k) => g.event == name || k == name)

// {"pageview": condition} goals matching this page's attributes.
export const viewed = (goals, attrs) => each(goals, (g) => g.pageview && evalCondition(g.pageview, attrs))

// {"click": selector} goals the clicked element (or an ancestor) matches.
export const clicked = (goals, el) =>
  each(goals, (g) => {
    try {
      return g.click && el.closest && !!el.closest(g.click)
    } catch (e) {} // an invalid selector converts nothing
  })
