"""The walking skeleton in real Chromium: tag.js on a shop of another origin decides in the
browser, swaps content before it is painted, and what the visitor saw and did reaches results.

Pages and config: e2e/pages/. Fixtures: e2e/conftest.py. Tests that count visitors use a
`fresh_site`; the others share site 'shop'.
"""
import re
import time

from playwright.sync_api import expect

from .pageutil import (
    HERO,
    HERO_ORIGINAL,
    HERO_PROMO,
    RECO_ORIGINAL,
    RECO_PERSONALIZED,
    sampler,
    seen_texts,
    visitor_id,
)


def test_newsletter_visitor_sees_the_variation_and_never_the_original(page, shop):
    page.add_init_script(sampler(HERO))
    # $ini: UTM values arrive in any case.
    page.goto(shop.url("/?utm_source=Newsletter&utm_medium=email"))

    expect(page.locator(HERO)).to_have_text(HERO_PROMO)
    expect(page.locator("#hero")).to_have_class(re.compile(r"\bpromo\b"))
    expect(page.locator(".cta")).to_have_attribute("href", "/product.html?promo=newsletter")
    expect(page.locator("#hero")).to_have_css("background-color", "rgb(255, 229, 138)")
    assert page.evaluate("vitrina.getVariation('hero-newsletter')") == "promo"
    assert seen_texts(page, HERO) == [HERO_PROMO]


def test_other_visitor_sees_the_original(page, shop):
    page.add_init_script(sampler(HERO))
    page.goto(shop.url("/?utm_source=google"))

    expect(page.locator(HERO)).to_have_text(HERO_ORIGINAL)
    expect(page.locator(HERO)).to_be_visible()
    expect(page.locator("#hero")).not_to_have_class(re.compile(r"\bpromo\b"))
    expect(page.locator(".cta")).to_have_attribute("href", "/product.html")
    assert page.evaluate("vitrina.getVariation('hero-newsletter')") is None
    assert seen_texts(page, HERO) == [HERO_ORIGINAL]


def test_results_count_the_newsletter_visitor_once_and_only_on_promo(context, new_context, fresh_site):
    first = context.new_page()
    first.goto(fresh_site.url("/?utm_source=newsletter"))
    expect(first.locator(HERO)).to_have_text(HERO_PROMO)
    first_id = visitor_id(first)
    first.locator("#to-product").click()
    first.wait_for_url("**/product.html")
    expect(first.locator("button.add-to-cart")).to_be_visible()
    # Back home without the UTM: the landing UTM holds for the session, the visitor is counted once.
    first.goto(fresh_site.url("/"))
    expect(first.locator(HERO)).to_have_text(HERO_PROMO)
    first.goto("about:blank")

    second = new_context().new_page()
    second.goto(fresh_site.url("/"))
    expect(second.locator(HERO)).to_have_text(HERO_ORIGINAL)
    assert visitor_id(second) != first_id  # a fresh browser context is a new visitor
    second.goto("about:blank")

    # home-note runs for every visitor of the home page: once it has both, both visitors' events are in.
    fresh_site.wait_for_results(lambda r: r.total_visitors("home-note") >= 2
                                and r.total_visitors("hero-newsletter") >= 1)
    time.sleep(0.3)  # anything arriving late (a double count) would land now
    results = fresh_site.results()
    assert results.visitors("hero-newsletter", "promo") == 1
    assert results.visitors("hero-newsletter", None) == 0
    assert results.total_visitors("hero-newsletter") == 1
    assert results.total_visitors("home-note") == 2
    assert results.rejected() == {}


def test_visitor_id_is_stable_across_pages_and_tabs(context, shop):
    page = context.new_page()
    page.goto(shop.url("/?utm_source=newsletter"))
    expect(page.locator(HERO)).to_have_text(HERO_PROMO)
    vid = visitor_id(page)
    assert re.fullmatch(r"[A-Za-z0-9_.-]{8,64}", vid)

    page.goto(shop.url("/product.html"))
    expect(page.locator("h1")).to_have_text("Bestseller mug")
    assert visitor_id(page) == vid
    variation = page.evaluate("vitrina.getVariation('cta-wording')")
    assert variation in ("control", "urgent")

    # The first-party cookie carries it, so a second tab is the same visitor in the same variation.
    assert {c["name"]: c["value"] for c in context.cookies()}.get("vtr_id") == vid
    tab = context.new_page()
    tab.goto(shop.url("/product.html"))
    expect(tab.locator("h1")).to_have_text("Bestseller mug")
    assert visitor_id(tab) == vid
    assert tab.evaluate("vitrina.getVariation('cta-wording')") == variation


def test_element_inserted_after_load_gets_its_variation(page, shop):
    page.add_init_script(sampler("#reco h2"))
    page.goto(shop.url("/product.html"))

    expect(page.locator("#reco h2")).to_have_text(RECO_PERSONALIZED)
    expect(page.locator("#reco")).to_have_class(re.compile(r"\bpersonalized\b"))
    assert page.evaluate("window.recoInsertedAt") >= 500  # it really came late
    assert page.evaluate("vitrina.getVariation('late-reco')") == "bestsellers"
    assert RECO_ORIGINAL not in seen_texts(page, "#reco h2")


def test_conversions_reach_the_variation_the_visitor_saw(page, fresh_site):
    page.goto(fresh_site.url("/?utm_source=newsletter"))
    expect(page.locator(HERO)).to_have_text(HERO_PROMO)
    page.locator(".cta").click()  # the personalized link
    page.wait_for_url("**/product.html?promo=newsletter")
    cta_variation = page.evaluate("vitrina.getVariation('cta-wording')")
    page.locator("button.add-to-cart").click()
    page.locator("button.add-to-cart").click()  # twice: still one converted visitor
    page.locator("#buy").click()  # vitrina.track('purchase', {value: 12}), then the thanks page
    page.wait_for_url("**/thanks.html")
    expect(page.locator("h1")).to_have_text("Thank you for your order")
    page.goto("about:blank")

    def converted(r):
        goals = r.arm("hero-newsletter", "promo")["goals"]
        return all(goals[g]["conversions"] >= 1 for g in ("add_to_cart", "purchase", "thanks_page"))

    results = fresh_site.wait_for_results(converted)
    promo = results.arm("hero-newsletter", "promo")
    assert promo["visitors"] == 1
    assert promo["goals"]["add_to_cart"]["conversions"] == 1
    assert promo["goals"]["purchase"] == {"conversions": 1, "rate": 1.0, "revenue": 12.0,
        "revenue_per_visitor": 12.0, "orders": 0, "aov": None}
    assert promo["goals"]["thanks_page"]["conversions"] == 1
    assert promo["goals"]["thanks_page"]["revenue"] == 0
    # Attributed to every campaign the visitor was exposed to, on the variation they saw.
    assert results.goal("cta-wording", cta_variation, "add_to_cart")["conversions"] == 1
    assert results.goal("cta-wording", cta_variation, "purchase")["revenue"] == 12.0
    assert results.goal("late-reco", "bestsellers", "purchase")["revenue"] == 12.0
    assert results.total_visitors("home-note") == 1
    assert results.rejected() == {}


def test_every_action_kind_applies(page, shop):
    page.goto(shop.url("/actions.html"))
    assert page.evaluate("vitrina.getVariation('all-actions')") == "all"

    # text is text, never markup
    expect(page.locator("#t-text")).to_have_text("new <b>text</b>")
    expect(page.locator("#t-text b")).to_have_count(0)
    # html
    expect(page.locator("#t-html #t-strong")).to_have_text("new")
    expect(page.locator("#t-html")).to_have_text("new html")
    # attr: set, replace, and null removes
    expect(page.locator("#t-attr")).to_have_attribute("href", "/changed")
    expect(page.locator("#t-attr")).to_have_attribute("title", "new title")
    assert page.evaluate("document.querySelector('#t-attr').hasAttribute('data-gone')") is False
    # addClass (two classes at once) and removeClass
    assert page.evaluate("[...document.querySelector('#t-add').classList].sort()") == ["added", "also-added", "base"]
    assert page.evaluate("[...document.querySelector('#t-remove-class').classList]") == ["keep"]
    # style, as a declaration string and as an object
    expect(page.locator("#t-style-string")).to_have_css("color", "rgb(255, 0, 0)")
    expect(page.locator("#t-style-string")).to_have_css("font-weight", "700")
    expect(page.locator("#t-style-object")).to_have_css("background-color", "rgb(0, 0, 255)")
    expect(page.locator("#t-style-object")).to_have_css("opacity", "0.5")
    # hide keeps the element, remove takes it out
    expect(page.locator("#t-hide")).to_be_attached()
    expect(page.locator("#t-hide")).to_be_hidden()
    expect(page.locator("#t-remove")).to_have_count(0)
    # insertBefore, insertAfter, append
    ids = "(sel) => [...document.querySelector(sel).children].map((e) => e.id || e.textContent)"
    assert page.evaluate(ids, "#t-list") == ["t-before", "t-anchor", "t-after"]
    assert page.evaluate(ids, "#t-append") == ["first", "t-appended"]
    # css: a stylesheet for the page
    expect(page.locator("#t-css")).to_have_css("color", "rgb(0, 128, 0)")
    # (HTML that could run code never gets published: tests/test_config_api.py)
    # an SPA re-render replaces the element: the change comes back
    page.wait_for_function("window.rerenderedAt > 0")
    expect(page.locator("#t-rerender .title")).to_have_text("personalized title")

    # Re-applying on DOM changes must not pile up inserted content.
    page.wait_for_timeout(300)
    assert page.evaluate(ids, "#t-list") == ["t-before", "t-anchor", "t-after"]
    assert page.evaluate(ids, "#t-append") == ["first", "t-appended"]
    expect(page.locator("#t-html #t-strong")).to_have_count(1)


def test_redirect_action_sends_the_visitor_to_the_other_url_and_counts_once(page, vitrina):
    site = vitrina.new_site()
    page.goto(site.url("/split-a.html?utm_campaign=spring"))
    page.wait_for_url(re.compile(r"/split-b\.html\?utm_campaign=spring$"))  # the query string goes along
    expect(page.locator("h1")).to_have_text("Redesigned landing page")
    assert page.evaluate("vitrina.getVariation('split-landing')") is None  # nothing runs on the target
    page.reload()
    page.goto("about:blank")
    results = site.wait_for_results(lambda r: r.total_visitors("split-landing") >= 1)
    assert results.visitors("split-landing", "redesign") == 1
    assert results.rejected() == {}


def test_tag_is_the_only_request_before_the_first_exposure(page, vitrina, shop):
    server_requests = []
    page.on("request", lambda r: r.url.startswith(vitrina.server_url) and server_requests.append((r.method, r.url)))
    page.add_init_script(sampler(HERO))
    page.goto(shop.url("/?utm_source=newsletter"))
    expect(page.locator(HERO)).to_have_text(HERO_PROMO)

    tag_url = f"{vitrina.server_url}/v1/sites/{shop.name}/tag.js"
    applied_at = page.evaluate("(t) => window.__textAt['#hero h1'][t]", HERO_PROMO)
    before = page.evaluate(
        """([origin, t]) => performance.getEntriesByType("resource")
             .filter((e) => e.name.startsWith(origin) && e.startTime <= t).map((e) => e.name)""",
        [vitrina.server_url, applied_at])
    assert before == [tag_url]

    page.goto("about:blank")
    # The whole page view: one GET (the tag), the rest are event batches.
    assert server_requests[0] == ("GET", tag_url)
    collect_url = f"{vitrina.server_url}/v1/sites/{shop.name}/collect"
    assert all(r == ("POST", collect_url) for r in server_requests[1:]), server_requests


def test_variation_applies_with_the_server_unreachable_after_the_tag(page, vitrina, shop):
    blocked = []

    def only_the_tag(route):
        if route.request.url.endswith("/tag.js"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route(f"{vitrina.server_url}/**", only_the_tag)
    page.goto(shop.url("/?utm_source=newsletter"))
    expect(page.locator(HERO)).to_have_text(HERO_PROMO)
    assert page.evaluate("vitrina.getVariation('hero-newsletter')") == "promo"
