// Variation actions on the page (ARCHITECTURE.md "Actions"): applied to matching elements
// now and whenever the DOM changes, and taken back when a campaign stops applying.
// Every write is guarded by a read, so our own mutations settle after one quiet pass, and a
// framework re-rendering the same content every frame gets one write back per render: the
// variation is what each frame paints. Merchant HTML is parsed by <template>, whose scripts
// never run; nothing is ever evaluated.

const MARK = "data-vtr" // applied: the anti-flicker rule lets the element show
const OURS = "data-vtr-i" // inserted by us: never the anchor of another insertion
// Writes per element and op before the page wins until the next task. A page that re-renders
// every frame costs one write a frame; one that reverts us from its own MutationObserver would
// otherwise answer us forever between two frames (microtasks never yield to rendering).
const FIGHT = 5

// An op is one property of one action: {s: selector, k: kind, n: name, w: wanted value}.
// Kinds: p element property (textContent, innerHTML), a attribute, c class, s style
// property, r remove, i insert.
const read = (el, o, r) =>
  o.k == "p"
    ? el[o.n]
    : o.k == "a"
        ? el.getAttribute(o.n)
        : o.k == "c"
          ? el.classList.contains(o.n)
          : o.k == "s"
            ? el.style.getPropertyValue(o.n) + "\n" + el.style.getPropertyPriority(o.n)
            : o.k == "r"
              ? !el.isConnected
              : !!r && !(r.o.length && !r.o.some((x) => x.isConnected)) // our nodes still there

const write = (el, o, v) => {
  const n = o.n
  if (o.k == "p") el[n] = v
  else if (o.k == "a") v == null ? el.removeAttribute(n) : el.setAttribute(n, v)
  else if (o.k == "c") el.classList.toggle(n, v)
  // "value\npriority": serialised values hold no newline; a revert leaving no declaration
  // leaves no empty style="" either
  else if (o.k == "s") el.style.setProperty(n, ...v.split("\n")), el.style.length || el.removeAttribute("style")
}

// A removed element stays removed: the page (or the next page view) brings it back.
const undo = (el, o, x) =>
  o.k == "p"
    ? (el.textContent = "") || el.append(...x) // the original nodes, listeners and all
    : o.k == "i"
      ? x.forEach((n) => n.remove())
      : write(el, o, x)

export function createDom(doc, nonce) {
  const S = new WeakMap() // element -> {op id: {o: original, v: what we left, n, t}}
  const live = {} // campaign -> {a: actions, o: ops, e: elements touched}
  let ops = []
  let mo
  let sheet
  let turn = 0 // tasks since the first write: fights are counted per task
  let tick

  const style = (text) => {
    const s = doc.createElement("style")
    if (nonce) s.nonce = nonce
    s.textContent = text
    return doc.head.appendChild(s) // a script in <head> (or before it) means there is one
  }
  const tpl = (html) => {
    const t = doc.createElement("template")
    t.innerHTML = html
    return t
  }
  // While the parser is still inside el, appending would land before its remaining children.
  const done = (el) => {
    for (let n = el; n; n = n.parentNode) if (n.nextSibling) return 1
    return doc.readyState != "loading"
  }

  function compile(c, actions) {
    const out = []
    const add = (s, k, n, w) => out.push({ s, k, n, w, c, id: c + " " + out.length })
    for (const a of actions) {
      const s = a.selector
      if (!s) continue
      if (a.text != null) add(s, "p", "textContent", "" + a.text)
      // As the browser serialises it back, so markup it normalises still reads as applied.
      if (a.html != null) add(s, "p", "innerHTML", tpl(a.html).innerHTML)
      for (const n in a.attr) add(s, "a", n, a.attr[n] == null || a.attr[n] === false ? null : "" + a.attr[n])
      for (const [x, on] of [
        [a.addClass, true],
        [a.removeClass, false],
      ])
        for (const n of ("" + (x || "")).split(/[ ,]/)) n && add(s, "c", n, on) // "a b" or ["a", "b"]
      // The browser parses the declarations (shorthands, !important, url(...;...)) for us;
      // an object sets properties by name ({fontSize: "2em"}), without !important.
      const p = doc.createElement("p").style
      typeof a.style == "object" ? Object.assign(p, a.style) : (p.cssText = a.style || "")
      if (a.hide) p.setProperty("display", "none", "important")
      for (const n of p) add(s, "s", n, p.getPropertyValue(n) + "\n" + p.getPropertyPriority(n))
      if (a.remove) add(s, "r", 0, true)
      for (const [n, h] of [
        ["before", a.insertBefore],
        ["after", a.insertAfter],
        ["append", a.append],
      ])
        if (h != null) add(s, "i", n, h)
    }
    return out
  }

  // 1 when el is in the op's state (now or already), 0 when it has to wait.
  function apply(o, el) {
    if (o.k == "i") {
      if (el.closest("[" + OURS + "]")) return 1
      if (o.n == "append" && !done(el)) return 0
    }
    let m = S.get(el)
    if (!m) S.set(el, (m = {}))
    let r = m[o.id]
    const cur = read(el, o, r)
    if (cur === o.w || (r && cur === r.v)) return 1
    if (!r) {
      r = m[o.id] = { o: o.k == "p" ? [...el.childNodes] : cur }
      live[o.c].e.add(el)
    }
    if (r.t != turn) (r.t = turn), (r.n = 0)
    if (++r.n > FIGHT) return 1
    tick = tick || setTimeout(() => (tick = 0) || turn++)
    if (o.k == "r") el.remove()
    else if (o.k == "i") {
      const f = tpl(o.w).content
      r.o = [...f.childNodes]
      for (const x of r.o) x.nodeType == 1 && x.setAttribute(OURS, "")
      el[o.n](f)
    } else write(el, o, o.w)
    r.v = read(el, o, r)
    return 1
  }

  // An element shows (anti-flicker) once every op on it is applied.
  function pass() {
    const found = {}
    const done = new Set()
    const wait = new Set()
    for (const o of ops) {
      let els = found[o.s]
      if (!els)
        try {
          els = found[o.s] = doc.querySelectorAll(o.s)
        } catch (e) {
          els = found[o.s] = [] // an invalid selector matches nothing
        }
      for (const el of els) {
        let ok = 1
        try {
          ok = apply(o, el)
        } catch (e) {} // what the browser refuses (inserting beside <html>) is skipped, not fatal
        ;(ok ? done : wait).add(el)
      }
    }
    for (const el of done) wait.has(el) || el.toggleAttribute(MARK, true) // no mutation when already there
  }

  function revert(k) {
    const c = live[k]
    delete live[k]
    for (const el of c.e) {
      const m = S.get(el)
      for (let i = c.o.length; i--; ) {
        const o = c.o[i]
        if (m[o.id]) undo(el, o, m[o.id].o)
        delete m[o.id]
      }
    }
  }

  // map: {campaign: actions} of every variation that applies now; hide: anti-flicker ms.
  function sync(map, hide) {
    for (const k in live) if (live[k].a !== map[k]) revert(k)
    for (const k in map) live[k] = live[k] || { a: map[k], o: compile(k, map[k]), e: new Set() }
    const all = Object.values(live)
    ops = all.flatMap((c) => c.o)
    for (const c of all) for (const el of c.e) el.isConnected || c.e.delete(el) // thrown away by an SPA (or removed by us)
    const css = all.map((c) => c.a.map((a) => a.css || "").join("\n")).join("\n")
    if (sheet || css.trim()) (sheet = sheet || style("")).textContent == css || (sheet.textContent = css)
    if (hide && ops.length) {
      const h = style(":is(" + ops.map((o) => o.s) + "):not([" + MARK + "]){visibility:hidden!important}")
      setTimeout(() => h.remove(), hide)
    }
    if (!mo && ops.length)
      (mo = new MutationObserver(pass)).observe(doc.documentElement, { childList: true, subtree: true, attributes: true, characterData: true })
    pass()
  }

  return { sync, style }
}
