// The workspace's behaviours: htmx for partial updates, the action rows of the campaign form,
// completion in the JSON view. Loaded with `defer` under a strict CSP: no inline code, no eval.
import htmx from "htmx.org/dist/htmx.esm.js"

// No <style> injected (CSP), no eval, no script in swapped HTML, no page copies in localStorage.
Object.assign(htmx.config, {
  includeIndicatorStyles: false, allowEval: false, allowScriptTags: false, historyCacheSize: 0,
  selfRequestsOnly: true,
  // A refused save (400: problems by field; 412: someone saved first) is a page to show, not an error.
  responseHandling: [{ code: "204", swap: false }, { code: "[234]..", swap: true }, { code: "...", swap: false, error: true }],
})
window.htmx = htmx

// An action row shows the fields its kind takes: the selector (all but css and redirect),
// the attribute name (attr), and the value under the label its kind gives it.
function syncActionRow(row) {
  const select = row.querySelector(".action-kind")
  if (!select) return
  const option = select.selectedOptions[0]
  const valueLabel = option.dataset.valueLabel
  const field = (suffix) => row.querySelector(`[name$="_${suffix}"]`)?.closest(".field")
  const selector = field("selector")
  if (selector) selector.hidden = option.dataset.selector !== "1" && !field("selector").querySelector("input").value
  const attr = field("attr")
  if (attr) attr.hidden = select.value !== "attr"
  const value = field("value")
  if (value) {
    value.hidden = !valueLabel
    const label = value.querySelector("label")
    if (label && valueLabel) label.textContent = valueLabel
  }
  row.dataset.kind = select.value
}

function syncAll(root) {
  for (const row of root.querySelectorAll(".action-row")) syncActionRow(row)
  for (const input of root.querySelectorAll("input.copy")) input.addEventListener("focus", () => input.select())
  for (const area of root.querySelectorAll("textarea[data-schema]")) completion(area)
}

document.addEventListener("change", (event) => {
  const row = event.target.closest?.(".action-row")
  if (row && event.target.classList.contains("action-kind")) syncActionRow(row)
})
document.addEventListener("DOMContentLoaded", () => syncAll(document))
htmx.onLoad((element) => syncAll(element))

// Completion for the JSON view: the fields the schema allows where the cursor is, with their
// descriptions, as buttons that insert `"name": `.
function pathAt(text, position) {
  const stack = []
  let last = null
  for (let i = 0; i < position; i++) {
    const c = text[i]
    if (c === '"') {
      let j = i + 1
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1
      if (j >= position) return null // inside a string
      last = text.slice(i + 1, j)
      i = j
    } else if (c === "{") stack.push({ object: true, key: null })
    else if (c === "[") stack.push({ object: false, index: 0 })
    else if (c === "}" || c === "]") stack.pop()
    else if (c === ":" && stack.length) stack[stack.length - 1].key = last
    else if (c === "," && stack.length) {
      const top = stack[stack.length - 1]
      if (top.object) top.key = null
      else top.index++
    }
  }
  if (!stack.length || !stack[stack.length - 1].object) return null
  return stack.slice(0, -1).map((s) => (s.object ? s.key : s.index))
}

function resolve(schema, node) {
  for (let n = 0; node && node.$ref && n < 20; n++) {
    node = node.$ref.replace(/^#\//, "").split("/").reduce((at, part) => at?.[part], schema)
  }
  const branches = node?.oneOf || node?.anyOf
  if (branches) return resolve(schema, branches.find((b) => resolve(schema, b)?.properties) || branches[0])
  return node
}

function nodeAt(schema, path) {
  let node = resolve(schema, schema)
  for (const part of path) {
    if (!node) return null
    if (typeof part === "number") node = resolve(schema, node.items)
    else node = resolve(schema, node.properties?.[part] ?? node.additionalProperties)
  }
  return node
}

function completion(area) {
  if (area.dataset.completionReady) return
  area.dataset.completionReady = "1"
  const panel = document.getElementById(area.dataset.completion)
  let schema = null
  fetch(area.dataset.schema, { credentials: "same-origin" }).then((r) => r.json()).then((s) => { schema = s; show() })
  const show = () => {
    if (!schema || !panel) return
    const path = pathAt(area.value, area.selectionStart)
    const node = path && nodeAt(schema, path)
    panel.replaceChildren()
    const title = document.createElement("h2")
    title.textContent = path ? `Fields at /${path.join("/")}` : "Fields"
    panel.append(title)
    if (!node?.properties) {
      const p = document.createElement("p")
      p.textContent = node?.description || "Put the cursor inside an object to see its fields."
      panel.append(p)
      return
    }
    const list = document.createElement("ul")
    for (const [name, property] of Object.entries(node.properties)) {
      const item = document.createElement("li")
      const button = document.createElement("button")
      button.type = "button"
      button.className = "secondary small"
      button.textContent = name
      button.addEventListener("click", () => {
        const at = area.selectionStart
        area.setRangeText(`"${name}": `, at, area.selectionEnd, "end")
        area.focus()
        show()
      })
      const about = document.createElement("span")
      about.textContent = " " + (resolve(schema, property)?.description || property.description || "")
      item.append(button, about)
      list.append(item)
    }
    panel.append(list)
  }
  area.addEventListener("keyup", show)
  area.addEventListener("click", show)
}
