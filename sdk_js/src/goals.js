// @ts-check
// Goals (ARCHITECTURE.md "Site config"): which goal keys a tracked event, a click or a page
// view converts. Every conversion is sent; the server attributes it to each campaign the
// visitor was exposed to.
import { evalCondition } from "./condition.js"

/** @typedef {import("./types.js").Goal} Goal */
/** @typedef {{[key: string]: Goal} | undefined} Goals */

/**
 * @param {Goals} goals
 * @param {(goal: Goal, key: string) => any} test
 */
const keysWhere = (goals, test) => Object.keys(goals || {}).filter((key) => test(/** @type {any} */ (goals)[key], key))

/**
 * vitrina.track(name): goals declared {"event": name}, and the goal whose key is name.
 * @param {Goals} goals
 * @param {string} name
 */
export const tracked = (goals, name) => keysWhere(goals, (goal, key) => goal.event == name || key == name)

/**
 * {"pageview": condition} goals matching this page's attributes.
 * @param {Goals} goals
 * @param {any} attributes
 */
export const viewed = (goals, attributes) => keysWhere(goals, (goal) => goal.pageview && evalCondition(goal.pageview, attributes))

/**
 * {"click": selector} goals the clicked element (or an ancestor) matches.
 * @param {Goals} goals
 * @param {any} element
 */
export const clicked = (goals, element) =>
  keysWhere(goals, (goal) => {
    try {
      return goal.click && element.closest && !!element.closest(goal.click)
    } catch (_) {} // an invalid selector converts nothing
  })

/**
 * Whether any goal converts on a click (the click listener is only added then).
 * @param {Goals} goals
 */
export const hasClickGoals = (goals) => keysWhere(goals, (goal) => goal.click).length > 0
