"""Every hot-data attribute the SDK fills, in real Chromium (docs/DESIGN.md "Attributes"): for
each, a campaign whose segment reads it swaps its own element when the visitor matches and
leaves it alone when not. Every check asserts the exact set of swapped elements among a group
of campaigns, so one that runs when it should not fails as surely as one that does not run.

The site is the test's own (its campaigns run on every page: no other test looks at it); the
pages are e2e/pages/targeting*.html, and each campaign's <p id=key> is added by an init script
at DOMContentLoaded (the SDK applies actions to late elements). Clocks are Playwright's fixed
time; geo comes from a second server reading a GeoIP database built here, behind one proxy
(conftest.geo_server; e2e/test_context.py covers context.js and the waiting).
"""
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from .conftest import PARIS_IP, TOKYO_IP, UNKNOWN_IP, behind_proxy

UTC = timezone.utc
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
IPHONE = json.loads((Path(__file__).resolve().parents[1] / "spec" / "07-devices.json").read_text())["cases"][0]
assert IPHONE["expected"] == {"type": "mobile", "os": "ios", "browser": "safari"}

REFERRER = {
    "ref-search": {"referrer.source": "google", "referrer.medium": "search", "referrer.host": "www.google.com",
                   "referrer.url": {"$regex": "[?&]q=mugs"}},
    "ref-bing": {"referrer.source": "bing", "referrer.medium": "search"},
    "ref-social": {"referrer.medium": "social"},
    "ref-facebook": {"referrer.source": "facebook", "referrer.medium": "social"},
    "ref-email": {"referrer.source": "mail.google.com", "referrer.medium": "email"},
    "ref-paid-google": {"referrer.source": "google", "referrer.medium": "paid"},
    "ref-paid-facebook": {"referrer.source": "facebook", "referrer.medium": "paid"},
    "ref-referral": {"referrer.source": "blog.example.org", "referrer.medium": "referral",
                     "referrer.host": "blog.example.org"},
    "ref-direct": {"referrer.source": "direct", "referrer.medium": "direct", "referrer.url": ""},
    "utm-newsletter": {"referrer.source": "newsletter", "referrer.medium": "email",
                       "utm.source": {"$ini": ["newsletter"]}, "utm.medium": "email", "utm.campaign": "spring"},
    "utm-partner-cpc": {"referrer.source": "partner", "referrer.medium": "paid", "utm.source": "partner",
                        "utm.campaign": {"$exists": False}},
}
VISIT = {
    "visit-new": {"visit.new": True, "visit.returning": False, "visit.count": 1, "visit.days_since_last": None},
    "visit-returning": {"visit.new": False, "visit.returning": True},
    "visit-third": {"visit.count": 3},
    "pageviews-2": {"visit.pageviews": 2},
    "total-pageviews-4": {"visit.total_pageviews": 4},
    "landing-b": {"visit.landing": "/targeting-b.html"},
    "days-0": {"visit.days_since_last": 0},
    "days-3": {"visit.days_since_last": 3},
    "time-on-site-90": {"visit.time_on_site": {"$gte": 90}},
}
TIME = {
    "monday-morning": {"time.hour": 8, "time.weekday": 1, "time.date": "2026-11-23"},
    "sunday-night": {"time.hour": 23, "time.weekday": 0, "time.date": "2026-11-22"},
}
DEVICE = {
    "device-touch": {"device.touch": True},
    "device-lang-fr": {"device.lang": "fr-FR"},
    "device-small-screen": {"device.screen.width": 390, "device.screen.height": 844},
    "device-iphone": {"device.type": "mobile", "device.os": "ios", "device.browser": "safari"},
}
PAGE = {
    "page-product": {"page.type": "product"},
    "page-lang-fr": {"page.lang": "fr"},
    "page-title": {"page.title": {"$regex": "^Mug en grès"}},
    "page-query": {"page.query.color": "red"},
    "page-where": {"page.host": "localhost", "page.path": "/targeting-product.html",
                   "page.url": {"$regex": r"^http://localhost:\d+/targeting-product\.html\?color=red&"}},
}
HISTORY = {
    "viewed-mug": {"history.products": "mug-1"},
    "viewed-kitchen": {"history.categories": "kitchen"},
    "last-viewed-kettle": {"history.products.0": "kettle-2", "history.products.1": "lamp-3",
                           "history.categories.0": "tea", "history.products": {"$size": 3}},
    # Never true on the product page itself: only the visit state can carry the lamp to a later page.
    "viewed-lamp-elsewhere": {"history.products": "lamp-3", "page.type": {"$ne": "product"}},
    "came-from-product": {"history.pages.0": "/targeting.html", "history.pages.1": "/targeting-product.html"},
    "wishlist-3": {"history.events.wishlist": {"$gte": 3}},
}
CART = {
    "cart-big": {"cart.value": {"$gte": 50}, "cart.items": {"$gte": 2}},
    "user-gold": {"user.plan": "gold"},
}
GEO = {
    "geo-paris": {"geo.country": "FR", "geo.region": "IDF", "geo.city": "Paris", "geo.continent": "EU",
                  "geo.timezone": "Europe/Paris"},
    "geo-tokyo": {"geo.country": "JP", "geo.continent": "AS", "geo.timezone": "Asia/Tokyo"},
    "geo-unknown": {"geo.country": None, "geo.city": None},
}


def config(segments, antiflicker_ms=400):
    """One single-variation campaign per segment, swapping the text of #<key>."""
    return {"segments": segments, "campaigns": [
        {"key": key, "type": "personalization", "status": "live", "segment": key,
         "variations": [{"key": "on", "actions": [{"selector": f"#{key}", "text": "on"}]}]}
        for key in segments], "settings": {"holdout": 0, "consent": "implied", "antiflicker_ms": antiflicker_ms}}


SEGMENTS = {**REFERRER, **VISIT, **TIME, **DEVICE, **PAGE, **HISTORY, **CART}
FLAGS = """document.addEventListener("DOMContentLoaded", () => {
  for (const k of %s) {
    const p = document.createElement("p")
    p.id = k
    p.textContent = "off"
    document.body.append(p)
  }
})"""


@pytest.fixture(scope="module")
def site(vitrina):
    # device-iphone reads device.os: it waits for /v1/context, up to antiflicker_ms.
    return vitrina.new_site(config(SEGMENTS, antiflicker_ms=3000))


@pytest.fixture
def visitor(new_context):
    """A new visitor: a page in a fresh browser context (options: Playwright's), whose pages
    hold one <p id=key>off</p> per campaign."""
    def make(keys=tuple(SEGMENTS) + tuple(GEO), **options):
        context = new_context(**options)
        context.add_init_script(FLAGS % json.dumps(list(keys)))
        return context.new_page()
    return make


def swapped(page, group):
    """The campaigns of `group` whose element shows the variation; each must also be the one
    vitrina.getVariation names, and every other one must be untouched."""
    keys = list(group)
    page.evaluate("() => new Promise((resolve) => vitrina.on('ready', resolve))")  # nothing waits any more
    shown = page.evaluate("(ks) => ks.filter((k) => document.getElementById(k).textContent === 'on')", keys)
    untouched = page.evaluate("(ks) => ks.filter((k) => document.getElementById(k).textContent === 'off')", keys)
    chosen = page.evaluate("(ks) => ks.filter((k) => vitrina.getVariation(k) === 'on')", keys)
    assert shown == chosen and sorted(shown + untouched) == sorted(keys), (shown, chosen, untouched)
    return set(shown)


@pytest.mark.parametrize("referer, query, expected", [
    ("https://www.google.com/search?q=mugs", "", {"ref-search"}),
    ("https://www.bing.com/search?q=mugs", "", {"ref-bing"}),
    ("https://l.facebook.com/l.php?u=https%3A%2F%2Fshop", "", {"ref-social", "ref-facebook"}),
    ("https://www.instagram.com/", "", {"ref-social"}),
    ("https://mail.google.com/mail/u/0/", "", {"ref-email"}),
    (None, "?gclid=Cj0KCQ", {"ref-paid-google"}),
    ("https://m.facebook.com/", "?fbclid=IwAR0", {"ref-paid-facebook"}),
    ("https://blog.example.org/2026/best-mugs", "", {"ref-referral"}),
    (None, "", {"ref-direct"}),
    (None, "?utm_source=Newsletter&utm_medium=email&utm_campaign=spring", {"utm-newsletter"}),
    ("https://www.google.com/", "?utm_source=partner&utm_medium=cpc", {"utm-partner-cpc"}),
], ids=["google", "bing", "facebook", "instagram", "webmail", "gclid", "fbclid", "referral", "direct",
        "utm-email", "utm-cpc-beats-referrer"])
def test_referrer_source_and_medium(visitor, site, referer, query, expected):
    page = visitor(REFERRER)
    page.goto(site.url("/targeting.html" + query), referer=referer)
    assert swapped(page, REFERRER) == expected


def test_utm_and_source_last_for_the_session(visitor, site):
    page = visitor(REFERRER)
    page.clock.set_fixed_time(T0)
    page.goto(site.url("/targeting.html?utm_source=Newsletter&utm_medium=email&utm_campaign=spring"))
    assert swapped(page, REFERRER) == {"utm-newsletter"}
    page.click("#to-b")  # a link on the site: the referrer is our own page, the session keeps its source
    page.wait_for_url("**/targeting-b.html")
    assert page.evaluate("document.referrer").endswith("utm_campaign=spring")
    assert swapped(page, REFERRER) == {"utm-newsletter"}
    # A new campaign click within the session replaces source and UTM values (all of them).
    page.goto(site.url("/targeting.html?utm_source=partner&utm_medium=cpc"), referer=site.url("/targeting-b.html"))
    assert swapped(page, REFERRER) == {"utm-partner-cpc"}
    page.goto(site.url("/targeting-b.html"), referer="https://www.google.com/search?q=mugs")
    assert swapped(page, REFERRER) == {"ref-search"}
    page.clock.set_fixed_time(T0 + timedelta(minutes=45))  # 30 minutes without a page view: a new session
    page.goto(site.url("/targeting.html"))
    assert swapped(page, REFERRER) == {"ref-direct"}


def test_visit_new_then_returning_counts_landing_and_days_since_last(visitor, site):
    page = visitor(VISIT)
    page.clock.set_fixed_time(T0)
    page.goto(site.url("/targeting-b.html"))
    assert swapped(page, VISIT) == {"visit-new", "landing-b"}
    page.clock.set_fixed_time(T0 + timedelta(seconds=90))
    page.click("#to-home")
    page.wait_for_url("**/targeting.html")
    assert swapped(page, VISIT) == {"visit-new", "landing-b", "pageviews-2", "time-on-site-90"}
    page.clock.set_fixed_time(T0 + timedelta(hours=2))  # a second session, the same day
    page.goto(site.url("/targeting.html"))
    assert swapped(page, VISIT) == {"visit-returning", "days-0"}
    page.clock.set_fixed_time(T0 + timedelta(days=3, hours=3))  # 3 days and 1 hour after the last page view
    page.goto(site.url("/targeting.html"))
    assert swapped(page, VISIT) == {"visit-returning", "visit-third", "days-3", "total-pageviews-4"}


@pytest.mark.parametrize("zone, expected", [("Asia/Tokyo", {"monday-morning"}), ("Europe/London", {"sunday-night"}),
                                            ("America/New_York", set())])
def test_local_time(visitor, site, zone, expected):
    page = visitor(TIME, timezone_id=zone)
    page.clock.set_fixed_time(datetime(2026, 11, 22, 23, 30, tzinfo=UTC))  # Monday 08:30 in Tokyo
    page.goto(site.url("/targeting.html"))
    assert swapped(page, TIME) == expected


def test_device_touch_language_and_screen(visitor, site):
    phone = visitor(DEVICE, user_agent=IPHONE["user_agent"], has_touch=True, locale="fr-FR",
                    viewport={"width": 390, "height": 664}, screen={"width": 390, "height": 844})
    phone.goto(site.url("/targeting.html"))
    assert swapped(phone, DEVICE) == set(DEVICE)
    desktop = visitor(DEVICE, locale="en-US", viewport={"width": 1280, "height": 720})
    desktop.goto(site.url("/targeting.html"))
    assert swapped(desktop, DEVICE) == set()


def test_page_type_lang_title_query_and_url(visitor, site):
    page = visitor(PAGE)
    page.goto(site.url("/targeting-product.html?color=red&sku=mug-1&cat=kitchen"))
    assert swapped(page, PAGE) == set(PAGE)
    page.goto(site.url("/targeting.html?color=blue"))
    assert swapped(page, PAGE) == set()


def test_viewed_products_categories_recent_pages_and_event_counts(visitor, site):
    page = visitor(HISTORY)
    page.goto(site.url("/targeting.html"))
    assert swapped(page, HISTORY) == set()
    page.goto(site.url("/targeting-product.html?sku=mug-1&cat=kitchen"))  # GTM's view_item, after the tag
    assert swapped(page, HISTORY) == {"viewed-mug", "viewed-kitchen"}
    page.goto(site.url("/targeting-product.html?sku=lamp-3&cat=lighting&via=gtag"))  # gtag's view_item
    assert swapped(page, HISTORY) == {"viewed-mug", "viewed-kitchen"}
    page.goto(site.url("/targeting-product.html?sku=kettle-2&cat=tea"))
    assert swapped(page, HISTORY) == {"viewed-mug", "viewed-kitchen", "last-viewed-kettle"}
    page.goto(site.url("/targeting.html"))  # no product here: the visit state keeps what was viewed
    viewed = {"viewed-mug", "viewed-kitchen", "last-viewed-kettle", "viewed-lamp-elsewhere"}
    assert swapped(page, HISTORY) == viewed | {"came-from-product"}
    page.evaluate("vitrina.track('wishlist'); vitrina.track('wishlist'); vitrina.refresh()")
    assert "wishlist-3" not in swapped(page, HISTORY)
    page.evaluate("vitrina.track('wishlist'); vitrina.refresh()")
    assert "wishlist-3" in swapped(page, HISTORY)
    page.goto(site.url("/targeting-b.html"))  # counts last across pages
    assert swapped(page, HISTORY) == viewed | {"wishlist-3"}


def test_cart_and_user_values_set_by_the_site(visitor, site):
    page = visitor(CART)
    page.goto(site.url("/targeting.html"))
    assert swapped(page, CART) == set()
    page.goto(site.url("/targeting-cart.html"))  # the page calls vitrina.set({cart: {value: 64.5, items: 3}})
    assert swapped(page, CART) == {"cart-big"}
    page.evaluate("vitrina.set({cart: {value: 20}})")  # merged: 3 items still, a smaller value
    assert swapped(page, CART) == set()
    page.evaluate("vitrina.set({plan: 'gold', cart: {value: 80}})")  # a key outside the namespaces is user.*
    assert swapped(page, CART) == {"cart-big", "user-gold"}
    page.goto(site.url("/targeting.html"))  # the cart is kept for the session; other set() values last for the page
    assert swapped(page, CART) == {"cart-big"}
    assert page.evaluate("JSON.parse(localStorage.getItem('vtr_b')).v") == {"value": 80, "items": 3, "lines": []}


# --- geo: a server of its own, with a GeoIP database built here, behind one trusted proxy ---

@pytest.fixture(scope="module")
def geo(geo_server):
    """(workdir, site) on the geo server (conftest.geo_server)."""
    # antiflicker_ms bounds the wait for /v1/context too: long enough for a loaded machine.
    return geo_server.workdir, geo_server.new_site(config(GEO, antiflicker_ms=3000))


@pytest.mark.parametrize("forwarded, expected", [
    (PARIS_IP, {"geo-paris"}),
    (f"{PARIS_IP}, {TOKYO_IP}", {"geo-tokyo"}),  # the first entry is the client's claim; the proxy's is last
    (UNKNOWN_IP, {"geo-unknown"}),
], ids=["paris", "spoofed-first-hop-ignored", "not-in-database"])
def test_geo_from_the_server_behind_a_proxy(new_context, geo, forwarded, expected):
    workdir, site = geo
    context = new_context()
    context.add_init_script(FLAGS % json.dumps(list(GEO)))
    behind_proxy(context, site.server_url, forwarded)
    page = context.new_page()
    bodies = []
    page.on("response", lambda r: r.url.startswith(site.server_url) and r.request.method == "GET"
            and bodies.append(r.body()))
    page.goto(site.url("/targeting.html"))  # the tag alone: it asks /v1/context for geo
    page.wait_for_function("vitrina.getVariation(%s) === 'on'" % json.dumps(min(expected)))
    assert swapped(page, GEO) == expected
    # The address is looked up, never sent back nor stored.
    assert len(bodies) == 2  # tag.js, then /v1/context
    for ip in forwarded.split(", "):
        assert all(ip.encode() not in body for body in bodies)
    page.goto("about:blank")
    site.wait_for_results(lambda r: r.total_visitors(min(expected)) >= 1)
    stored = b"".join(p.read_bytes() for p in workdir.iterdir() if p.is_file() and "vitrina.sqlite3" in p.name)
    assert stored and all(ip.encode() not in stored for ip in forwarded.split(", "))
