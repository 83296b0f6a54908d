// @ts-check
// The inserts module (dist/modules/inserts.min.js): the insertBefore, insertAfter and append
// actions, an op kind of the DOM layer (dom.js). tag.js carries it only for a bundle with one
// (server/delivery/modules.py). Merchant HTML is parsed by <template> (its scripts never run)
// and inserted once per element: again if the page removed it, never into our own insertions.

/** @typedef {import("./dom.js").OpKind} OpKind */

const INSERTED = "data-vtr-i" // inserted by us: never the anchor of another insertion

// While the parser is still inside the element, appending would land before its remaining children.
/** @param {Element} element */
const parsed = (element) => {
  for (let node = /** @type {Node | null} */ (element); node; node = node.parentNode) if (node.nextSibling) return true
  return document.readyState != "loading"
}

/** @type {OpKind} name: before, after or append (the Element methods) */
export const insertKind = {
  ops: (action) =>
    /** @type {[string, any][]} */ ([
      ["before", action.insertBefore],
      ["after", action.insertAfter],
      ["append", action.append],
    ]).filter(([, html]) => html != null),
  early: (element, op) => (element.closest("[" + INSERTED + "]") ? true : op.name == "append" && !parsed(element) ? false : undefined),
  // Our nodes are still there.
  read: (_, __, applied) => !!applied && !(applied.original.length && !applied.original.some((/** @type {Node} */ n) => n.isConnected)),
  write: (element, op, applied) => {
    const template = document.createElement("template")
    template.innerHTML = op.wanted
    applied.original = [...template.content.childNodes]
    for (const node of applied.original) node.nodeType == 1 && node.setAttribute(INSERTED, "")
    const insert = /** @type {any} */ (element)[op.name] // before, after or append
    insert.call(element, template.content)
  },
  undo: (original) => original.forEach((/** @type {ChildNode} */ node) => node.remove()),
}

/** @type {import("./types.js").ModuleInstall} */
export const installInserts = (runtime) => ((runtime.dom.kinds.i = insertKind), {})
