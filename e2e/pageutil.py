"""What the e2e tests share: the demo pages' texts and an in-page sampler of what was painted."""
import json
from pathlib import Path

PAGES = Path(__file__).resolve().parent / "pages"
CONFIG = json.loads((PAGES / "config.json").read_text())  # the e2e sites' config

HERO = "#hero h1"
HERO_ORIGINAL = "Welcome to the demo shop"
HERO_PROMO = "10% off for our subscribers"
RECO_ORIGINAL = "You may also like"
RECO_PERSONALIZED = "Bestsellers picked for you"

# Records, for each selector, every distinct text the element showed at an animation frame
# while it was visible (a frame is where the browser paints, so this is what the visitor
# could have seen), and when each text first appeared in the DOM at all.
SAMPLER = """
(() => {
  const selectors = %s;
  const seen = (window.__seen = {});
  const textAt = (window.__textAt = {});
  for (const s of selectors) (seen[s] = []), (textAt[s] = {});
  window.__frames = 0;
  const visible = (el) =>
    getComputedStyle(el).visibility !== "hidden" &&
    el.checkVisibility({opacityProperty: true, visibilityProperty: true, contentVisibilityAuto: true});
  const frame = () => {
    window.__frames++;
    for (const s of selectors) {
      const el = document.querySelector(s);
      if (el && visible(el)) {
        const list = seen[s], text = el.textContent.trim();
        if (list[list.length - 1] !== text) list.push(text);
      }
    }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  new MutationObserver(() => {
    for (const s of selectors) {
      const el = document.querySelector(s);
      if (el) {
        const text = el.textContent.trim();
        if (!(text in textAt[s])) textAt[s][text] = performance.now();
      }
    }
  }).observe(document, {childList: true, subtree: true, characterData: true});
})();
"""


def sampler(*selectors):
    return SAMPLER % json.dumps(selectors)


def seen_texts(page, selector, frames=10):
    """Texts the element showed while visible, after at least `frames` more painted frames."""
    start = page.evaluate("window.__frames")
    page.wait_for_function(f"window.__frames >= {start + frames}")
    return page.evaluate("(s) => window.__seen[s]", selector)


def decision_lines(lines):
    """{campaign: (variation, reason)} from the last `[vitrina]` debug line of each (?vitrina_debug=1)."""
    out = {}
    for line in lines:
        if line.startswith("[vitrina] "):
            _, key, variation, reason = line.split(" ", 3)
            out[key] = (None if variation == "null" else variation, reason)
    return out


def visitor_id(page):
    return page.evaluate("vitrina.getVisitorId()")


def pick_visitors(site, attributes, outcome, wanted, each=1, prefix="e2e-engine"):
    """`each` visitor ids per wanted outcome(decide(...)), whatever way the buckets fall;
    deterministic (the same ids are tried in the same order)."""
    found = {w: [] for w in wanted}
    for i in range(2000):
        vid = f"{prefix}-{i:04d}"
        got = outcome(site.decide(vid, attributes))
        if got in found and len(found[got]) < each:
            found[got].append(vid)
        if all(len(ids) == each for ids in found.values()):
            return found
    raise AssertionError(f"no {each} visitors for each of {wanted} in 2000 ids: {found}")
