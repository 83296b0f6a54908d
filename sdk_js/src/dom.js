// @ts-check
// Variation actions on the page (docs/reference/config.md "Actions"): applied to matching elements
// now and whenever the DOM changes, and taken back when a campaign stops applying.
// Every write is guarded by a read, so our own mutations settle after one quiet pass, and a
// framework re-rendering the same content every frame gets one write back per render: the
// variation is what each frame paints. Merchant HTML is parsed by <template>, whose scripts
// never run; nothing is ever evaluated. guards.js says what no action may touch. Inserting
// HTML beside or into an element is the inserts module's op kind (inserts.js), style and hide
// the styles module's (styles.js).
import { refusedTarget, safeAttribute } from "./guards.js"

/** @typedef {import("./types.js").Action} Action */

const APPLIED = "data-vtr" // every op on the element is applied: the anti-flicker rule lets it show
// Writes per element and op before the page wins until the next task. A page that re-renders
// every frame costs one write a frame; one that reverts us from its own MutationObserver would
// otherwise answer us forever between two frames (microtasks never yield to rendering).
const MAX_WRITES_PER_TASK = 5

/**
 * One property of one action on the elements its selector matches.
 * kind: "p" element property (textContent, innerHTML), "a" attribute, "c" class, "r" remove;
 * or a module's (OpKind): "i" insert (name: before, after or append), "s" style property.
 * @typedef {Object} Op
 * @property {string} selector
 * @property {string} kind
 * @property {string} name
 * @property {any} wanted
 * @property {string} campaign
 * @property {string} id unique per campaign: the key of what we remember per element
 */

/**
 * What we remember about one op on one element.
 * @typedef {Object} Applied
 * @property {any} original what was there (child nodes for p; our nodes for i)
 * @property {any} [left] what we left there
 * @property {number} [writes] writes this task
 * @property {number} [task]
 */

/** @typedef {{actions: Action[], ops: Op[], touched: Set<Element>}} LiveCampaign */

/**
 * An op kind a module adds (the inserts module's "i", the styles module's "s").
 * @typedef {Object} OpKind
 * @property {(action: Action) => [name: string, wanted: any][]} ops what an action asks of this kind
 * @property {(element: Element, op: Op) => boolean | undefined} early before anything: true when
 *   there is nothing to do, false when the element must wait (hidden), undefined to go on
 * @property {(element: Element, op: Op, applied: Applied | undefined) => any} read
 * @property {(element: Element, op: Op, applied: Applied) => void} write applies it, and sets what undo() takes back in applied.original
 * @property {(original: any, element: Element, op: Op) => void} undo
 */

/** @type {{[kind: string]: OpKind}} the modules' op kinds, by kind */
const kinds = {}

/**
 * @param {Element} element
 * @param {Op} op
 * @param {Applied | undefined} applied
 */
const read = (element, op, applied) => {
  switch (op.kind) {
    case "p":
      return /** @type {any} */ (element)[op.name]
    case "a":
      return element.getAttribute(op.name)
    case "c":
      return element.classList.contains(op.name)
    case "r":
      return !element.isConnected
  }
  return kinds[op.kind].read(element, op, applied)
}

/**
 * @param {Element} element
 * @param {Op} op
 * @param {any} value
 */
const write = (element, op, value) => {
  const name = op.name
  if (op.kind == "p") (/** @type {any} */ (element))[name] = value
  else if (op.kind == "a") value == null ? element.removeAttribute(name) : element.setAttribute(name, value)
  else if (op.kind == "c") element.classList.toggle(name, value)
}

/**
 * Puts back what was there. A removed element stays removed: the page (or the next page view) brings it back.
 * @param {Element} element
 * @param {Op} op
 * @param {any} original
 */
const undo = (element, op, original) =>
  op.kind == "p"
    ? (element.textContent = "") || element.append(...original) // the original nodes, listeners and all
    : kinds[op.kind]
      ? kinds[op.kind].undo(original, element, op)
      : write(element, op, original)

/**
 * @param {Document} doc
 * @param {string | undefined} nonce the tag's own, for our <style> elements under a CSP
 * @param {(message: string) => void} refused hears each refused op (the debug log)
 */
export function createDom(doc, nonce, refused) {
  /** @type {WeakMap<Element, {[opId: string]: Applied}>} */
  const remembered = new WeakMap()
  /** @type {{[campaign: string]: LiveCampaign}} */
  const live = {}
  /** @type {Op[]} */
  let ops = []
  /** @type {MutationObserver | undefined} */
  let observer
  /** @type {HTMLStyleElement | undefined} */
  let cssSheet
  /** @type {Set<string>} */
  const refusedOps = new Set()
  let task = 0 // tasks since the first write: fights are counted per task
  let taskTimer = 0

  /** @param {string} text */
  const addStyle = (text) => {
    const style = doc.createElement("style")
    if (nonce) style.nonce = nonce
    style.textContent = text
    return doc.head.appendChild(style) // a script in <head> (or before it) means there is one
  }
  /** @param {string} html */
  const template = (html) => {
    const t = doc.createElement("template")
    t.innerHTML = html
    return t
  }

  /**
   * @param {string} campaign
   * @param {Action[]} actions
   */
  function compile(campaign, actions) {
    /** @type {Op[]} */
    const out = []
    const base = doc.baseURI
    /** @type {(selector: string, kind: Op["kind"], name: string, wanted: any) => void} */
    const add = (selector, kind, name, wanted) => {
      out.push({ selector, kind, name, wanted, campaign, id: campaign + " " + out.length })
    }
    for (const action of actions) {
      const selector = action.selector
      if (!selector) continue
      if (action.text != null) add(selector, "p", "textContent", "" + action.text)
      // As the browser serialises it back, so markup it normalises still reads as applied.
      if (action.html != null) add(selector, "p", "innerHTML", template(action.html).innerHTML)
      for (const name in action.attr) {
        const value = action.attr[name]
        const wanted = value == null || value === false ? null : "" + value
        if (safeAttribute(name, wanted, base)) add(selector, "a", name, wanted)
        else refused(campaign + ": attribute " + name + " refused")
      }
      for (const [classes, on] of /** @type {[any, boolean][]} */ ([
        [action.addClass, true],
        [action.removeClass, false],
      ]))
        for (const name of ("" + (classes || "")).split(/[ ,]/)) name && add(selector, "c", name, on) // "a b" or ["a", "b"]
      if (action.remove) add(selector, "r", "", true)
      for (const kind in kinds) for (const [name, wanted] of kinds[kind].ops(action)) add(selector, kind, name, wanted)
    }
    return out
  }

  /**
   * true when the element is in the op's state (now or already), false when it has to wait.
   * @param {Op} op
   * @param {Element} element
   */
  function apply(op, element) {
    if (refusedTarget(element)) {
      refusedOps.has(op.id) || (refusedOps.add(op.id), refused(op.campaign + ": <" + element.localName + "> is never a target"))
      return true // never touched, and never hidden for it
    }
    const early = kinds[op.kind]?.early(element, op)
    if (early != null) return early
    let byOp = remembered.get(element)
    if (!byOp) remembered.set(element, (byOp = {}))
    let applied = byOp[op.id]
    const current = read(element, op, applied)
    if (current === op.wanted || (applied && current === applied.left)) return true
    if (!applied) {
      applied = byOp[op.id] = { original: op.kind == "p" ? [...element.childNodes] : current }
      live[op.campaign].touched.add(element)
    }
    if (applied.task != task) (applied.task = task), (applied.writes = 0)
    if (++(/** @type {number} */ (applied.writes)) > MAX_WRITES_PER_TASK) return true
    taskTimer = taskTimer || setTimeout(() => (taskTimer = 0) || task++)
    if (op.kind == "r") element.remove()
    else if (kinds[op.kind]) kinds[op.kind].write(element, op, applied)
    else write(element, op, op.wanted)
    applied.left = read(element, op, applied)
    return true
  }

  // An element shows (anti-flicker) once every op on it is applied.
  function pass() {
    /** @type {{[selector: string]: ArrayLike<Element>}} */
    const found = {}
    /** @type {Set<Element>} */
    const done = new Set()
    /** @type {Set<Element>} */
    const waiting = new Set()
    for (const op of ops) {
      let elements = found[op.selector]
      if (!elements)
        try {
          elements = found[op.selector] = doc.querySelectorAll(op.selector)
        } catch (_) {
          elements = found[op.selector] = [] // an invalid selector matches nothing
        }
      for (const element of Array.from(elements)) {
        let ok = true
        try {
          ok = apply(op, element)
        } catch (_) {} // what the browser refuses (inserting beside <html>) is skipped, not fatal
        ;(ok ? done : waiting).add(element)
      }
    }
    for (const element of done) waiting.has(element) || element.toggleAttribute(APPLIED, true) // no mutation when already there
  }

  /** @param {string} campaign */
  function revert(campaign) {
    const gone = live[campaign]
    delete live[campaign]
    for (const element of gone.touched) {
      const byOp = /** @type {{[opId: string]: Applied}} */ (remembered.get(element))
      for (let i = gone.ops.length; i--; ) {
        const op = gone.ops[i]
        if (byOp[op.id]) undo(element, op, byOp[op.id].original)
        delete byOp[op.id]
      }
    }
  }

  /**
   * Makes the page show exactly these campaigns' actions.
   * @param {{[campaign: string]: Action[]}} wanted the actions of every variation that applies now
   * @param {number} antiflickerMs hide their elements until applied, at most this long (0: no hiding)
   */
  function sync(wanted, antiflickerMs) {
    for (const campaign in live) if (live[campaign].actions !== wanted[campaign]) revert(campaign)
    for (const campaign in wanted)
      live[campaign] = live[campaign] || { actions: wanted[campaign], ops: compile(campaign, wanted[campaign]), touched: new Set() }
    const all = Object.values(live)
    ops = all.flatMap((c) => c.ops)
    for (const c of all) for (const element of c.touched) element.isConnected || c.touched.delete(element) // thrown away by an SPA (or removed by us)
    const css = all.map((c) => c.actions.map((action) => action.css || "").join("\n")).join("\n")
    if (cssSheet || css.trim()) (cssSheet = cssSheet || addStyle("")).textContent == css || (cssSheet.textContent = css)
    if (antiflickerMs > 0 && ops.length) hideFor([...new Set(ops.map((op) => op.selector))], antiflickerMs, ":not([" + APPLIED + "])")
    if (!observer && ops.length)
      (observer = new MutationObserver(pass)).observe(doc.documentElement, {
        childList: true,
        subtree: true,
        attributes: true,
        characterData: true,
      })
    pass()
  }

  /**
   * Hides what the selectors match for at most `ms`; returns what shows them again at once.
   * @param {string[]} selectors
   * @param {number} ms
   * @param {string} [unless] a selector suffix for elements that may show (applied ones)
   */
  function hideFor(selectors, ms, unless = "") {
    const style = addStyle(":is(" + selectors + ")" + unless + "{visibility:hidden!important}")
    const show = () => style.remove()
    setTimeout(show, ms)
    return show
  }

  return { sync, addStyle, hideFor, kinds }
}
