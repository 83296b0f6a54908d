// @ts-check
// Goals (docs/reference/config.md "Goals"): which goal keys a tracked event, a click or a page
// view converts. Every conversion is sent; the server attributes it to each campaign the
// visitor was exposed to. Event goals are the core's (vitrina.track); click and page-view goals
// are the goals module's (installGoals), which tag.js carries only for a bundle that has them.
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
export const tracked = (goals, name) => Object.keys(goals || {}).filter((key) => /** @type {any} */ (goals)[key].event == name || key == name)

/**
 * {"pageview": condition} goals matching this page's attributes.
 * @param {Goals} goals
 * @param {any} attributes
 * @param {(condition: any, attributes: any) => boolean} evaluate the core's evalCondition (with the operators it has)
 */
export const viewed = (goals, attributes, evaluate) => keysWhere(goals, (goal) => goal.pageview && evaluate(goal.pageview, attributes))

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

/**
 * The goals module (dist/modules/goals.min.js): click goals, through one capturing listener
 * added at init, and page-view goals, once per page view when the document is parsed and the
 * first paint is past (and nothing is held back: a goal may read the context campaigns wait for).
 * @type {import("./types.js").ModuleInstall}
 */
export const installGoals = (runtime) => {
  const goals = runtime.bundle()?.goals
  let started = false
  let done = false // this page view's
  const pageViewGoals = () => {
    if (!runtime.bundle() || done || !started || document.readyState == "loading" || runtime.held()) return
    done = true
    for (const goal of viewed(goals, runtime.attributes(), runtime.evalCondition)) runtime.convert(goal)
  }
  // At once, not after the paint: a click on the first frame must convert.
  if (hasClickGoals(goals))
    document.addEventListener("click", (event) => runtime.bundle() && clicked(goals, event.target).forEach((goal) => runtime.convert(goal)), true)
  return {
    pageView: () => ((done = false), pageViewGoals()),
    start: () => ((started = true), pageViewGoals()),
    decided: pageViewGoals,
  }
}
