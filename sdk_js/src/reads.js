// @ts-check
// Which attribute paths a bundle's conditions read, so the runtime does only the work a bundle
// needs (the data layer before each decision, a decision again at DOMContentLoaded, the
// server-resolved context). server/delivery/modules.py condition_paths is the twin.
import { isObj } from "./condition.js"

/** @typedef {import("./types.js").Bundle} Bundle */

/**
 * The attribute paths a condition reads: its keys, through $and, $or, $nor and $not.
 * @param {any} condition
 * @param {string[]} [into]
 */
export function conditionPaths(condition, into = []) {
  if (isObj(condition))
    for (const key in condition) {
      const value = condition[key]
      if (key == "$not") conditionPaths(value, into)
      else if (key == "$and" || key == "$or" || key == "$nor") Array.isArray(value) && value.forEach((c) => conditionPaths(c, into))
      else into.push(key)
    }
  return into
}

/**
 * Every attribute path the bundle's campaigns (pages, segment, conditions) and page-view goals read.
 * @param {Bundle | null | undefined} bundle
 */
export function bundlePaths(bundle) {
  /** @type {string[]} */
  const paths = []
  if (!bundle) return paths
  const segments = bundle.segments || {}
  const goals = bundle.goals || {}
  for (const c of bundle.campaigns || [])
    for (const condition of [c.pages, c.segment != null && segments[c.segment], c.conditions]) conditionPaths(condition, paths)
  for (const key in goals) conditionPaths(goals[key]?.pageview, paths)
  return paths
}

/**
 * Whether any campaign or page-view goal of the bundle reads an attribute path matching `pattern`.
 * @param {Bundle | null | undefined} bundle
 * @param {RegExp} pattern
 */
export const bundleReads = (bundle, pattern) => bundlePaths(bundle).some((path) => pattern.test(path))
