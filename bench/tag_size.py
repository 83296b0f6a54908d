"""tag_size: `gzip -9` size of what tag.js is assembled from (sdk_js/dist, rebuilt by setup.sh):
the core, each module (those tag.js carries when the bundle needs them, and the debug log's and
the preview's, which the core fetches), and the SDK file (the core and every module tag.js may
carry but those sdk_js/build.mjs NOT_IN_SDK_FILE leaves out), against GrowthBook's browser bundle (node_modules/@growthbook/
growthbook/dist/bundles/index.min.js, the IIFE a site loads with a <script> tag). Target: the
core <= 8 KB (8,000 B, size-limit's unit; issue 9: a site that uses no module gets the core
alone), which is <= 0.52x GrowthBook's 15.5 KB; the modules and the SDK file are reported (each
has its own size-limit entry in package.json)."""
import json
import subprocess

from .common import REPO, Row, log

DIST = REPO / "sdk_js" / "dist"
GROWTHBOOK = REPO / "node_modules" / "@growthbook" / "growthbook" / "dist" / "bundles" / "index.min.js"
LIMIT = 8000


def gzip9(path):
    return len(subprocess.run(["gzip", "-9", "-n", "-c", str(path)], check=True, capture_output=True).stdout)


def run():
    manifest = json.loads((DIST / "manifest.json").read_text())
    core, full, g = gzip9(DIST / manifest["core"]), gzip9(DIST / manifest["all"]), gzip9(GROWTHBOOK)
    log(f"raw: core {(DIST / manifest['core']).stat().st_size:,} B, SDK file {(DIST / manifest['all']).stat().st_size:,} B,"
        f" growthbook index.min.js {GROWTHBOOK.stat().st_size:,} B")
    rows = [Row("tag_size", "core, gzip -9", core, "B", g, "GrowthBook IIFE", f"<= {LIMIT:,} B", core <= LIMIT)]
    for name, path in sorted(manifest["modules"].items()):
        rows.append(Row("tag_size", f"module {name}, gzip -9", gzip9(DIST / path), "B"))
    for name, path in sorted(manifest.get("lazy", {}).items()):
        rows.append(Row("tag_size", f"module {name} (fetched by the core), gzip -9", gzip9(DIST / path), "B"))
    rows.append(Row("tag_size", "SDK file (core + every module tag.js may carry but NOT_IN_SDK_FILE), gzip -9", full, "B", g,
                    "GrowthBook IIFE"))
    return rows
