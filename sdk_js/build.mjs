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
const MODULES = {
  adaptive: "src/modules/adaptive.js",
  attribution: "src/modules/attribution.js",
  commerce: "src/modules/commerce.js",
  context: "src/modules/context.js",
  goals: "src/modules/goals.js",
  identity: "src/modules/identity.js",
  inserts: "src/modules/inserts.js",
  operators: "src/modules/operators.js",
  predict: "src/modules/predict.js",
  recommend: "src/modules/recommend.js",
  redirect: "src/modules/redirect.js",
  slices: "src/modules/slices.js",
  styles: "src/modules/styles.js",
  triggers: "src/modules/triggers.js",
}
// Modules the SDK file leaves out: a page that inits itself and needs one adds its script,
// /sdk/modules/<name>.min.js, before calling init. Identity: a signed-in customer's token comes
// from the shop's own page anyway, and the SDK file stays within its budget without it; commerce
// and recommend: a shop's recommending pages add them (4.7 KB the other pages never need).
// Adaptive and predict: few sites run adaptive campaigns or target predict.<goal>; the SDK file
// stays within its budget without them too. Slices: what a page's exposures claim for results'
// breakdown and the internal mark; 0.86 KB the SDK file's budget has no room for, and a page that
// inits itself is the one place a merchant may leave results' breakdown out of.
const NOT_IN_SDK_FILE = ["adaptive", "commerce", "identity", "predict", "recommend", "slices"]
// name -> entry: modules the core fetches itself when needed (never in tag.js nor the SDK file),
// from /sdk/modules/<name>.min.js
const LAZY_MODULES = { debug: "src/modules/debug.js", preview: "src/modules/preview.js" }

// One script, IIFE, minified by esbuild then by terser: its compressor takes about 300 more
// bytes off the gzipped tag. Safe options only (no `unsafe*`, no pure_getters); three passes take
// a few more.
// VITRINA_CORE: the tag's scripts leave out what only the ESM build's callers hear (condition.js REASONS).
// `PROFILE=1 npm run build` keeps the names (no minifying): for a browser profiler, never to ship.
const keepNames = !!process.env.PROFILE
async function script(entry) {
  const bundled = await build({
    ...common,
    entryPoints: [here(entry)],
    format: "iife",
    minify: !keepNames,
    platform: "browser",
    write: false,
    define: { "globalThis.VITRINA_CORE": "true" },
  })
  const { code } = await minify(bundled.outputFiles[0].text, { ecma: 2020, compress: !keepNames && { passes: 3 }, mangle: !keepNames })
  // tag.js joins the core, modules and "\n;vitrina.init(...)": each must end as a complete statement.
  if (!code.endsWith(";")) throw new Error(`the build of ${entry} does not end with ';'`)
  return code
}

async function write(path, code) {
  await writeFile(here("dist/" + path), code)
  console.log(`  sdk_js/dist/${path}  ${(code.length / 1024).toFixed(1)}kb`)
}

await mkdir(here("dist/modules"), { recursive: true })
const names = Object.keys(MODULES)
const lazyNames = Object.keys(LAZY_MODULES)
const [core, ...modules] = await Promise.all([
  // index.js assigns window.vitrina itself: a globalName would overwrite it
  script("src/index.js"),
  ...[...Object.values(MODULES), ...Object.values(LAZY_MODULES)].map(script),
  build({ ...common, entryPoints: [here("src/esm.js")], outfile: here("dist/vitrina.esm.js"), format: "esm", platform: "neutral" }),
])
await write("core.min.js", core)
for (const [i, name] of [...names, ...lazyNames].entries()) await write(`modules/${name}.min.js`, modules[i])
// The SDK file: what tag.js holds for a bundle needing every module (but NOT_IN_SDK_FILE), for pages
// that fetch bundle.json themselves; first V8's compile hint, as tag.js has it
// (server/delivery/serving.py COMPILE_HINT).
const inSdkFile = modules.slice(0, names.length).filter((_, i) => !NOT_IN_SDK_FILE.includes(names[i]))
await write("vitrina.min.js", "//# allFunctionsCalledOnLoad\n" + [core, ...inSdkFile].join("\n"))
const manifest = {
  core: "core.min.js",
  all: "vitrina.min.js",
  modules: Object.fromEntries(names.map((name) => [name, `modules/${name}.min.js`])),
  lazy: Object.fromEntries(lazyNames.map((name) => [name, `modules/${name}.min.js`])),
}
await write("manifest.json", JSON.stringify(manifest, null, 1) + "\n")
