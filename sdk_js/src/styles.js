// @ts-check
// The styles module (dist/modules/styles.min.js): the style and hide actions, an op kind of the
// DOM layer (dom.js), one op per style property. tag.js carries it only for a bundle with one
// (server/delivery/modules.py).

/** @typedef {import("./dom.js").OpKind} OpKind */

/** @type {CSSStyleDeclaration | undefined} parses the actions' declarations */
let scratch

/** "value\npriority" of a property: serialised values hold no newline. @param {CSSStyleDeclaration} style @param {string} name */
const valueOf = (style, name) => style.getPropertyValue(name) + "\n" + style.getPropertyPriority(name)

/** @param {Element} element @param {string} name @param {string} value */
function setProperty(element, name, value) {
  const style = /** @type {HTMLElement} */ (element).style
  const [property, priority] = value.split("\n")
  style.setProperty(name, property, priority)
  style.length || element.removeAttribute("style") // a revert leaving no declaration leaves no empty style="" either
}

/** @type {OpKind} name: the style property */
export const styleKind = {
  // The browser parses the declarations (shorthands, !important, url(...;...)) for us; an object
  // sets properties by name ({fontSize: "2em"}), without !important.
  ops: (action) => {
    if (!action.style && !action.hide) return []
    const parsed = (scratch ||= document.createElement("p").style)
    parsed.cssText = typeof action.style == "object" ? "" : action.style || ""
    if (typeof action.style == "object") Object.assign(parsed, action.style)
    if (action.hide) parsed.setProperty("display", "none", "important")
    return [...parsed].map((name) => [name, valueOf(parsed, name)])
  },
  early: () => undefined,
  read: (element, op) => valueOf(/** @type {HTMLElement} */ (element).style, op.name),
  write: (element, op) => setProperty(element, op.name, op.wanted),
  undo: (original, element, op) => setProperty(element, op.name, original),
}

/** @type {import("./types.js").ModuleInstall} */
export const installStyles = (runtime) => ((runtime.dom.kinds.s = styleKind), {})
