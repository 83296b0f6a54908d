// The results charts (Observable Plot: SVG, no canvas). Each chart's container already carries
// role="img" and a name that says what the chart shows; the data is the page's JSON block.
import * as Plot from "@observablehq/plot"

const COLORS = ["#1f5fa8", "#c2410c", "#15803d", "#7e22ce", "#a16207", "#0f766e", "#be123c", "#4b5563"]

function color(names) {
  return { type: "ordinal", domain: names, range: COLORS.slice(0, Math.max(1, names.length)) }
}

// Plot adds a <style> element to each chart: a strict CSP refuses it, so it goes before the
// chart is attached (app.css holds the same rules).
function attach(container, node) {
  for (const style of node.querySelectorAll("style")) style.remove()
  node.setAttribute("aria-hidden", "true")
  container.replaceChildren(node)
}

function legend(container, names) {
  const list = document.createElement("ul")
  list.className = "legend"
  list.setAttribute("aria-hidden", "true") // the container's name already lists the variations
  names.forEach((name, i) => {
    const item = document.createElement("li")
    const swatch = document.createElement("span")
    swatch.className = "swatch"
    swatch.style.background = COLORS[i % COLORS.length] // CSSOM: allowed under style-src 'self'
    item.append(swatch, name)
    list.append(item)
  })
  container.after(list)
}

function rates(container, rows) {
  const names = rows.map((r) => r.variation)
  rows = rows.map((r) => ({ ...r, rate: r.rate * 100, low: r.low * 100, high: r.high * 100 }))
  attach(container, Plot.plot({
    width: Math.max(320, container.clientWidth || 640), height: 60 + 36 * rows.length, marginLeft: 110, marginRight: 20,
    x: { label: "Conversion rate (%)", grid: true, domain: [0, Math.max(1, ...rows.map((r) => r.high))] },
    y: { label: null, domain: names }, color: color(names),
    marks: [
      Plot.ruleY(rows, { y: "variation", x1: "low", x2: "high", stroke: "variation", strokeWidth: 3 }),
      Plot.dot(rows, { y: "variation", x: "rate", r: 5, fill: "variation" }),
      Plot.ruleX([0]),
    ],
  }))
}

function daily(container, rows, goal, order) {
  const seen = new Set(rows.map((r) => r.variation))
  const names = [...order, ...[...seen].filter((n) => !order.includes(n))]  // the rate chart's colours
  const long = rows.flatMap((r) => [
    { day: new Date(r.day + "T00:00:00"), variation: r.variation, metric: "Visitors", value: r.visitors },
    { day: new Date(r.day + "T00:00:00"), variation: r.variation, metric: `Conversions (${goal || "no goal"})`, value: r.conversions },
  ])
  attach(container, Plot.plot({
    width: Math.max(320, container.clientWidth || 640), height: 360, marginLeft: 50, marginRight: 110,
    x: { label: null, type: "utc" }, y: { label: null, grid: true }, fy: { label: null }, color: color(names),
    marks: [Plot.lineY(long, { x: "day", y: "value", fy: "metric", stroke: "variation", marker: "dot" }), Plot.ruleY([0])],
  }))
  legend(container, names)
}

function draw() {
  const block = document.getElementById("chart-data")
  if (!block) return
  const data = JSON.parse(block.textContent)
  for (const container of document.querySelectorAll(".chart[data-chart]")) {
    if (container.dataset.chart === "rates") {
      rates(container, data.rates[container.dataset.goal] || [])
      legend(container, (data.rates[container.dataset.goal] || []).map((r) => r.variation))
    } else if (container.dataset.chart === "daily") {
      daily(container, data.daily, data.goal, (data.rates[data.goal] || []).map((r) => r.variation))
    }
    container.dataset.drawn = "1"
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw)
else draw()
