"""The browser and the server decide alike, in real Chromium.

- Device: a page loaded with a real user agent (spec/07-devices.json) reads `device.type` (its
  own classifier), `device.os` and `device.browser` (the server's, by GET /v1/context) equal to
  what server/delivery/context.py gives that user agent.
- Decisions: visitors with their own devices, clocks, time zones and journeys (campaign
  clicks, search, social, referral, returning days later, product pages with a GA4 data layer,
  a cart, vitrina.set and vitrina.track) browse a site of ~35 campaigns over every attribute
  namespace; after each page view, every campaign's variation and reason in the browser (the
  `?vitrina_debug=1` log) equals what `POST decide` answers for the same visitor id, `now` and
  attributes. The attributes sent to `decide` are predicted here from docs/DESIGN.md
  "Attributes", not read from the browser, so a wrong attribute fails this as surely as a
  wrong evaluator.
  `decide` knows no sticky assignments: where the browser says `sticky <v>` (a campaign
  already shown to this visitor), the server must have bucketed the same <v>.
"""
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

from server.decisions.bucketing import hash as bucket_hash
from server.delivery.context import device_for_ua
from server.qa import wait_for_debug

# The page's decision is complete: campaigns reading geo or device.os/browser waited for /v1/context.
READY = "() => new Promise((resolve) => vitrina.on('ready', resolve))"
DEVICES = json.loads((Path(__file__).resolve().parents[1] / "spec" / "07-devices.json").read_text())["cases"]
# antiflicker_ms also bounds the wait for /v1/context (campaigns reading device.os/browser or
# geo): generous, so a loaded machine still decides with the context, as parity needs.
SETTINGS = {"holdout": 0.2, "consent": "implied", "antiflicker_ms": 3000,
            "referral_exclusions": ["checkout.pay.example"]}


# --- device ---

def _device_subset():
    """The documented caveats, then greedily the vectors that add the most type, OS and
    browser names not covered yet, until every name is."""
    caveats = ("desktop mode sends the macOS UA", "iPad UA", "Tablet;", "Applebot")
    picked = [c for c in DEVICES if any(w in c["description"] for w in caveats)]
    seen = {item for c in picked for item in c["expected"].items()}
    while True:
        best = max(DEVICES, key=lambda c: len(set(c["expected"].items()) - seen))
        if not set(best["expected"].items()) - seen:
            return picked
        picked.append(best)
        seen |= set(best["expected"].items())


DEVICE_SUBSET = _device_subset()
DEVICE_FIELDS = {"type": ["mobile", "tablet", "desktop", "bot"],
                 "os": ["ios", "android", "windows", "macos", "chromeos", "linux", "other"],
                 "browser": ["chrome", "firefox", "safari", "edge", "opera", "samsung", "other"]}
DEVICE_CONFIG = {"campaigns": [
    {"key": f"{field}-{value}", "type": "personalization", "status": "live",
     "conditions": {f"device.{field}": value}, "variations": [{"key": "on", "actions": []}]}
    for field, values in DEVICE_FIELDS.items() for value in values], "settings": {**SETTINGS, "holdout": 0}}


def test_browser_device_attributes_are_the_servers(new_context, vitrina):
    site = vitrina.new_site(DEVICE_CONFIG)
    keys = [c["key"] for c in DEVICE_CONFIG["campaigns"]]
    assert 8 <= len(DEVICE_SUBSET) <= 12
    for case in DEVICE_SUBSET:
        ua = case["user_agent"]
        context = new_context(user_agent=ua)
        page = context.new_page()
        page.goto(site.url("/targeting.html"))
        page.evaluate(READY)  # campaigns reading device.os or device.browser wait for /v1/context
        assert page.evaluate("navigator.userAgent") == ua
        chosen = page.evaluate("(ks) => ks.filter((k) => vitrina.getVariation(k))", keys)
        in_browser = {field: [k.split("-", 1)[1] for k in chosen if k.startswith(field + "-")]
                      for field in DEVICE_FIELDS}
        assert in_browser == {field: [value] for field, value in device_for_ua(ua).items()}, case["description"]
        assert device_for_ua(ua) == case["expected"]
        context.close()


# --- decisions ---

def _campaign(key, segment=None, conditions=None, pages=None, weights=(0.5, 0.5), selector=None, **extra):
    variations = [{"key": v, "weight": w, "actions": [{"selector": selector or f"#{key}", "text": f"{key} {v}"}]}
                  for v, w in zip("abcdefgh", weights)]
    return {"key": key, "type": "experiment", "status": "live", "segment": segment, "conditions": conditions,
            "pages": pages, "variations": variations, **extra}


SEGMENTS = {
    "from-google": {"referrer.source": "google", "referrer.medium": "search"},
    "email-social-paid": {"$or": [{"referrer.medium": "email"}, {"referrer.medium": {"$in": ["social", "paid"]}}]},
    "mobile": {"device.type": "mobile"},
    "gold": {"user.plan": "gold"},
}
CAMPAIGNS = [
    _campaign("all-ab"),
    _campaign("all-abc", weights=(0.2, 0.3, 0.5)),
    _campaign("half-traffic", traffic=0.5),
    _campaign("google-search", segment="from-google"),
    _campaign("email-social-paid", segment="email-social-paid", weights=(0.3, 0.7)),
    _campaign("spring-utm", conditions={"utm.campaign": {"$regexi": "^SPRING"},
                                        "utm.source": {"$ini": ["newsletter"]}}),
    _campaign("new-visitors", conditions={"visit.new": True, "visit.days_since_last": None}),
    _campaign("returning-days", conditions={"visit.returning": True, "visit.days_since_last": {"$gte": 2}}),
    _campaign("deep-session", conditions={"visit.pageviews": {"$gte": 3}, "visit.total_pageviews": {"$gte": 3}}),
    _campaign("landed-on-b", conditions={"visit.landing": "/targeting-b.html"}),
    _campaign("long-session", conditions={"visit.time_on_site": {"$gte": 60}, "visit.count": {"$lte": 2}}),
    _campaign("mobile", segment="mobile", weights=(0.6, 0.4)),
    _campaign("mobile-deep", segment="mobile", conditions={"visit.pageviews": {"$gte": 2}}),
    _campaign("tablet-touch", conditions={"device.type": "tablet", "device.touch": True, "device.os": "android"}),
    _campaign("desktop-windows", conditions={"device.type": "desktop", "device.os": "windows",
                                             "device.browser": {"$in": ["chrome", "edge"]}}),
    _campaign("big-screen", conditions={"device.screen.width": {"$gte": 1024}, "device.touch": False}),
    _campaign("french-speakers", conditions={"device.lang": {"$regex": "^fr"}}),
    _campaign("no-geo", conditions={"geo.country": {"$exists": False}, "geo.city": None}),
    _campaign("weekday-morning", conditions={"time.weekday": {"$in": [1, 2, 3, 4, 5]}, "time.hour": {"$lt": 12}}),
    _campaign("after-date", conditions={"time.date": {"$gte": "2026-11-25"}}),
    _campaign("product-pages", pages={"page.type": "product"}, weights=(0.25, 0.25, 0.5)),
    _campaign("sku-mug", pages={"page.path": "/targeting-product.html"}, conditions={"page.query.sku": "mug-1"}),
    _campaign("french-page", conditions={"page.lang": "fr", "page.title": {"$regex": "grès"},
                                         "page.url": {"$regex": r"^http://localhost:\d+/"},
                                         "page.host": "localhost"}),
    _campaign("viewed-kitchen", conditions={"history.categories": {"$all": ["kitchen"]}}),
    _campaign("viewed-two", conditions={"history.products": {"$size": 2}}),
    _campaign("came-from-product", conditions={"history.pages.1": "/targeting-product.html"}),
    _campaign("cart-value", conditions={"cart.value": {"$gt": 50}, "cart.items": {"$gte": 1}}),
    _campaign("gold-members", segment="gold"),
    _campaign("wishlisters", conditions={"history.events.wishlist": {"$gte": 1}}),
    _campaign("hero-new", conditions={"visit.new": True}, group="hero", priority=5),
    _campaign("hero-all", group="hero"),
    _campaign("banner-1", selector="#banner", priority=3),
    _campaign("banner-2", selector="#banner", weights=(0.1, 0.9)),
    _campaign("expired", schedule={"start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z"}),
    _campaign("running", schedule={"start": "2020-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z"}),
    _campaign("on-scroll", trigger={"scroll": 50}),
    _campaign("google-mobile-deep", segment="from-google", conditions={"visit.pageviews": {"$gte": 2}}),
]
PARITY_CONFIG = {"segments": SEGMENTS, "campaigns": CAMPAIGNS, "settings": SETTINGS}
assert len(CAMPAIGNS) >= 30

# Each page of e2e/pages/targeting*.html: title, <html lang>, page type.
PAGES = {"/targeting.html": ("Targeting — home", "en", None),
         "/targeting-b.html": ("Targeting — another page", "en", None),
         "/targeting-product.html": ("Mug en grès — Targeting", "fr", "product"),
         "/targeting-cart.html": ("Targeting — cart", "en", "cart")}
UA = {d["description"]: d["user_agent"] for d in DEVICES}


class Visitor:
    """What the SDK should know about one visitor, predicted from docs/DESIGN.md: the visit
    state of "Browser storage" and the attribute tree of "Attributes"."""

    def __init__(self, ua, zone, touch, lang, screen):
        self.ua, self.zone, self.touch, self.lang, self.screen = ua, zone, touch, lang, screen
        self.state = None
        self.products, self.categories, self.events = [], [], {}

    def view(self, now, url, referer, source):
        """A page view at `now` (ms); `source` is [source, medium], or None for an internal or
        direct one (or one from an excluded referrer)."""
        s, parts = self.state, urlsplit(url)
        query = {}
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            query.setdefault(k, v)
        utm = {k: query["utm_" + k] for k in ("source", "medium", "campaign", "term", "content")
               if "utm_" + k in query}
        # a new session after 30 minutes, or on an arrival from another source; UTM values alone update it
        if s is None or now - s["l"] >= 30 * 60 * 1000 or source and source != s["r"]:
            before = s or {}
            s = self.state = {"d": None if s is None else (now - s["l"]) // 86_400_000, "n": before.get("n", 0) + 1,
                              "s": now, "p": 0, "g": parts.path, "r": source or ["direct", "direct"], "u": utm,
                              "t": before.get("t", 0), "h": before.get("h", [])}
        elif utm:
            s["u"] = utm
        s["p"] += 1
        s["t"] += 1
        s["l"] = now
        s["h"] = ([p for p in s["h"] if p != parts.path] + [parts.path])[-20:]
        self.now, self.url, self.query, self.referer = now, url, query, referer or ""
        self.cart, self.user = {}, {}
        if parts.path == "/targeting-product.html":
            for name, lst in (("sku", self.products), ("cat", self.categories)):
                if query[name] in lst:
                    lst.remove(query[name])
                lst.insert(0, query[name])

    def attributes(self):
        s, parts = self.state, urlsplit(self.url)
        title, lang, kind = PAGES[parts.path]
        local = datetime.fromtimestamp(self.now / 1000, ZoneInfo(self.zone))
        page = {"url": self.url, "path": parts.path, "host": parts.hostname, "query": self.query, "title": title,
                "lang": lang, "scroll": 0, "time": 0, "exit_intent": False, "idle": 0}
        if kind:
            page["type"] = kind
        return {
            "page": page,
            "referrer": {"url": self.referer, "host": urlsplit(self.referer).hostname or "",
                         "source": s["r"][0], "medium": s["r"][1]},
            "utm": s["u"],
            "visit": {"new": s["n"] == 1, "returning": s["n"] > 1, "count": s["n"], "pageviews": s["p"],
                      "total_pageviews": s["t"], "days_since_last": s["d"], "landing": s["g"],
                      "time_on_site": (self.now - s["s"]) // 1000},
            "time": {"hour": local.hour, "weekday": (local.weekday() + 1) % 7, "date": local.date().isoformat()},
            "device": {**device_for_ua(self.ua), "touch": self.touch, "lang": self.lang, "screen": self.screen},
            "geo": {"country": None, "region": None, "city": None, "continent": None, "timezone": None},
            "history": {"pages": s["h"][::-1], "products": self.products[:20], "categories": self.categories[:20],
                        "events": self.events},
            "cart": self.cart,
            "user": self.user,
        }


START = datetime(2026, 11, 23, 7, 45, tzinfo=timezone.utc)  # a Monday
# (user agent, time zone, touch, locale, screen, page views). A page view: (minutes after
# START, path and query, referer ("@" + path: the previous page of this site), [source,
# medium] when it brings one, what the page then does: "cart" sets the cart, "gold" and
# "wishlist" call vitrina.set / vitrina.track).
JOURNEYS = {
    "iphone-newsletter": (UA["iPhone, Safari, iOS 18"], "Europe/Paris", True, "fr-FR", (390, 844), [
        (0, "/targeting.html?utm_source=Newsletter&utm_medium=email&utm_campaign=Spring_sale", None,
         ["newsletter", "email"], ()),
        (0.5, "/targeting-product.html?sku=mug-1&cat=kitchen", "@/targeting.html", None, ()),
        (1.5, "/targeting-cart.html", "@/targeting-product.html", None, ("cart", "gold", "wishlist")),
    ]),
    "windows-google": (UA["Windows, Edge (Edg)"], "America/New_York", False, "en-US", (1366, 768), [
        (0, "/targeting-b.html", "https://www.google.com/search?q=stoneware+mug", ["google", "search"], ()),
        (2, "/targeting-product.html?sku=kettle-2&cat=tea&via=gtag", "@/targeting-b.html", None, ()),
        (3, "/targeting-product.html?sku=mug-1&cat=kitchen", "@/targeting-product.html", None, ()),
        (4, "/targeting.html", "@/targeting-product.html", None, ("wishlist",)),
    ]),
    "tablet-facebook-ad": (UA["Galaxy Tab S9, Chrome"], "Asia/Tokyo", True, "de-DE", (800, 1280), [
        (0, "/targeting-product.html?sku=mug-1&cat=kitchen&fbclid=IwAR0x", "https://m.facebook.com/",
         ["facebook", "paid"], ()),
        (0.2, "/targeting.html", "@/targeting-product.html", None, ()),
        (5, "/targeting-cart.html", "@/targeting.html", None, ("cart",)),
    ]),
    "mac-returning": (UA["macOS, Safari"], "Europe/London", False, "en-GB", (1512, 982), [
        (0, "/targeting.html", None, None, ()),
        (3 * 24 * 60 + 10, "/targeting-b.html", "https://blog.example.org/best-mugs",
         ["blog.example.org", "referral"], ()),
        (3 * 24 * 60 + 11, "/targeting-product.html?sku=mug-1&cat=kitchen", "@/targeting-b.html", None, ("gold",)),
        # back from paying (an excluded referrer): the same session; then a newsletter click: a new one
        (3 * 24 * 60 + 14, "/targeting-cart.html", "https://checkout.pay.example/done", None, ("cart",)),
        (3 * 24 * 60 + 16, "/targeting.html?utm_source=brevo&utm_medium=email", None, ["brevo", "email"], ()),
    ]),
    "holdout-linux": (UA["Linux, Firefox"], "UTC", False, "en-US", (1920, 1080), [
        (0, "/targeting.html", "https://duckduckgo.com/", ["duckduckgo", "search"], ()),
        (1, "/targeting-product.html?sku=mug-1&cat=kitchen", "@/targeting.html", None, ("wishlist",)),
    ]),
}


def _visitor_ids(site):
    """A fixed visitor id per journey: the holdout one in the site's holdout (which hashes the
    site's name), the others not, one of them outside half-traffic's traffic and one inside."""
    def fits(name, vid):
        held = bucket_hash("holdout:" + site.name, vid) < SETTINGS["holdout"]
        inside = bucket_hash("half-traffic", vid) < 0.5
        traffic = {"iphone-newsletter": inside, "windows-google": not inside}.get(name, True)
        return held == name.startswith("holdout") and traffic
    ids = {}
    for name in JOURNEYS:
        ids[name] = next(vid for vid in (f"parity-visitor-{n:03d}" for n in range(1000))
                         if vid not in ids.values() and fits(name, vid))
    return ids


def _browser_decision(log, keys):
    """{campaign: (variation or None, reason)} from the last `[vitrina]` debug line of each."""
    out = {}
    for line in log:
        if line.startswith("[vitrina] "):
            _, key, variation, reason = line.split(" ", 3)
            out[key] = (None if variation == "null" else variation, reason)
    assert set(out) == set(keys), set(keys) ^ set(out)
    return out


def _assert_same(browser, server, where):
    for key, (variation, reason) in browser.items():
        expected = (server["variations"].get(key), server["reasons"][key])
        if reason == f"sticky {variation}":
            # Shown to this visitor before: the server, which keeps no assignments, buckets the same.
            assert variation == expected[0], (where, key, expected)
            assert re.search(r"matched; bucket 0\.\d{4}$", expected[1]), (where, key, expected)
        else:
            assert (variation, reason) == expected, (where, key)


def test_browser_and_decide_agree_on_every_campaign(new_context, vitrina):
    site = vitrina.new_site(PARITY_CONFIG)
    keys = [c["key"] for c in CAMPAIGNS]
    ids = _visitor_ids(site)
    seen_reasons, holdouts = set(), 0
    for name, (ua, zone, touch, lang, (width, height), views) in JOURNEYS.items():
        context = new_context(user_agent=ua, timezone_id=zone, has_touch=touch, locale=lang,
                              viewport={"width": min(width, 1280), "height": min(height, 720)},
                              screen={"width": width, "height": height})
        context.add_cookies([{"name": "vtr_id", "value": ids[name], "url": site.shop_url}])
        page = context.new_page()
        log = []
        page.on("console", lambda m: log.append(m.text))
        visitor = Visitor(ua, zone, touch, lang, {"width": width, "height": height})
        for minutes, path, referer, source, actions in views:
            now = START + timedelta(minutes=minutes)
            page.clock.set_fixed_time(now)
            url = site.url(path + ("&" if "?" in path else "?") + "vitrina_debug=1")
            if referer and referer.startswith("@"):
                referer = visitor.url  # the previous page view's URL
            now_ms = int(now.timestamp() * 1000)
            log.clear()
            page.goto(url, referer=referer)
            page.evaluate(READY)
            wait_for_debug(page)
            visitor.view(now_ms, url, referer, source)
            if "cart" in actions:  # targeting-cart.html itself calls vitrina.set({cart: ...})
                visitor.cart = {"value": 64.5, "items": 3}
            if "wishlist" in actions:
                page.evaluate("vitrina.track('wishlist')")
                visitor.events["wishlist"] = visitor.events.get("wishlist", 0) + 1
            if "gold" in actions:
                page.evaluate("vitrina.set({plan: 'gold'})")  # re-decides, with the wishlist count too
                visitor.user = {"plan": "gold"}
            elif "wishlist" in actions:
                page.evaluate("vitrina.refresh()")
            browser = _browser_decision(log, keys)
            response = site.api("POST", "/decide", {"visitor_id": ids[name], "attributes": visitor.attributes(),
                                                    "now": now_ms})
            assert response.status == 200, response.body
            server = response.json()
            where = f"{name} {path} {actions}"
            _assert_same(browser, server, where)
            in_page = page.evaluate("(ks) => ks.map((k) => vitrina.getVariation(k))", keys)
            assert in_page == [server["variations"].get(k) for k in keys], where
            seen_reasons |= {re.sub(r" .*", "", r) for _, r in browser.values()}
            holdouts += server["holdout"]
        context.close()
    # The journeys reach every kind of reason.
    assert holdouts == 2
    assert seen_reasons >= {"all", "segment", "conditions", "page", "waiting", "excluded", "not", "sticky",
                            "outside", "holdout;"}, seen_reasons


# --- decide from the inputs the browser resolves itself ---

INPUT_CAMPAIGNS = [
    _campaign("in-mobile", conditions={"device.type": "mobile"}),
    _campaign("in-ios-safari", conditions={"device.os": "ios", "device.browser": "safari"}),
    _campaign("in-desktop-windows", conditions={"device.type": "desktop", "device.os": "windows"}),
    _campaign("in-morning", conditions={"time.hour": {"$lt": 12}}),
    _campaign("in-evening", conditions={"time.hour": {"$gte": 18}}),
    _campaign("in-weekend", conditions={"time.weekday": {"$in": [0, 6]}}),
    _campaign("in-late-november", conditions={"time.date": {"$gte": "2026-11-24"}}),
    _campaign("in-no-country", conditions={"geo.country": None}),
    _campaign("in-everyone"),
]
INPUTS_CONFIG = {"campaigns": INPUT_CAMPAIGNS, "settings": {**SETTINGS, "holdout": 0}}


def test_decide_from_ip_user_agent_and_time_zone_agrees_with_the_browser(new_context, vitrina):
    """No attributes: the server resolves device from the user agent, geo from the address and
    time from `now` in the visitor's zone, as the tag does, and decides what the browser decided."""
    site = vitrina.new_site(INPUTS_CONFIG)
    keys = [c["key"] for c in INPUT_CAMPAIGNS]
    # (user agent, IANA zone, minutes after START): START is Monday 07:45 UTC
    for n, (ua, zone, minutes) in enumerate([
            (UA["iPhone, Safari, iOS 18"], "Europe/Paris", 0),  # 08:45 Monday
            (UA["Windows, Edge (Edg)"], "America/New_York", 0),  # 02:45 Monday
            (UA["Galaxy Tab S9, Chrome"], "Asia/Tokyo", 10 * 60),  # 02:45 Tuesday
            (UA["macOS, Safari"], "Pacific/Kiritimati", 5 * 24 * 60)]):  # Sunday 07:45 UTC, 21:45 there
        visitor = f"inputs-visitor-{n:03d}"
        context = new_context(user_agent=ua, timezone_id=zone)
        context.add_cookies([{"name": "vtr_id", "value": visitor, "url": site.shop_url}])
        page = context.new_page()
        log = []
        page.on("console", lambda m: log.append(m.text))
        now = START + timedelta(minutes=minutes)
        page.clock.set_fixed_time(now)
        page.goto(site.url("/targeting.html?vitrina_debug=1"))
        # device.os and .browser campaigns wait for the tag's one request of the context: 'ready' once they decided
        page.evaluate("new Promise((resolve) => vitrina.on('ready', resolve))")
        browser = _browser_decision(log, keys)
        response = site.api("POST", "/decide", {"visitor_id": visitor, "ip": "127.0.0.1", "user_agent": ua,
                                                "now": int(now.timestamp() * 1000), "timezone": zone})
        assert response.status == 200, response.body
        server = response.json()
        assert server["ignored"] == [] and set(server["resolved"]) == {"geo", "device", "time"}
        _assert_same(browser, server, f"{ua} {zone}")
        context.close()
