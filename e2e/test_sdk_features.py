"""The rest of the browser contract, in real Chromium: the same decision in the browser and
on the server, QA preview, consent, dataLayer and handlers, SPA navigation and vitrina.set().
"""
import copy
import re
import time

from playwright.sync_api import expect

from server.qa import wait_for_debug

from .pageutil import CONFIG, HERO, HERO_ORIGINAL, HERO_PROMO, pick_visitors, visitor_id


def returning_visitor(new_context, site, vid):
    """A page in a new context whose first-party cookie already holds visitor id `vid`."""
    context = new_context()
    context.add_cookies([{"name": "vtr_id", "value": vid, "url": site.shop_url}])
    return context.new_page()


def test_browser_and_server_decide_alike(new_context, shop):
    """JS in the browser and Python behind `decide` bucket the same visitor the same way,
    and give the same reason (the debug log prints it)."""
    attributes = {"page": {"path": "/product.html"}}
    chosen = pick_visitors(shop, attributes, lambda d: d["variations"].get("cta-wording"), ("control", "urgent"), 1, prefix="e2e-visitor")
    # A visitor with a new random id, then one known to land in each variation.
    for vid in (None, *chosen["control"], *chosen["urgent"]):
        page = returning_visitor(new_context, shop, vid) if vid else new_context().new_page()
        log = []
        page.on("console", lambda m, log=log: log.append(m.text))
        page.goto(shop.url("/product.html?vitrina_debug=1"))
        wait_for_debug(page)
        vid = vid or visitor_id(page)
        assert visitor_id(page) == vid  # the cookie wins
        in_browser = page.evaluate("(ks) => ks.map((k) => vitrina.getVariation(k))", ["cta-wording", "late-reco"])
        server = shop.decide(vid, attributes)
        assert [server["variations"].get(k) for k in ("cta-wording", "late-reco")] == in_browser, vid
        reason = server["reasons"]["cta-wording"]
        assert re.fullmatch(r"all visitors matched; bucket 0\.\d{4}", reason)
        assert any("cta-wording" in line and reason in line for line in log), (reason, log)
        page.context.close()


def test_forced_preview_is_shown_but_not_counted(page, fresh_site):
    page.goto(fresh_site.url("/?vitrina_force=hero-newsletter:promo"))  # not in the segment
    expect(page.locator(HERO)).to_have_text(HERO_PROMO)
    assert page.evaluate("vitrina.getVariation('hero-newsletter')") == "promo"
    page.goto("about:blank")

    # The page's home-note exposure travels in the same batch as the forced one.
    results = fresh_site.wait_for_results(lambda r: r.total_visitors("home-note") >= 1)
    assert results.total_visitors("hero-newsletter") == 0
    assert results.total_visitors("home-note") == 1
    assert results.rejected() == {}


def test_exposures_reach_the_datalayer_and_handlers(page, shop):
    page.goto(shop.url("/?utm_source=newsletter"))
    expect(page.locator(HERO)).to_have_text(HERO_PROMO)
    layer = page.evaluate("window.dataLayer")
    assert any(e.get("campaign") == "hero-newsletter" and e.get("variation") == "promo" for e in layer), layer
    # A handler registered after the fact still hears the page's exposures.
    heard = page.evaluate("""new Promise((resolve) =>
        vitrina.on("exposure", (e) => e.campaign === "hero-newsletter" && resolve(e)))""")
    assert heard["variation"] == "promo" and heard["holdout"] is False


def consent_required_site(vitrina, page):
    """A site whose config requires consent, and the list of POSTs the page makes."""
    config = copy.deepcopy(CONFIG)
    config["settings"]["consent"] = "required"
    posts = []
    page.on("request", lambda r: r.method == "POST" and posts.append(r.url))
    return vitrina.new_site(config), posts


def test_consent_required_keeps_everything_back_until_given(page, vitrina):
    site, posts = consent_required_site(vitrina, page)

    page.goto(site.url("/"))
    expect(page.locator(HERO)).to_have_text(HERO_ORIGINAL)
    page.wait_for_timeout(1500)  # longer than the SDK's batching delay
    assert posts == []
    results = site.results()
    assert [results.total_visitors(c["key"]) for c in results["campaigns"]] == [0] * len(CONFIG["campaigns"])
    assert [c["name"] for c in page.context.cookies() if c["name"].startswith("vtr_")] == []
    assert page.evaluate("Object.keys(localStorage).filter((k) => k.startsWith('vtr_'))") == []

    page.evaluate("vitrina.consent(true)")
    vid = visitor_id(page)
    cookie = next(c for c in page.context.cookies() if c["name"] == "vtr_id")
    assert cookie["value"] == vid
    # kept 400 days (max-age in digits: a browser ignores "3456e4" and keeps a session cookie), the
    # visitor state's time to live on the server (VITRINA_VISITOR_DAYS)
    assert 399 * 86_400 < cookie["expires"] - time.time() <= 400 * 86_400
    variation = page.evaluate("vitrina.getVariation('home-note')")
    page.goto("about:blank")
    # What happened before consent was held in memory, and goes once consent is given.
    results = site.wait_for_results(lambda r: r.total_visitors("home-note") >= 1)
    assert results.visitors("home-note", variation) == 1
    assert results.rejected() == {}


def test_consent_refused_sends_nothing(page, vitrina):
    site, posts = consent_required_site(vitrina, page)
    page.goto(site.url("/"))
    page.evaluate("vitrina.consent(false)")
    page.goto(site.url("/product.html"))
    expect(page.locator("#reco h2")).to_have_text("Bestsellers picked for you")
    page.goto("about:blank")
    time.sleep(0.5)  # a beacon sent on leaving would have landed
    assert posts == []
    results = site.results()
    assert [results.total_visitors(c["key"]) for c in results["campaigns"]] == [0] * len(CONFIG["campaigns"])


def test_spa_navigation_and_set_reevaluate_campaigns(page, shop):
    title = page.locator("#spa-title")
    page.goto(shop.url("/spa.html"))
    expect(title).to_have_text("Shop")

    page.evaluate("go('/spa/cart')")  # page matches, the cart condition not yet
    page.wait_for_timeout(100)
    expect(title).to_have_text("Shop")
    assert page.evaluate("vitrina.getVariation('spa-cart')") is None

    page.evaluate("vitrina.set({cart: {value: 60}})")
    expect(title).to_have_text("Free delivery on your cart")
    assert page.evaluate("vitrina.getVariation('spa-cart')") == "big-cart"

    page.evaluate("go('/spa.html')")  # leaving the page the campaign runs on takes it back
    expect(title).to_have_text("Shop")
    page.go_back()  # popstate: back on /spa/cart
    expect(title).to_have_text("Free delivery on your cart")


def test_holdout_visitors_see_nothing_and_are_counted_apart(new_context, vitrina):
    config = copy.deepcopy(CONFIG)
    config["settings"]["holdout"] = 0.5
    site = vitrina.new_site(config)
    attributes = {"page": {"path": "/"}, "utm": {"source": "newsletter"}}
    chosen = pick_visitors(site, attributes, lambda d: d["holdout"], (True, False), 2, prefix="e2e-visitor")
    for held, ids in chosen.items():
        for vid in ids:
            page = returning_visitor(new_context, site, vid)
            page.goto(site.url("/?utm_source=newsletter"))
            if held:
                # A holdout visitor sees the untouched page; its would-be exposure is still reported.
                expect(page.locator(HERO)).to_have_text(HERO_ORIGINAL)
                assert page.evaluate("vitrina.getVariation('hero-newsletter')") is None
            else:
                expect(page.locator(HERO)).to_have_text(HERO_PROMO)
            page.goto("about:blank")
            page.context.close()

    results = site.wait_for_results(lambda r: r.total_visitors("hero-newsletter") >= 4)
    assert results.visitors("hero-newsletter", None) == 2
    assert results.visitors("hero-newsletter", "promo") == 2
    assert results.rejected() == {}


def test_behavioural_triggers_apply_their_campaign_when_they_fire(page, shop):
    page.goto(shop.url("/long.html"))
    scroll_offer, cart_offer = page.locator("#scroll-offer"), page.locator("#cart-offer")
    page.wait_for_timeout(200)
    expect(scroll_offer).to_have_text("Keep reading")
    expect(cart_offer).to_have_text("Nothing in your cart yet")
    assert page.evaluate("[vitrina.getVariation('scroll-offer'), vitrina.getVariation('cart-offer')]") == [None, None]

    page.mouse.wheel(0, 3000)  # {"scroll": 50}
    expect(scroll_offer).to_have_text("Still here? Take 5% off")
    assert page.evaluate("vitrina.getVariation('scroll-offer')") == "offer"
    expect(cart_offer).to_have_text("Nothing in your cart yet")

    page.evaluate("vitrina.track('add_to_cart')")  # {"event": "add_to_cart"}
    expect(cart_offer).to_have_text("Free gift with your cart")
    expect(scroll_offer).to_have_text("Still here? Take 5% off")
