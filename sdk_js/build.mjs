// `npm run build`: the tag (IIFE, defines window.vitrina) and the ESM build of the evaluator.
import { build } from "esbuild"
import { fileURLToPath } from "node:url"

const here = (p) => fileURLToPath(new URL(p, import.meta.url))
const common = { bundle: true, target: "es2020", legalComments: "none", logLevel: "info" }

await Promise.all([
  build({
    ...common,
    entryPoints: [here("src/index.js")],
    outfile: here("dist/vitrina.min.js"),
    format: "iife", // index.js assigns window.vitrina itself: a globalName would overwrite it
    minify: true,
    // tag.js appends "\n;vitrina.init(...)": the build must end as a complete statement.
    platform: "browser",
  }),
  build({
    ...common,
    entryPoints: [here("src/esm.js")],
    outfile: here("dist/vitrina.esm.js"),
    format: "esm",
    platform: "neutral",
  }),
])
