"""The tag a CDN can cache, and the visitor's server-resolved context beside it, in real Chromium
(docs/DESIGN.md "tag.js" and "Server-resolved context"):

- tag.js is byte for byte the same for two visitors with other user agents and addresses, and
  says so in its caching headers; context.js is each visitor's own;
- with context.js before the tag, a geo campaign applies before the first paint (its original
  text is never painted);
- with the tag alone, the tag asks GET /v1/context once: campaigns that read geo wait with only
  their elements hidden, and so does a lower campaign of their group; the others apply at once;
  the final decisions are POST decide's with the whole context; if the context never comes,
  they decide without it and the debug log says so;
- the context is kept for the session (a session cookie): the next page of the session asks nothing.

The server is conftest.geo_server (a test GeoIP database behind one trusted proxy); requests
carry the visitor's address as `X-Forwarded-For`, as the proxy would add it.
"""
import json
import re
import time
from urllib.parse import unquote

from server.qa import wait_for_debug

from .conftest import GEO_PARIS, GEO_TOKYO, PARIS_IP, TOKYO_IP, behind_proxy
from .pageutil import decision_lines, sampler, seen_texts

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/18.1 Mobile/15E148 Safari/604.1")
CONTEXT_DELAY_S = 0.3
ANTIFLICKER_MS = 2000  # long enough for the delayed context on a loaded machine


def _campaign(key, selector, text, priority=0, **extra):
    return {"key": key, "type": "personalization", "status": "live", "priority": priority,
            "pages": {"page.path": {"$in": ["/geo.html", "/geo-context.html"]}},
            "variations": [{"key": "on", "actions": [{"selector": selector, "text": text}]}], **extra}


CONFIG = {
    "campaigns": [
        _campaign("geo-fr", "#geo-title", "Bonjour", priority=10, group="hero", conditions={"geo.country": "FR"}),
        _campaign("hero-default", "#geo-sub", "Delivery everywhere", priority=5, group="hero"),
        _campaign("ios-note", "#plain-note", "On your iPhone", priority=3, conditions={"device.os": "ios"}),
        _campaign("plain", "#to-next", "Read on", priority=1),
    ],
    "settings": {"holdout": 0, "consent": "implied", "antiflicker_ms": ANTIFLICKER_MS},
}
KEYS = [c["key"] for c in CONFIG["campaigns"]]

# Each animation frame: [ms, {selector: text or null while hidden}].
FRAMES = """
(() => {
  const frames = (window.__frames = [])
  const selectors = %s
  const frame = () => {
    const shown = {}
    for (const s of selectors) {
      const el = document.querySelector(s)
      shown[s] = el && getComputedStyle(el).visibility != "hidden" ? el.textContent.trim() : null
    }
    frames.push([performance.now(), shown])
    requestAnimationFrame(frame)
  }
  requestAnimationFrame(frame)
})()
"""


def _visitor(new_context, server, ip, delay=0.0, abort=False, **options):
    """A new visitor behind the proxy, whose /v1/context answers `delay` s late (or never)."""
    context = new_context(**options)
    behind_proxy(context, server.server_url, ip)
    asked = []

    def context_request(route):
        asked.append(route.request.url)
        if abort:
            return route.abort()
        response = route.fetch(headers={**route.request.headers, "x-forwarded-for": ip})
        time.sleep(delay)
        route.fulfill(response=response)

    context.route(f"{server.server_url}/v1/context", context_request)
    return context, asked


def _decide(site, vid, geo, os_name):
    attributes = {"page": {"path": "/geo.html"}, "geo": geo, "device": {"os": os_name}}
    server = site.decide(vid, attributes)
    return {k: (server["variations"].get(k), server["reasons"][k]) for k in KEYS}


def test_tag_js_is_the_same_for_every_visitor_and_context_js_their_own(new_context, geo_server):
    site = geo_server.new_site(CONFIG)
    seen = []
    for ip, ua in ((PARIS_IP, IPHONE), (TOKYO_IP, None)):
        context = new_context(**({"user_agent": ua} if ua else {}))
        behind_proxy(context, site.server_url, ip)
        page = context.new_page()
        responses = {}
        page.on("response", lambda r: r.url.startswith(site.server_url) and responses.setdefault(r.url.rsplit("/", 1)[-1], r))
        page.goto(site.url("/geo-context.html"))
        page.wait_for_function("window.vitrina && vitrina.getVisitorId()")
        tag, script = responses["tag.js"], responses["context.js"]
        seen.append((tag.body(), tag.headers, script.body(), script.headers))
        context.close()
    (tag_a, headers_a, context_a, context_headers), (tag_b, headers_b, context_b, _) = seen
    assert tag_a == tag_b
    assert headers_a["etag"] == headers_b["etag"] and re.fullmatch(r'"[0-9a-f]{32}"', headers_a["etag"])
    assert headers_a["cache-control"] == "public, max-age=60, stale-while-revalidate=600"
    assert headers_a["vary"] == "Accept-Encoding"
    for leak in (PARIS_IP, TOKYO_IP, "Mobile/15E148", "Paris", "Tokyo"):
        assert leak.encode() not in tag_a
    # context.js is each visitor's: geo from the address, os and browser from the user agent.
    assert context_headers["cache-control"] == "private, max-age=300"
    parsed = [json.loads(re.search(rb"\}\)\((.*)\);$", body).group(1)) for body in (context_a, context_b)]
    assert parsed[0] == {"geo": GEO_PARIS, "device": {"os": "ios", "browser": "safari"}}
    assert parsed[1]["geo"] == GEO_TOKYO and parsed[1]["device"]["os"] == "linux"


def test_with_context_js_geo_campaigns_apply_before_the_first_paint(new_context, geo_server):
    site = geo_server.new_site(CONFIG)
    context, asked = _visitor(new_context, geo_server, PARIS_IP, user_agent=IPHONE)
    page = context.new_page()
    page.add_init_script(sampler("#geo-title", "#geo-sub", "#plain-note"))
    log = []
    page.on("console", lambda m: log.append(m.text))
    page.goto(site.url("/geo-context.html?vitrina_debug=1"))
    assert seen_texts(page, "#geo-title") == ["Bonjour"]
    assert seen_texts(page, "#plain-note") == ["On your iPhone"]
    assert seen_texts(page, "#geo-sub") == ["Free delivery from 50 EUR"]  # excluded by geo-fr, never hidden for long
    assert asked == []  # no request for the context: context.js brought it
    vid = page.evaluate("vitrina.getVisitorId()")
    wait_for_debug(page)
    assert decision_lines(log) == _decide(site, vid, GEO_PARIS, "ios")
    assert not any("waiting for context" in line for line in log)


def test_without_context_js_only_geo_campaigns_and_what_they_may_exclude_wait(new_context, geo_server):
    site = geo_server.new_site(CONFIG)
    for ip, geo, fr in ((PARIS_IP, GEO_PARIS, True), (TOKYO_IP, GEO_TOKYO, False)):
        context, asked = _visitor(new_context, geo_server, ip, delay=CONTEXT_DELAY_S, user_agent=IPHONE)
        page = context.new_page()
        page.add_init_script(FRAMES % json.dumps(["#geo-title", "#geo-sub", "#plain-note", "#to-next"]))
        log = []
        page.on("console", lambda m: log.append(m.text))
        page.goto(site.url("/geo.html?vitrina_debug=1"))
        page.wait_for_function("vitrina.getVariation('ios-note') || vitrina.getVariation('hero-default') || "
                               "vitrina.getVariation('geo-fr')")
        page.wait_for_timeout(100)
        frames = page.evaluate("window.__frames")
        assert len(asked) == 1
        painted = [shown for _, shown in frames]
        # Not waiting: decided and applied before the first paint.
        assert all(shown["#to-next"] == "Read on" for shown in painted)
        # Waiting: hidden until the context came, then the decision with it; never the other one.
        title = [shown["#geo-title"] for shown in painted]
        sub = [shown["#geo-sub"] for shown in painted]
        note = [shown["#plain-note"] for shown in painted]
        assert title[0] is None and sub[0] is None and note[0] is None, painted[0]
        shown_title = [t for t in title if t is not None]
        assert set(shown_title) == {"Bonjour" if fr else "Welcome"}
        assert {s for s in sub if s is not None} == {"Free delivery from 50 EUR" if fr else "Delivery everywhere"}
        assert {n for n in note if n is not None} == {"On your iPhone"}
        # The hidden frames span the context's delay, and the elements show within the anti-flicker time.
        first_shown = next(t for (t, shown) in frames if shown["#geo-title"] is not None)
        assert first_shown - frames[0][0] >= CONTEXT_DELAY_S * 1000 * 0.8
        assert first_shown - frames[0][0] < ANTIFLICKER_MS
        vid = page.evaluate("vitrina.getVisitorId()")
        wait_for_debug(page)
        browser = decision_lines(log)
        assert browser == _decide(site, vid, geo, "ios")
        waited = {line.split(" ")[1] for line in log if line.endswith(" null waiting for context")}
        assert waited == {"geo-fr", "hero-default", "ios-note"}  # hero-default: geo-fr's group, lower priority
        context.close()


def test_the_context_is_kept_for_the_session(new_context, geo_server):
    site = geo_server.new_site(CONFIG)
    context, asked = _visitor(new_context, geo_server, PARIS_IP)
    page = context.new_page()
    page.goto(site.url("/geo.html"))
    page.wait_for_function("vitrina.getVariation('geo-fr') === 'on'")
    # A session cookie (no expiry): read with vtr_id at init, where sessionStorage would cost a read of its own.
    page.wait_for_function("document.cookie.includes('vtr_ctx=')")
    kept = next(c for c in context.cookies() if c["name"] == "vtr_ctx")
    assert kept["expires"] == -1 and kept["sameSite"] == "Lax"
    values = [unquote(v) or None for v in kept["value"].split("|")]
    assert values[:5] == list(GEO_PARIS.values()) and values[5:] == ["linux", "chrome"]  # headless Chromium
    page.add_init_script(sampler("#geo-title"))
    page.click("#to-next")
    page.wait_for_url("**/geo.html?next=1")
    assert seen_texts(page, "#geo-title") == ["Bonjour"]  # from the session, before the first paint
    assert len(asked) == 1


def test_without_the_context_waiting_campaigns_decide_without_it_and_say_so(new_context, geo_server):
    site = geo_server.new_site(CONFIG)
    context, asked = _visitor(new_context, geo_server, PARIS_IP, abort=True, user_agent=IPHONE)
    page = context.new_page()
    log = []
    page.on("console", lambda m: log.append(m.text))
    page.goto(site.url("/geo.html?vitrina_debug=1"))
    page.wait_for_function("vitrina.getVariation('hero-default') === 'on'")
    wait_for_debug(page)
    assert asked
    assert any(re.match(r"\[vitrina:context\] request failed: .*: deciding without it", line) for line in log), log
    vid = page.evaluate("vitrina.getVisitorId()")
    assert decision_lines(log) == _decide(site, vid, None, None)
    assert page.locator("#geo-title").text_content() == "Welcome"
    assert "vtr_ctx=" not in page.evaluate("document.cookie")
