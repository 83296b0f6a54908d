// `npm run build`: the tag's core, its modules, the SDK file (core + every module), the ESM
// build of the evaluator, and dist/manifest.json, which the server reads to assemble tag.js
// (docs/DESIGN.md "Modules").
import { build } from "esbuild"
import { mkdir, writeFile } from "node:fs/promises"
import { fileURLToPath } from "node:url"
import { minify } from "terser"

const here = (path) => fileURLToPath(new URL(path, import.meta.url))
// es2020: `??` and `?.` as written, and no helpers for what every browser of the last years has.
// tsconfigRaw: sdk_js/tsconfig.json is for the type check; its "strict" would make esbuild put a
// "use strict" directive at the top of the core, and so of the whole tag.js it starts.
const common = { bundle: true, target: "es2020", legalComments: "none", logLevel: "info", tsconfigRaw: {} }
// name -> entry: each becomes dist/modules/<name>.min.js
const MODULES = { identity: "src/modules/identity.js", triggers: "src/modules/triggers.js" }

// One script, IIFE, minified by esbuild then by terser: its compressor takes about 300 more
// bytes off the gzipped tag. Safe options only (no `unsafe*`, no pure_getters).
async function script(entry) {
  const bundled = await build({ ...common, entryPoints: [here(entry)], format: "iife", minify: true, platform: "browser", write: false })
  const { code } = await minify(bundled.outputFiles[0].text, { ecma: 2020, compress: true, mangle: true })
  // tag.js joins the core, modules and "\n;vitrina.init(...)": each must end as a complete statement.
  if (!code.endsWith(";")) throw new Error(`the build of ${entry} does not end with ';'`)
  return code
}

async function write(path, code) {
  await writeFile(here("dist/" + path), code)
  console.log(`  sdk_js/dist/${path}  ${(code.length / 1024).toFixed(1)}kb`)
}

await mkdir(here("dist/modules"), { recursive: true })
const [core, ...modules] = await Promise.all([
  // index.js assigns window.vitrina itself: a globalName would overwrite it
  script("src/index.js"),
  ...Object.values(MODULES).map(script),
  build({ ...common, entryPoints: [here("src/esm.js")], outfile: here("dist/vitrina.esm.js"), format: "esm", platform: "neutral" }),
])
const names = Object.keys(MODULES)
await write("core.min.js", core)
for (const [i, name] of names.entries()) await write(`modules/${name}.min.js`, modules[i])
// The SDK file: what tag.js holds for a bundle needing every module, for pages that fetch bundle.json themselves.
await write("vitrina.min.js", [core, ...modules.slice(0, names.length)].join("\n"))
const manifest = {
  core: "core.min.js",
  all: "vitrina.min.js",
  modules: Object.fromEntries(names.map((name) => [name, `modules/${name}.min.js`])),
}
await write("manifest.json", JSON.stringify(manifest, null, 1) + "\n")
