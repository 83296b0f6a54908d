"""The tag on the critical path (issue 16), in real Chromium:

- layout stability: no layout shift on pages whose changes apply before the first paint (a
  `layout-shift` PerformanceObserver, CLS exactly 0), with the tag alone and with context.js;
- what waits for the first paint and idle time (storage writes, the event queue) loses nothing
  when the visitor leaves first: on a page busy enough to have no idle time, an exposure, its
  sticky assignment and cap count, and a click in the first moment are all kept and sent.
The figures (execution time, first contentful paint against GrowthBook's script) are in
bench/first_paint.py.
"""
import json
import re
import urllib.request

from tests.servers import REPO

from .conftest import PARIS_IP, behind_proxy
from .pageutil import HERO, HERO_PROMO, sampler, seen_texts, visitor_id

CLS = """async () => {
  let cls = 0
  new PerformanceObserver((list) => { for (const e of list.getEntries()) cls += e.value })
    .observe({type: "layout-shift", buffered: true})
  await new Promise((resolve) => setTimeout(resolve, 800))
  return cls
}"""


def test_no_layout_shift_when_changes_apply_before_the_first_paint(page, shop):
    page.add_init_script(sampler(HERO))
    page.goto(shop.url("/?utm_source=newsletter"))
    assert seen_texts(page, HERO) == [HERO_PROMO]
    assert page.evaluate(CLS) == 0


def test_no_layout_shift_with_the_context_script(new_context, geo_server):
    site = geo_server.new_site({"campaigns": [
        {"key": "geo-fr", "type": "personalization", "status": "live", "conditions": {"geo.country": "FR"},
         "variations": [{"key": "on", "actions": [
             {"selector": "#geo-title", "text": "Bonjour, livraison offerte dès 50 EUR partout en France"},
             {"selector": "#geo-sub", "insertAfter": "<p>Un deuxième paragraphe</p>"}]}]}],
        "settings": {"holdout": 0, "consent": "implied", "antiflicker_ms": 400}})
    context = new_context()
    behind_proxy(context, site.server_url, PARIS_IP)
    page = context.new_page()
    page.add_init_script(sampler("#geo-title"))
    page.goto(site.url("/geo-context.html"))
    assert seen_texts(page, "#geo-title") == ["Bonjour, livraison offerte dès 50 EUR partout en France"]
    assert page.evaluate(CLS) == 0


BUSY = {
    "campaigns": [{"key": "busy-ab", "type": "experiment", "status": "live", "pages": {"page.path": "/busy.html"},
                   "cap": {"per_visitor": 3}, "goals": ["add_to_cart"],
                   "variations": [{"key": "a", "actions": [{"selector": "#busy-title", "text": "Title A"}]},
                                  {"key": "b", "actions": [{"selector": "#busy-title", "text": "Title B"}]}]}],
    "goals": {"add_to_cart": {"click": "#buy"}},
    "settings": {"holdout": 0, "consent": "implied", "antiflicker_ms": 400},
}


def test_a_visitor_who_clicks_and_leaves_before_idle_time_loses_nothing(context, store_server):
    site = store_server.new_site(BUSY)
    page = context.new_page()
    page.goto(site.url("/busy.html"))  # it clicks and leaves by itself (e2e/pages/busy.html)
    page.wait_for_url("**/no-tag.html")
    early = json.loads(page.evaluate("sessionStorage.getItem('early')"))
    variation = early["variation"]
    assert early["title"] == f"Title {variation.upper()}"  # applied at once
    assert (early["vtr_v"], early["cookie"]) == (None, "")  # nothing stored before idle time
    stored = json.loads(page.evaluate("localStorage.getItem('vtr_v')"))  # stored at pagehide
    assert stored["k"] == {"busy-ab": {"seed": "busy-ab", "variation": variation}}
    assert stored["x"]["busy-ab"] == {"visitor": 1, "session": 1}
    assert page.evaluate("document.cookie.match(/vtr_id=([^;]+)/)[1]") == \
        page.evaluate("JSON.parse(localStorage.getItem('vtr_id'))")
    results = site.wait_for_results(lambda r: r.visitors("busy-ab", variation) == 1
                                    and r.goal("busy-ab", variation, "add_to_cart")["conversions"] == 1)
    assert results.total_visitors("busy-ab") == 1
    assert results.rejected() == {}


def test_with_the_cookie_cleared_the_stored_visitor_comes_back_from_the_next_page(context, shop):
    """Without its cookie the tag takes the visitor for a new one rather than open the local
    storage before the first paint; its copy of the id there brings the visitor back after."""
    page = context.new_page()
    page.goto(shop.url("/"))
    page.wait_for_function("document.cookie.includes('vtr_id=')")
    vid = visitor_id(page)
    context.clear_cookies()
    page.goto(shop.url("/product.html"))
    assert visitor_id(page) != vid  # this page view
    page.wait_for_function("document.cookie.includes('vtr_id=')")
    assert page.evaluate("JSON.parse(localStorage.getItem('vtr_id'))") == vid
    page.goto(shop.url("/"))
    assert visitor_id(page) == vid


def _every_module_config():
    """The demo shop's config (commerce, goals, recommend) plus a campaign on geo (context), a
    scroll trigger (triggers), a rarer operator (operators), a style change (styles), an insert
    (inserts), an arrival condition (attribution) and an adaptive one (adaptive)."""
    config = json.loads((REPO / "server" / "demo" / "config.json").read_text())
    live = {"type": "personalization", "status": "live"}
    config["campaigns"] += [
        {**live, "key": "fp-geo", "conditions": {"geo.country": "FR", "page.query.x": {"$size": 0}},
         "variations": [{"key": "on", "actions": [{"selector": "#hero h1", "text": "Bonjour",
                                                   "style": {"color": "rgb(1, 2, 3)"}}]}]},
        {**live, "key": "fp-scroll", "trigger": {"scroll": 50}, "conditions": {"referrer.medium": "organic"},
         "variations": [{"key": "on", "actions": [{"selector": "#hero", "append": "<p>Hello</p>"}]}]},
        {"type": "experiment", "status": "live", "key": "fp-adaptive", "allocation": {"mode": "adaptive", "goal": "purchase"},
         "goals": ["purchase"],
         "variations": [{"key": "a", "actions": [{"selector": "#cta", "text": "A"}]},
                        {"key": "b", "actions": [{"selector": "#cta", "text": "B"}]}]},
    ]
    return config


def test_the_tag_throws_nothing_on_a_first_or_later_page_view(vitrina, context):
    """A thrown exception, even one caught, makes V8 capture a stack trace, which on tag.js's
    one long line re-parses the script for its source positions: milliseconds of the first
    view. With Chromium pausing on every exception (DevTools protocol), none comes from tag.js,
    whichever modules it carries, on a first page view and on the next."""
    site = vitrina.new_site(_every_module_config())
    tag = urllib.request.urlopen(f"{site.server_url}/v1/sites/{site.name}/tag.js").read()
    carried = set(re.findall(rb'_module\("(\w+)"', tag))
    assert {b"attribution", b"commerce", b"context", b"goals", b"inserts", b"operators", b"styles", b"triggers",
            b"adaptive", b"recommend"} <= carried
    page = context.new_page()
    devtools = context.new_cdp_session(page)
    thrown, scripts = [], {}

    def paused(event):
        urls = [scripts.get(frame["location"]["scriptId"], "") for frame in event["callFrames"]]
        thrown.append((event.get("data", {}).get("description", "")[:200], any(u.endswith("/tag.js") for u in urls)))
        devtools.send("Debugger.resume")

    devtools.on("Debugger.scriptParsed", lambda script: scripts.__setitem__(script["scriptId"], script["url"]))
    devtools.on("Debugger.paused", paused)
    devtools.send("Debugger.enable")
    devtools.send("Debugger.setPauseOnExceptions", {"state": "all"})
    for path in ("/product.html", "/product.html?x=1"):
        page.goto(site.url(path))
        page.wait_for_function("window.vitrina && vitrina.getVisitorId()")
        page.wait_for_timeout(1200)  # the work after the first paint, and the first send
    assert [description for description, in_tag in thrown if in_tag] == []
