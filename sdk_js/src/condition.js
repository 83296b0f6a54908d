// @ts-check
// MongoDB-style conditions (docs/DESIGN.md "Conditions"); server/decisions/conditions.py is the twin.
// Never throws: a malformed condition (unknown operator, bad regex, bad operand) is false as a
// whole, even under $not or $nor, and `log` hears why. The rarer operators ($v*, $all, $size,
// $type, $elemMatch) are in operators.js, added by the operators module in the tag (only for a
// bundle that uses them) and always in the ESM build: without them they are unknown operators.

const isArr = Array.isArray
/** @param {any} x @returns {x is {[key: string]: any}} */
export const isObj = (x) => !!x && typeof x == "object" && !isArr(x)
/** @param {object} o @param {string} k */
const own = (o, k) => ({}).hasOwnProperty.call(o, k)
// The reasons `log` hears. The tag's core never passes a `log`: its build defines
// globalThis.VITRINA_CORE, and the reasons' text is left out (false).
const REASONS = !(/** @type {any} */ (globalThis).VITRINA_CORE)
/** @param {string | false} m the reason @returns {never} */
const bad = (m) => {
  throw [m]
}

// A bundle's paths repeat on every decision: each is split once.
/** @type {Map<string, string[]>} */
const pathParts = new Map()
/** @param {string} path */
const partsOf = (path) => pathParts.get(path) || (pathParts.set(path, path.split(".")), /** @type {string[]} */ (pathParts.get(path)))

// A bundle's patterns repeat on every decision: each is compiled once (null: not a valid one).
/** @type {Map<string, RegExp | null>} */
const patterns = new Map()
/** @param {string} source @param {string} flags */
const pattern = (source, flags) => {
  let r = patterns.get(flags + source)
  if (r === undefined) {
    try {
      r = new RegExp(source, flags)
    } catch (_) {
      r = null
    }
    patterns.set(flags + source, r)
  }
  return r
}

// Own properties only, so "constructor" or "length" never resolve to built-ins.
/** @param {any} o @param {string} path @returns {any} */
export const get = (o, path) => {
  for (const k of partsOf(path)) {
    if (!o || typeof o != "object" || (isArr(o) && !/^\d+$/.test(k)) || !own(o, k)) return null
    o = o[k]
  }
  return o ?? null
}

// Deep, type-strict equality (1 never equals "1" or true); i: strings compare case-insensitively.
/** @param {any} a @param {any} b @param {boolean} [i] @returns {boolean} */
const eq = (a, b, i) => {
  if (i && typeof a == "string" && typeof b == "string") return a.toLowerCase() == b.toLowerCase()
  if (a === b) return true
  if (!a || !b || typeof a != "object" || typeof b != "object" || isArr(a) != isArr(b)) return false
  const k = Object.keys(a)
  return k.length == Object.keys(b).length && k.every((x) => own(b, x) && eq(a[x], b[x], i))
}

// An array attribute matches a value when it equals it or one of its elements does.
/** @param {any} a @param {any} e @param {boolean} [i] */
const match = (a, e, i) => eq(a, e, i) || (isArr(a) && a.some((x) => eq(x, e, i)))
/** @param {any} a @param {(x: any) => boolean} f */
const some = (a, f) => (isArr(a) ? a.some(f) : f(a))
/** @param {any} c */
const isOp = (c) => isObj(c) && Object.keys(c).length > 0 && Object.keys(c).every((k) => k[0] == "$")

// JS relational operators on scalars: numeric unless both are strings; objects never compare.
/** @param {string} o @param {any} a @param {any} e */
const rel = (o, a, e) =>
  !(a && typeof a == "object") &&
  !(e && typeof e == "object") &&
  (o == "$lt" ? a < e : o == "$lte" ? a <= e : o == "$gt" ? a > e : a >= e)

/**
 * The operators a module adds: name -> (actual, expected, case-insensitive) => boolean.
 * @type {{[name: string]: (a: any, e: any, i: boolean) => boolean}}
 */
const added = Object.create(null)

/** @param {string} o @param {any} a @param {any} e @returns {boolean} */
function op(o, a, e) {
  const i = o.slice(-1) == "i"
  switch (o) {
    case "$eq":
      return match(a, e)
    case "$ne":
      return !match(a, e)
    case "$lt":
    case "$lte":
    case "$gt":
    case "$gte":
      return some(a, (x) => rel(o, x, e))
    case "$in":
    case "$ini":
    case "$nin":
    case "$nini":
      isArr(e) || bad(REASONS && o + " needs an array")
      return e.some((/** @type {any} */ y) => match(a, y, i)) == (o[1] == "i")
    case "$regex":
    case "$regexi": {
      const r = typeof e == "string" && pattern(e, i ? "i" : "")
      if (!r) bad(REASONS && "bad regex " + e)
      return some(a, (x) => typeof x == "string" && r.test(x))
    }
    case "$exists":
      return !e == (a == null)
    case "$not":
      return !val(e, a)
  }
  return added[o] ? added[o](a, e, i) : bad(REASONS && "unknown operator " + o)
}

/** @param {any} c @param {any} v @param {boolean} [i] @returns {boolean} */
function val(c, v, i) {
  return isOp(c) ? Object.keys(c).every((o) => op(o, v, c[o])) : match(v, c, i)
}

/** @param {any} c @param {any} o @returns {boolean} */
function cond(c, o) {
  isObj(c) || bad(REASONS && "condition must be an object")
  return Object.keys(c).every((k) => {
    const v = c[k]
    if (k == "$not") return !cond(v, o)
    if (k == "$and" || k == "$or" || k == "$nor") {
      isArr(v) || bad(REASONS && k + " needs an array")
      if (k == "$and") return v.every((/** @type {any} */ x) => cond(x, o))
      // An empty $or is true, so an empty $nor is false (GrowthBook).
      return (!v.length || v.some((/** @type {any} */ x) => cond(x, o))) == (k == "$or")
    }
    return val(v, get(o, k))
  })
}

/** What operators.js builds the rarer operators from. */
const parts = { op, val, cond, isArr, isObj, isOp, bad }
/** @typedef {typeof parts} EvaluatorParts */

/**
 * Adds operators to the evaluator (the operators module, the ESM build).
 * @param {(parts: EvaluatorParts) => {[name: string]: (a: any, e: any, i: boolean) => boolean}} make
 */
export const addOperators = (make) => Object.assign(added, make(parts))

/**
 * @param {any} condition
 * @param {any} attributes
 * @param {(message: string) => void} [log] hears why a malformed condition is false
 */
export function evalCondition(condition, attributes, log) {
  try {
    return cond(condition, attributes)
  } catch (e) {
    // e is [reason] from bad(), or a RangeError from absurdly deep nesting.
    if (typeof log == "function") log(isArr(e) ? e[0] : REASONS && "condition error: " + e)
    return false
  }
}
