// `npm run build`: the tag (IIFE, defines window.vitrina) and the ESM build of the evaluator.
import { build } from "esbuild"
import { writeFile } from "node:fs/promises"
import { fileURLToPath } from "node:url"
import { minify } from "terser"

const here = (p) => fileURLToPath(new URL(p, import.meta.url))
// es2020: `??` and `?.` as written, and no helpers for what every browser of the last years has.
const common = { bundle: true, target: "es2020", legalComments: "none", logLevel: "info" }

const [tag] = await Promise.all([
  build({
    ...common,
    entryPoints: [here("src/index.js")],
    format: "iife", // index.js assigns window.vitrina itself: a globalName would overwrite it
    minify: true,
    platform: "browser",
    write: false,
  }),
  build({
    ...common,
    entryPoints: [here("src/esm.js")],
    outfile: here("dist/vitrina.esm.js"),
    format: "esm",
    platform: "neutral",
  }),
])
// terser after esbuild: its compressor takes about 300 more bytes off the gzipped tag (the
// size-limit budget is 8 kB). Safe options only (no `unsafe*`, no pure_getters).
const { code } = await minify(tag.outputFiles[0].text, { ecma: 2020, compress: true, mangle: true })
// tag.js appends "\n;vitrina.init(...)": the build must end as a complete statement.
if (!code.endsWith(";")) throw new Error("the tag's build does not end with ';'")
await writeFile(here("dist/vitrina.min.js"), code)
console.log(`  sdk_js/dist/vitrina.min.js  ${(code.length / 1024).toFixed(1)}kb (esbuild + terser)`)
