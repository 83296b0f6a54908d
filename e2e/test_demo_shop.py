"""`vitrina demo`'s shop in Chromium, on the session's server: the demo config published over
HTTP, the catalogue and past orders imported as `vitrina demo` imports them, recommendations
built; a shopper browses, adds a mug, gets the cart page's cross-sell, adds from it without
leaving the cart, pays, and results count the order. Screenshots of each page go to
test-results/demo-*.png (kept by CI as artifacts)."""
import json
from pathlib import Path

from playwright.sync_api import expect

from server import create_app
from server.demo import BUNDLES, DEMO_DIR, stock
from server.demo.shop import make_shop_server, serve_in_thread
from server.demo.storefront import Storefront
from server.qa import visitor_cookie
from server.store import get_store
from tests.servers import REPO, free_port

from .conftest import Site
from .pageutil import pick_visitors

SHOTS = REPO / "test-results"
CONFIG = json.loads((DEMO_DIR / "config.json").read_text())


def demo_site(vitrina):
    """The demo config, shop and data on a site of its own."""
    name = "demo-e2e"
    key = vitrina.create_site_fast(name)
    port = free_port()
    shop = make_shop_server("127.0.0.1", port, DEMO_DIR / "static", vitrina.server_url, name,
                            Storefront(vitrina.server_url, name))
    serve_in_thread(shop)
    vitrina._shops.append(shop)
    site = Site(name, key, vitrina.server_url, f"http://localhost:{port}")
    site.publish(CONFIG)
    with create_app(env=vitrina.env).app_context():
        store = get_store()
        try:
            summary = stock(store, name, site.shop_url)
        finally:
            store.close()
    assert summary["products"] == 40
    return site


def shot(page, name):
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(Path(SHOTS) / f"demo-{name}.png"), full_page=True)


def test_the_demo_shop_cross_sells_on_the_cart_page_and_counts_the_order(new_context, vitrina):
    site = demo_site(vitrina)
    picked = pick_visitors(site, {"page": {"path": "/cart.html"}}, lambda d: d["variations"].get("cart-cross-sell"),
                           ("bought-together",), prefix="e2e-demo")
    context = new_context(viewport={"width": 1200, "height": 900})
    context.add_cookies([visitor_cookie(site.shop_url, picked["bought-together"][0])])
    page = context.new_page()

    page.goto(site.url("/?utm_source=newsletter"))
    expect(page.locator("#hero h1")).to_have_text("10% off for our subscribers")  # the newsletter hero
    expect(page.locator(".card")).to_have_count(8)
    shot(page, "home")

    page.goto(site.url("/product.html?id=mug-ceramic"))
    expect(page.locator("#social-proof")).to_contain_text("bought in the last 24 hours")  # live counts
    expect(page.locator("#upsell .vitrina-reco-title")).to_have_text("Treat yourself: the upgrade")
    assert "mug-ceramic-xl" in page.locator("#upsell [data-vitrina-item]").evaluate_all(
        "els => els.map((e) => e.dataset.vitrinaItem)")  # the dearer mug
    shot(page, "product")
    page.click("button.add-to-cart")
    expect(page.locator("#cart-count")).to_have_text("1")

    page.goto(site.url("/cart.html"))
    slot = page.locator("#cart-reco [data-vitrina-item]")
    expect(slot).to_have_count(4)
    shown = slot.evaluate_all("els => els.map((e) => e.dataset.vitrinaItem)")
    mug_bundle = next(b for b in BUNDLES if "mug-ceramic" in b)
    # what was planted with the mug comes first; never the mug itself, nor the out-of-stock glasses
    assert set(shown[:2]) == {"beans-espresso", "frother-milk"}, shown
    assert "mug-ceramic" not in shown and "latte-glasses" in mug_bundle and "latte-glasses" not in shown
    shot(page, "cart")
    page.locator("[data-vitrina-item=beans-espresso] [data-vitrina-add]").click()
    expect(page.locator("#cart-count")).to_have_text("2")  # the shop's own cart, without leaving the page
    expect(page.locator("#cart-total")).to_have_text("€21.50")
    expect(page.locator("#cart-reco [data-vitrina-item=beans-espresso]")).to_have_count(0)
    page.click("#pay")
    page.wait_for_url("**/thanks.html")
    expect(page.locator("#order-id")).to_have_text(page.evaluate("JSON.parse(localStorage.demo_last_order).id"))
    shot(page, "thanks")
    page.reload()  # the purchase is pushed again: the same order, counted once
    page.goto("about:blank")

    def counted(results):
        purchase = results.goal("cart-cross-sell", "bought-together", "purchase")
        return purchase.get("orders") == 1 and results.goal("cart-cross-sell", "bought-together",
                                                            "recommendation_purchase").get("orders") == 1
    results = site.wait_for_results(counted, timeout=10)
    purchase = results.goal("cart-cross-sell", "bought-together", "purchase")
    assert (purchase["conversions"], purchase["revenue"], purchase["aov"]) == (1, 21.5, 21.5)
    assert results.goal("cart-cross-sell", "bought-together", "recommendation_add")["conversions"] == 1
    assert results.goal("cart-cross-sell", "bought-together", "recommendation_purchase")["revenue"] == 9.5
    assert results.rejected() == {}
