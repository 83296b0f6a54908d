"""tag_size: `gzip -9` size of the tag (sdk_js/dist/vitrina.min.js, rebuilt by setup.sh) against
GrowthBook's browser bundle (node_modules/@growthbook/growthbook/dist/bundles/index.min.js, the
IIFE a site loads with a <script> tag). Targets: <= 8 KB (8,000 B, size-limit's unit, as in
package.json) and far below GrowthBook's 15.5 KB: ratio <= 0.52 (8 / 15.5)."""
import subprocess

from .common import REPO, Row, log

VITRINA = REPO / "sdk_js" / "dist" / "vitrina.min.js"
GROWTHBOOK = REPO / "node_modules" / "@growthbook" / "growthbook" / "dist" / "bundles" / "index.min.js"
LIMIT = 8000


def gzip9(path):
    return len(subprocess.run(["gzip", "-9", "-n", "-c", str(path)], check=True, capture_output=True).stdout)


def run():
    v, g = gzip9(VITRINA), gzip9(GROWTHBOOK)
    log(f"raw: vitrina.min.js {VITRINA.stat().st_size:,} B, growthbook index.min.js {GROWTHBOOK.stat().st_size:,} B")
    return [Row("tag_size", "tag, gzip -9", v, "B", g, "GrowthBook IIFE", f"<= {LIMIT:,} B, ratio <= 0.52×",
                v <= LIMIT and v / g <= 0.52)]
