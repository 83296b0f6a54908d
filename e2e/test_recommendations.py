"""Recommendations and dynamic content in Chromium, on a site whose catalogue and past orders are
imported with the real CLI and whose recommendations are built by `vitrina recs build`:

- a cart page's recommend slot shows what was bought together with the cart, never the cart's
  own products nor out-of-stock ones, and never paints its original content (frame sampler);
- its "add to cart" button calls the site's `recommendation:add` hook without leaving the cart,
  and clicks and adds are recommendation conversions of the campaign's variation;
- an answer later than antiflicker_ms leaves the original, exposes nothing, and says so;
- an A/B test of bought_together vs bestsellers vs nothing reports orders, AOV and revenue per
  visitor per variation (both stores);
- placeholders (attributes, the city from the context, the page's product), social proof from live counts, and a menu
  reordered by the categories viewed, taken back on an SPA navigation.

Pages: e2e/pages/reco/."""
import json
import time

from playwright.sync_api import expect

from server.qa import visitor_cookie

from .conftest import PARIS_IP, behind_proxy, http, shopper_user_agent
from .pageutil import pick_visitors, sampler, seen_texts

CART = "/reco/cart.html"
PRODUCT = "/reco/product.html"
# id: (category, price, availability)
CATALOGUE = {
    "mug-a": ("Kitchen > Mugs", 10, "in_stock"), "mug-big": ("Kitchen > Mugs", 24, "in_stock"),
    "beans-1": ("Kitchen > Coffee", 8, "in_stock"), "filter-1": ("Kitchen > Coffee", 6, "in_stock"),
    "spoon-1": ("Kitchen > Spoons", 3, "in_stock"), "spoon-out": ("Kitchen > Spoons", 3, "out_of_stock"),
    "rake-1": ("Garden > Tools", 20, "in_stock"), "rake-2": ("Garden > Tools", 21, "in_stock"),
}
# past orders: (customers, items of each one's order)
ORDERS = [(6, ["mug-a", "beans-1"]), (4, ["mug-a", "spoon-1"]), (5, ["mug-a", "spoon-out"]), (2, ["mug-a", "filter-1"]),
          (8, ["rake-1", "rake-2"])]
TEMPLATE = ('<a href="{{link}}"><img src="{{image_link}}" alt="" width="40" height="40"> '
            '<span class="title">{{title}}</span> <span class="price">{{price}}</span></a>')
CONFIG = {
    "goals": {"purchase": {"event": "purchase"}},
    "campaigns": [
        {"key": "cart-xsell", "type": "experiment", "pages": {"page.path": CART}, "goals": ["purchase"],
         "variations": [
             {"key": "control", "actions": []},
             {"key": "bought", "actions": [{"selector": "#cart-reco", "recommend": {
                 "strategy": "bought_together", "items": "cart", "n": 3, "template": TEMPLATE,
                 "title": "Goes well with your basket", "add": "Add"}}]},
             {"key": "best", "actions": [{"selector": "#cart-reco", "recommend": {
                 "strategy": "bestsellers", "items": "cart", "n": 3, "title": "Bestsellers"}}]}]},
        {"key": "proof", "pages": {"page.path": PRODUCT}, "variations": [{"key": "on", "actions": [
            {"selector": "#headline", "text": "{{product.title|A product}}, {{product.price}}"},
            {"selector": "#proof", "html": "<b>{{product.views_24h}}</b> people viewed it today, "
                                           "{{product.purchases_24h|nobody}} bought it"},
            {"selector": "#greeting", "text": "Hello from {{geo.city|your city}}"}]}]},
        {"key": "menu", "pages": {"page.path": PRODUCT},
         "variations": [{"key": "on", "actions": [{"selector": "#menu", "reorder": {"by": "history.categories"}}]}]},
        {"key": "upsell", "pages": {"page.path": PRODUCT}, "variations": [{"key": "on", "actions": [
            {"selector": "#upsell", "recommend": {"strategy": "upsell", "items": "page", "n": 2}}]}]},
    ],
    "settings": {"holdout": 0, "antiflicker_ms": 2500},
}
CART_ATTRIBUTES = {"page": {"path": CART}}
LATE_S = 3.5  # later than antiflicker_ms


def stocked_site(server, tmp_path):
    """A new site with CONFIG, its catalogue and orders imported with the CLI, recommendations built."""
    site = server.new_site(CONFIG)
    feed = tmp_path / f"{site.name}-feed.jsonl"
    feed.write_text("\n".join(json.dumps({
        "id": pid, "title": pid.replace("-", " ").title(), "link": site.url(f"{PRODUCT}?id={pid}"),
        "image_link": site.url("/reco/item.svg"), "price": f"{price:.2f} EUR", "availability": availability,
        "product_type": category, "brand": "Acme"}) for pid, (category, price, availability) in CATALOGUE.items()))
    orders, n = [], 0
    for customers, items in ORDERS:
        for _ in range(customers):
            n += 1
            orders.append({"order_id": f"past-{n}", "customer_id": f"customer-{n}", "ts": int(time.time() * 1000) - 3600_000,
                           "items": [{"id": i, "quantity": 1, "price": CATALOGUE[i][1]} for i in items]})
    history = tmp_path / f"{site.name}-orders.jsonl"
    history.write_text("\n".join(json.dumps(o) for o in orders))
    server.cli("catalog", "import", site.name, str(feed))
    server.cli("orders", "import", site.name, str(history))
    server.cli("recs", "build", site.name)
    return site


def as_visitor(new_context, site, vid):
    context = new_context()
    context.add_cookies([visitor_cookie(site.shop_url, vid)])
    page = context.new_page()
    page.log = []
    page.on("console", lambda message: page.log.append(message.text))
    return page


def slot_ids(page):
    return page.locator("#cart-reco [data-vitrina-item]").evaluate_all("els => els.map((e) => e.dataset.vitrinaItem)")


def test_the_cart_page_recommends_what_was_bought_together_and_counts_clicks_and_adds(new_context, vitrina, tmp_path):
    site = stocked_site(vitrina, tmp_path)
    picked = pick_visitors(site, CART_ATTRIBUTES, lambda d: d["variations"].get("cart-xsell"), ("bought",),
                           prefix="e2e-reco")
    page = as_visitor(new_context, site, picked["bought"][0])
    page.add_init_script(sampler("#cart-reco"))
    page.goto(site.url(CART + "?cart=mug-a:1:10"))
    expect(page.locator("#cart-reco .vitrina-reco-item")).to_have_count(3)
    # bought together with mug-a, best first; neither mug-a (in the cart) nor spoon-out (out of stock)
    assert slot_ids(page) == ["beans-1", "spoon-1", "filter-1"]
    expect(page.locator("#cart-reco .vitrina-reco-title")).to_have_text("Goes well with your basket")
    expect(page.locator("#cart-reco .vitrina-reco-item").first.locator(".price")).to_have_text("€8.00")
    shown = seen_texts(page, "#cart-reco")
    assert shown and all("Popular this week" not in text for text in shown), shown  # the original never painted
    assert page.evaluate("vitrina.getVariation('cart-xsell')") == "bought"

    # "Add": the site's hook adds it, the shopper stays; the slot follows the cart
    page.locator("[data-vitrina-item=beans-1] [data-vitrina-add]").click()
    page.wait_for_function("(window.added || []).join() === 'beans-1'")
    assert page.url.endswith(CART + "?cart=mug-a:1:10")
    page.wait_for_function("!document.querySelector('#cart-reco [data-vitrina-item=beans-1]')")
    assert "beans-1" not in slot_ids(page) and "mug-a" not in slot_ids(page)
    # a product's link: a click conversion, then the product page
    page.locator("#cart-reco [data-vitrina-item=spoon-1] a").click()
    page.wait_for_url(f"**{PRODUCT}?id=spoon-1")

    def counted(results):
        arm = results.arm("cart-xsell", "bought")
        return arm["visitors"] == 1 and all(arm["goals"].get(g, {}).get("conversions") == 1
                                            for g in ("recommendation_add", "recommendation_click"))
    results = site.wait_for_results(counted)
    campaign = results.campaign("cart-xsell")
    assert campaign["goals"] == ["purchase", "recommendation_click", "recommendation_add", "recommendation_purchase"]
    for other in ("control", "best"):
        assert results.visitors("cart-xsell", other) == 0
    assert results.rejected() == {}


def test_an_answer_after_antiflicker_ms_leaves_the_original_and_exposes_nothing(new_context, vitrina, tmp_path):
    site = stocked_site(vitrina, tmp_path)
    picked = pick_visitors(site, CART_ATTRIBUTES, lambda d: d["variations"].get("cart-xsell"), ("bought",),
                           prefix="e2e-late")
    page = as_visitor(new_context, site, picked["bought"][0])

    def late(route):
        response = route.fetch()
        time.sleep(LATE_S)
        route.fulfill(response=response)

    page.route("**/recommendations?*", late)
    page.add_init_script(sampler("#cart-reco"))
    page.goto(site.url(CART + "?cart=mug-a:1:10&vitrina_debug=1"))
    page.wait_for_timeout(LATE_S * 1000 + 500)
    assert seen_texts(page, "#cart-reco") == ["Popular this week"]  # hidden until the deadline, then the original
    assert page.locator("#cart-reco .vitrina-reco").count() == 0
    assert any(line.startswith("[vitrina:recommend] cart-xsell: recommendations came after antiflicker_ms")
               for line in page.log), page.log
    assert page.evaluate("""() => new Promise((done) => {
        const seen = []; vitrina.on("exposure", (e) => seen.push(e.campaign)); setTimeout(() => done(seen), 50) })""") == []
    page.goto("about:blank")  # pagehide: whatever was queued goes
    time.sleep(1)
    assert site.results().total_visitors("cart-xsell") == 0


def test_an_ab_test_of_strategies_reports_orders_and_aov_per_variation(new_context, store_server, tmp_path):
    site = stocked_site(store_server, tmp_path)
    picked = pick_visitors(site, CART_ATTRIBUTES, lambda d: d["variations"].get("cart-xsell"),
                           ("control", "bought", "best"), each=2, prefix="e2e-aov")
    orders = 0
    for variation, visitors in picked.items():
        for vid in visitors:
            orders += 1
            page = as_visitor(new_context, site, vid)
            page.goto(site.url(f"{CART}?cart=mug-a:1:10&order=T-{orders}"))
            if variation != "control":
                expect(page.locator("#cart-reco .vitrina-reco-item")).to_have_count(3)
            if variation == "bought":  # the cross-sell works: the basket grows by the beans
                page.locator("[data-vitrina-item=beans-1] [data-vitrina-add]").click()
                page.wait_for_function("(window.added || []).length === 1")
            page.click("#pay")
            page.click("#pay")  # twice: the same order id is one order
            page.goto("about:blank")
            page.context.close()

    def paid(results):
        return all(results.goal("cart-xsell", v, "purchase").get("orders") == 2 for v in picked)
    results = site.wait_for_results(paid, timeout=10)
    for variation, value in (("control", 10.0), ("bought", 18.0), ("best", 10.0)):
        purchase = results.goal("cart-xsell", variation, "purchase")
        assert (purchase["conversions"], purchase["orders"], purchase["aov"]) == (2, 2, value), variation
        assert purchase["revenue_per_visitor"] == value
    recommended = results.goal("cart-xsell", "bought", "recommendation_purchase")
    assert (recommended["revenue"], recommended["orders"]) == (16.0, 2)  # the beans, bought after a recommendation
    assert results.rejected() == {}


def test_placeholders_and_social_proof_from_the_catalogue_and_live_counts(new_context, vitrina, tmp_path):
    site = stocked_site(vitrina, tmp_path)
    # three visitors viewed rake-1 today (one twice: counted once), through collect as the SDK sends
    # it, from a shopper's browser (collect counts nothing from robots, Python's client included)
    for n, visitor in enumerate(["viewer-0001", "viewer-0002", "viewer-0003", "viewer-0003"]):
        body = {"visitor_id": visitor, "events": [{"id": f"view-event-{n:04d}", "type": "item", "action": "view",
                                                   "items": ["rake-1"], "session": 1, "ts": int(time.time() * 1000)}]}
        sent = http("POST", f"{vitrina.server_url}/v1/sites/{site.name}/collect", body,
                    {"User-Agent": shopper_user_agent()})
        assert sent.status == 204
    page = as_visitor(new_context, site, "e2e-proof-0001")
    page.add_init_script(sampler("#headline", "#proof"))
    page.goto(site.url(f"{PRODUCT}?id=rake-1&category=Garden"))
    expect(page.locator("#headline")).to_have_text("Rake 1, €20.00")
    expect(page.locator("#proof")).to_have_text("3 people viewed it today, 8 bought it")
    expect(page.locator("#proof b")).to_have_text("3")  # the html action's markup, the numbers escaped into it
    expect(page.locator("#greeting")).to_have_text("Hello from your city")  # no geo for 127.0.0.1: the default
    assert seen_texts(page, "#headline") == ["Rake 1, €20.00"] and seen_texts(page, "#proof") == [
        "3 people viewed it today, 8 bought it"]  # each waited for the product, hidden, like a slot
    # the upsell slot: dearer in the same category
    expect(page.locator("#upsell [data-vitrina-item]")).to_have_count(1)
    assert page.locator("#upsell [data-vitrina-item]").get_attribute("data-vitrina-item") == "rake-2"
    # a product not in the feed: the defaults
    page.goto(site.url(f"{PRODUCT}?id=not-in-feed"))
    expect(page.locator("#headline")).to_have_text("A product, ")
    expect(page.locator("#proof")).to_have_text(" people viewed it today, nobody bought it")


def test_a_menu_is_reordered_by_the_categories_viewed_and_taken_back_on_navigation(new_context, vitrina, tmp_path):
    site = stocked_site(vitrina, tmp_path)
    page = as_visitor(new_context, site, "e2e-menu-0001")
    menu = "#menu > li"

    def order():
        return page.locator(menu).evaluate_all("els => els.map((e) => e.textContent.trim())")
    page.goto(site.url(f"{PRODUCT}?id=rake-1&category=Garden"))
    page.wait_for_function("vitrina.getVariation('menu') === 'on'")
    assert order() == ["Garden", "Home", "Kitchen", "Kids", "Sale"]  # this page's category first
    page.wait_for_function("JSON.parse(localStorage.getItem('vtr_v') || '{}').c?.[0] === 'Garden'")
    page.goto(site.url(f"{PRODUCT}?id=mug-a&category=Kitchen"))
    page.wait_for_function("vitrina.getVariation('menu') === 'on'")
    assert order() == ["Kitchen", "Garden", "Home", "Kids", "Sale"]  # the newest first
    page.locator("#menu a").first.click()  # the menu's own links still work on the moved items
    assert page.url.endswith("#kitchen")
    page.evaluate("history.pushState({}, '', '/reco/elsewhere')")  # an SPA page the campaign does not target
    page.wait_for_function("vitrina.getVariation('menu') === null")
    assert order() == ["Home", "Garden", "Kitchen", "Kids", "Sale"]


def test_a_geo_placeholder_is_filled_from_the_context(new_context, geo_server):
    """#greeting needs no request, but its campaign waits for the product: it waits hidden with them."""
    site = geo_server.new_site(CONFIG)
    context = new_context()
    behind_proxy(context, geo_server.server_url, PARIS_IP)
    page = context.new_page()
    page.add_init_script(sampler("#greeting"))
    page.goto(site.url(f"{PRODUCT}?id=rake-1"))  # context.js before the tag: known before the first paint
    expect(page.locator("#greeting")).to_have_text("Hello from Paris")
    assert seen_texts(page, "#greeting") == ["Hello from Paris"]
