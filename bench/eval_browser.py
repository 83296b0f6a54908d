"""eval_browser: one full page decision over 200 campaigns in headless Chromium, Vitrina's
`decide` (sdk_js/dist/vitrina.esm.js) against the same targeting done by GrowthBook's browser
SDK (@growthbook/growthbook), both in the same page. What each side does is written at the
top of bench/eval_browser.js. Targets: Vitrina <= 0.5x GrowthBook, and < 1 ms per decision."""
import json
import subprocess
from pathlib import Path

from . import workload
from .common import REPO, Row, log

HERE = Path(__file__).resolve().parent
ESBUILD = REPO / "node_modules" / ".bin" / "esbuild"
GROWTHBOOK = REPO / "node_modules" / "@growthbook" / "growthbook" / "dist" / "bundles" / "index.min.js"
CHROMIUM = "/usr/bin/chromium"
OPTS = {"perBlock": 50, "rounds": 200, "warmupMs": 2000, "maxMs": 12000}


def vitrina_iife():
    """The shipped ESM evaluator, bundled for a classic <script> as global VitrinaEval."""
    return subprocess.run([str(ESBUILD), str(REPO / "sdk_js" / "dist" / "vitrina.esm.js"), "--bundle", "--minify",
                           "--format=iife", "--global-name=VitrinaEval", "--target=es2018", "--log-level=warning"],
                          check=True, capture_output=True, text=True).stdout


def run():
    from playwright.sync_api import sync_playwright
    data = workload.load()
    page_data = {k: data[k] for k in ("bundle", "profiles", "growthbook_features")}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-background-networking",
                                          "--disable-component-update"])
        try:
            page = browser.new_page()
            page.set_content("<!doctype html><html><head><title>eval bench</title></head><body></body></html>")
            page.add_script_tag(content=vitrina_iife())
            page.add_script_tag(content=GROWTHBOOK.read_text())
            page.add_script_tag(content=(HERE / "eval_browser.js").read_text())
            # A long evaluate: allow it well past the in-page time bound.
            page.set_default_timeout(120_000)
            r = page.evaluate("([w, o]) => window.runBench(w, o)", [page_data, OPTS])
            version = browser.version
        finally:
            browser.close()
    if r["agree"] != r["profiles"]:
        raise RuntimeError(f"the two engines target differently on {r['profiles'] - r['agree']} profiles, "
                           f"e.g. {json.dumps(r['disagreements'][:1])}: the comparison would not be fair")
    log(f"Chromium {version}; {r['rounds']} interleaved blocks of {r['perBlock']} decisions per engine; "
        f"both engines target identically on {r['agree']}/{r['profiles']} profiles; "
        f"{r['meanVariations']:.1f} variations applied per page on average")
    v, g = r["vitrinaMs"], r["growthbookMs"]
    return [
        Row("eval_browser", "decide, 200 campaigns (median/decision)", v, "ms", g, "GrowthBook",
            "ratio <= 0.5×", v / g <= 0.5),
        Row("eval_browser", "decide, 200 campaigns (absolute)", v, "ms", None, "", "< 1 ms", v < 1.0),
    ]
