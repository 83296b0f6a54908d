// `npm run build` (after the SDK): the workspace's assets, bundled by esbuild into static/ with a
// content hash in every name, and static/manifest.json mapping source names to built ones.
import { build } from "esbuild"
import { mkdir, readdir, rm, writeFile } from "node:fs/promises"
import { basename } from "node:path"
import { fileURLToPath } from "node:url"

const here = (p) => fileURLToPath(new URL(p, import.meta.url))
const out = here("static/")
await mkdir(out, { recursive: true })
for (const name of await readdir(out)) await rm(out + name, { recursive: true })

const result = await build({
  entryPoints: [here("assets/app.js"), here("assets/charts.js"), here("assets/app.css")],
  outdir: out, entryNames: "[name]-[hash]", bundle: true, minify: true, format: "iife", target: "es2020",
  platform: "browser", legalComments: "none", metafile: true, logLevel: "info",
})
const manifest = {}
for (const [file, info] of Object.entries(result.metafile.outputs)) {
  if (info.entryPoint) manifest[basename(info.entryPoint)] = basename(file)
}
await writeFile(out + "manifest.json", JSON.stringify(manifest, null, 2) + "\n")
