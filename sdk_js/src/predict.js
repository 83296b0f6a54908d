// @ts-check
// Predictive targeting, the predict module (docs/DESIGN.md "Predictive targeting"): the feature
// vector of the attribute tree, the score of a published model, and `predict.<goal>` in the tree.
// Twin of server/predict/features.py and scorer.py; spec/08-predict.json holds them together.

const MEDIUMS = ["direct", "search", "social", "email", "paid", "referral"]
const DEVICES = ["mobile", "tablet", "desktop"]
/** @type {[string, number][]} each: below this hour */
const HOURS = [["night", 6], ["morning", 12], ["afternoon", 18], ["evening", 24]]
const MAX_NAMED = 8 // event counts and crm numbers: the first 8 names in code-unit order
const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$/

/** @param {any} x @returns {x is {[key: string]: any}} */
const isObj = (x) => !!x && typeof x == "object" && !Array.isArray(x)
/** @param {object} o @param {string} k */
const own = (o, k) => Object.prototype.hasOwnProperty.call(o, k)
/** @param {any} x */
const number = (x) => (typeof x == "number" && isFinite(x) ? x : 0)
/** log(1 + x) of x clipped to [0, cap]. @param {any} x @param {number} cap */
const log = (x, cap) => Math.log1p(Math.min(Math.max(number(x), 0), cap))
/** @param {any} tree @param {string} path @returns {any} */
const get = (tree, path) => path.split(".").reduce((o, k) => (isObj(o) && own(o, k) ? o[k] : undefined), tree)

/**
 * {name: encode(value)} for the first MAX_NAMED names (sorted) with a usable value.
 * @param {any} values @param {(x: any) => number | null} encode
 */
function named(values, encode) {
  /** @type {{[name: string]: number}} */
  const found = {}
  let n = 0
  for (const name of Object.keys(isObj(values) ? values : {}).filter((k) => NAME.test(k)).sort()) {
    const value = encode(values[name])
    if (value != null && ((found[name] = value), ++n == MAX_NAMED)) break
  }
  return found
}

/** @param {any} x @returns {number | null} */
const crmValue = (x) =>
  x === true || x === false ? +x : typeof x == "number" && isFinite(x) ? Math.sign(x) * Math.log1p(Math.min(Math.abs(x), 1e9)) : null

/**
 * The feature vector of an attribute tree: {feature: value}, zeros left out.
 * @param {any} tree
 * @returns {{[name: string]: number}}
 */
export function features(tree) {
  const visit = isObj(get(tree, "visit")) ? get(tree, "visit") : {}
  const utm = get(tree, "utm")
  const hour = get(tree, "time.hour")
  const medium = get(tree, "referrer.medium")
  const device = get(tree, "device.type")
  const products = get(tree, "history.products")
  const categories = get(tree, "history.categories")
  const counts = isObj(get(tree, "history.events")) ? get(tree, "history.events") : {}
  /** @type {{[name: string]: number}} */
  const values = {
    "visit.count": log(visit.count, 1000),
    "visit.new": visit.new === true ? 1 : 0,
    "visit.days_since_last": log(visit.days_since_last, 365),
    "visit.pageviews": log(visit.pageviews, 1000),
    "visit.total_pageviews": log(visit.total_pageviews, 100000),
  }
  for (const name of MEDIUMS) values["medium." + name] = medium === name ? 1 : 0
  values.utm = isObj(utm) && ["source", "medium", "campaign"].some((k) => typeof utm[k] == "string" && utm[k]) ? 1 : 0
  for (const name of DEVICES) values["device." + name] = device === name ? 1 : 0
  let start = 0
  for (const [name, end] of HOURS) {
    values["hour." + name] = typeof hour == "number" && start <= hour && hour < end ? 1 : 0
    start = end
  }
  values.products = log(Array.isArray(products) ? products.length : 0, 20)
  values.categories = log(Array.isArray(categories) ? new Set(categories.filter((c) => typeof c == "string")).size : 0, 20)
  values["cart.value"] = log(get(tree, "cart.value"), 100000)
  values["cart.items"] = log(get(tree, "cart.items"), 1000)
  values.events = log(Object.values(counts).reduce((sum, v) => sum + Math.max(number(v), 0), 0), 100000)
  const events = named(counts, (v) => log(v, 10000))
  for (const name in events) values["events." + name] = events[name]
  const crm = named(get(tree, "crm"), crmValue)
  for (const name in crm) values["crm." + name] = crm[name]
  for (const name in values) values[name] || delete values[name]
  return values
}

/**
 * The probability of converting: the logistic of intercept + the weighted features, in the model's order.
 * @param {{intercept: number, weights: {[name: string]: number}}} model
 * @param {{[name: string]: number}} values
 */
export function score(model, values) {
  let z = model.intercept
  for (const name in model.weights) z += model.weights[name] * (own(values, name) ? values[name] : 0)
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z))
}

/** @param {string} goal */
export const noModel = (goal) => "no published model for predict." + goal + ": conditions on it are false"

/**
 * Put `predict` in an attribute tree: each goal of `goals` with a model gets its probability; one
 * without gets a property whose getter throws, so a condition reading it is false as a whole and
 * the condition's log hears why (condition.js catches what a path throws). Returns the tree.
 * @param {any} tree
 * @param {{[goal: string]: any}} models
 * @param {string[]} goals
 * @param {any} [scored] the tree to score (default: `tree`)
 */
export function installPredictions(tree, models, goals, scored = tree) {
  const values = goals.some((goal) => own(models, goal)) ? features(scored) : {}
  /** @type {{[goal: string]: number}} */
  const predict = {}
  for (const goal of goals)
    own(models, goal)
      ? (predict[goal] = score(models[goal], values))
      : Object.defineProperty(predict, goal, {
          get() {
            throw [noModel(goal)]
          },
        })
  tree.predict = predict
  return tree
}

/**
 * The module: predict.<goal> in every decision's tree, and the page view's feature vector on each
 * collect batch (the server gives it to the batch's exposures and conversions: what training
 * learns from). The core adds the site's vitrina.set() values (the cart) after the modules'
 * `attributes` hooks, so the hook scores the whole tree, `runtime.attributes()`, asked once (its
 * own call back into the hook does nothing).
 * @type {import("./types.js").ModuleInstall}
 */
export function installPredict(runtime) {
  const bundle = /** @type {any} */ (runtime.bundle()) || {}
  // the served revision's models part (docs/DESIGN.md "Revisions"): published models, without a new version
  const models = isObj(bundle.revision) && isObj(bundle.revision.models) ? bundle.revision.models : {}
  /** @type {string[]} */
  const goals = Array.isArray(bundle.predict) ? bundle.predict : []
  for (const goal of goals) own(models, goal) || runtime.note("predict", noModel(goal))
  /** @type {{[name: string]: number} | undefined} */
  let current
  let asking = false
  return {
    attributes(tree) {
      if (asking) return
      asking = true
      try {
        const whole = runtime.attributes()
        current = features(whole)
        installPredictions(tree, models, goals, whole)
      } finally {
        asking = false
      }
    },
    batch: () => (current ? { features: current } : undefined),
  }
}
