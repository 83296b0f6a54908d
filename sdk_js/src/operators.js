// @ts-check
// The rarer condition operators (docs/DESIGN.md "Conditions"): version comparisons ($veq $vne
// $vgt $vgte $vlt $vlte), $all, $alli, $size, $type, $elemMatch. tag.js carries them, as the
// operators module, only for a bundle that uses them (server/delivery/modules.py); the ESM build
// always has them. server/decisions/conditions.py is the twin, as for condition.js.

/** @typedef {import("./condition.js").EvaluatorParts} EvaluatorParts */

// "v1.2.3-rc.1+b7" -> "    1-    2-    3-rc-    1": ordered as plain strings.
/** @param {any} v */
const versionKey = (v) => {
  const p = (typeof v == "number" ? v + "" : typeof v == "string" && v ? v : "0")
    .replace(/^v/, "")
    .split("+")[0]
    .split(/[-.]/)
  // "1.2" means 1.2.0, so it equals "1.2.0" and ranks above "1.2.0-beta".
  while (p.length < 3 && p.every((x) => /^\d+$/.test(x))) p.push("0")
  if (p.length == 3) p.push("~")
  return p.map((x) => (/^\d+$/.test(x) ? x.padStart(5, " ") : x)).join("-")
}

/** @param {EvaluatorParts} parts */
export const rareOperators = ({ op, val, cond, isArr, isObj, isOp, bad }) => {
  /** @param {string} compare the plain operator on the version keys */
  const version = (compare) => (/** @type {any} */ a, /** @type {any} */ e) => op(compare, versionKey(a), versionKey(e))
  /** @param {string} name */
  const all = (name) => (/** @type {any} */ a, /** @type {any} */ e, /** @type {boolean} */ i) =>
    (isArr(e) || bad(name + " needs an array"), isArr(a) && e.every((/** @type {any} */ c) => a.some((/** @type {any} */ x) => val(c, x, i))))
  /** @type {{[name: string]: (a: any, e: any, i: boolean) => boolean}} */
  const operators = {
    $veq: version("$eq"),
    $vne: version("$ne"),
    $vgt: version("$gt"),
    $vgte: version("$gte"),
    $vlt: version("$lt"),
    $vlte: version("$lte"),
    $all: all("$all"),
    $alli: all("$alli"),
    $type: (a, e) => (a == null ? "null" : isArr(a) ? "array" : typeof a) == e,
    $size: (a, e) => isArr(a) && val(e, a.length),
    $elemMatch: (a, e) =>
      (isObj(e) || bad("$elemMatch needs an object"), isArr(a) && a.some((/** @type {any} */ x) => x != null && (isOp(e) ? val(e, x) : cond(e, x)))),
  }
  return operators
}
