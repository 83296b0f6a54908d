// @ts-check
// Variation actions on the page (ARCHITECTURE.md "Actions"): applied to matching elements
// now and whenever the DOM changes, and taken back when a campaign stops applying.
// Every write is guarded by a read, so our own mutations settle after one quiet pass, and a
// framework re-rendering the same content every frame gets one write back per render: the
// variation is what each frame paints. Merchant HTML is parsed by <template>, whose scripts
// never run; nothing is ever evaluated. guards.js says what no action may touch.
import { refusedTarget, safeAttribute } from "./guards.js"

/** @typedef {import("./types.js").Action} Action */

const APPLIED = "data-vtr" // every op on the element is applied: the anti-flicker rule lets it show
const INSERTED = "data-vtr-i" // inserted by us: never the anchor of another insertion
// Writes per element and op before the page wins until the next task. A page that re-renders
// every frame costs one write a frame; one that reverts us from its own MutationObserver would
// otherwise answer us forever between two frames (microtasks never yield to rendering).
const MAX_WRITES_PER_TASK = 5

/**
 * One property of one action on the elements its selector matches.
 * kind: "p" element property (textContent, innerHTML), "a" attribute, "c" class, "s" style
 * property, "r" remove, "i" insert (name: before, after or append), "x" a module's own change
 * (wanted: a function that changes the element once and returns what undoes it).
 * @typedef {Object} Op
 * @property {string} selector
 * @property {"p" | "a" | "c" | "s" | "r" | "i" | "x"} kind
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
 * @param {Element} element
 * @param {Op} op
 * @param {Applied | undefined} applied
 */
const read = (element, op, applied) => {
  const style = /** @type {HTMLElement} */ (element).style
  switch (op.kind) {
    case "p":
      return /** @type {any} */ (element)[op.name]
    case "a":
      return element.getAttribute(op.name)
    case "c":
      return element.classList.contains(op.name)
    case "s":
      return style.getPropertyValue(op.name) + "\n" + style.getPropertyPriority(op.name)
    case "r":
      return !element.isConnected
  }
  // i: our nodes are still there
  return !!applied && !(applied.original.length && !applied.original.some((/** @type {Node} */ n) => n.isConnected))
}

/**
 * @param {Element} element
 * @param {Op} op
 * @param {any} value
 */
const write = (element, op, value) => {
  const name = op.name
  const style = /** @type {HTMLElement} */ (element).style
  if (op.kind == "p") (/** @type {any} */ (element))[name] = value
  else if (op.kind == "a") value == null ? element.removeAttribute(name) : element.setAttribute(name, value)
  else if (op.kind == "c") element.classList.toggle(name, value)
  // "value\npriority": serialised values hold no newline; a revert leaving no declaration
  // leaves no empty style="" either
  else if (op.kind == "s") {
    const [property, priority] = value.split("\n")
    style.setProperty(name, property, priority)
    style.length || element.removeAttribute("style")
  }
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
    : op.kind == "i"
      ? original.forEach((/** @type {ChildNode} */ node) => node.remove())
      : op.kind == "x"
        ? original()
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
  const scratchStyle = doc.createElement("p").style // parses the style actions' declarations
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
  // While the parser is still inside the element, appending would land before its remaining children.
  /** @param {Element} element */
  const parsed = (element) => {
    for (let node = /** @type {Node | null} */ (element); node; node = node.parentNode) if (node.nextSibling) return true
    return doc.readyState != "loading"
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
      // The browser parses the declarations (shorthands, !important, url(...;...)) for us;
      // an object sets properties by name ({fontSize: "2em"}), without !important.
      const parsedStyle = scratchStyle
      parsedStyle.cssText = typeof action.style == "object" ? "" : action.style || ""
      if (typeof action.style == "object") Object.assign(parsedStyle, action.style)
      if (action.hide) parsedStyle.setProperty("display", "none", "important")
      for (const name of parsedStyle)
        add(selector, "s", name, parsedStyle.getPropertyValue(name) + "\n" + parsedStyle.getPropertyPriority(name))
      if (action.remove) add(selector, "r", "", true)
      for (const [where, html] of [
        ["before", action.insertBefore],
        ["after", action.insertAfter],
        ["append", action.append],
      ])
        if (html != null) add(selector, "i", /** @type {string} */ (where), html)
      if (action.apply) add(selector, "x", "", action.apply)
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
    if (op.kind == "i") {
      if (element.closest("[" + INSERTED + "]")) return true
      if (op.name == "append" && !parsed(element)) return false
    }
    let byOp = remembered.get(element)
    if (!byOp) remembered.set(element, (byOp = {}))
    let applied = byOp[op.id]
    if (op.kind == "x") {
      if (!applied) (byOp[op.id] = { original: op.wanted(element) }), live[op.campaign].touched.add(element)
      return true
    }
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
    else if (op.kind == "i") {
      const fragment = template(op.wanted).content
      applied.original = [...fragment.childNodes]
      for (const node of applied.original) node.nodeType == 1 && node.setAttribute(INSERTED, "")
      const insert = /** @type {any} */ (element)[op.name] // before, after or append
      insert.call(element, fragment)
    } else write(element, op, op.wanted)
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

  return { sync, addStyle, hideFor }
}
