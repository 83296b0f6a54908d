"""The shared, deterministic workload: a realistic site config of 200 live campaigns, its
compiled bundle, visitor attribute profiles, and the equivalent GrowthBook features.

Everything is generated from a fixed seed by this code (no data file is committed), written
once per run to bench/out/workload.json and read from there by every benchmark that needs it
(eval_browser, decide_python, collect, tag_serving).

Conditions use only attributes and operators on which Vitrina and GrowthBook agree
(regexes on strings, `$in` on scalars and arrays, `$vgte` on 3-part versions, numeric
comparisons on attributes every profile has), so both engines target the same visitors:
eval_browser checks that they do before it times anything.
"""
import json
import random
from datetime import datetime, timezone
from pathlib import Path

from server.configs.compiler import compile_bundle
from server.configs.validation import validate_config

OUT = Path(__file__).resolve().parent / "out"
SITE = "bench"
N_CAMPAIGNS = 200
N_PROFILES = 50
SEED = 20261123

CATEGORIES = ["shoes", "sneakers", "boots", "bags", "jackets", "dresses", "jeans", "watches", "beauty", "kids"]
COUNTRIES = [("FR", "EU"), ("DE", "EU"), ("ES", "EU"), ("IT", "EU"), ("GB", "EU"), ("US", "NA"), ("CA", "NA"),
             ("BR", "SA"), ("JP", "AS")]
SOURCES = [("google", "search"), ("bing", "search"), ("facebook", "social"), ("instagram", "social"),
           ("direct", "direct"), ("newsletter", "email"), ("partner-blog.example", "referral")]
UTM_CAMPAIGNS = ["Black-Friday-2026", "black_friday_teaser", "winter-sale", "SPRING_DROP", "retargeting-cart",
                 "brand-search", "newsletter-week-47"]
SELECTORS = ["#hero", "#hero h1", ".cta", "#promo-banner", "#reco h2", ".price-badge", "#checkout-upsell",
             "#header-bar", ".shipping-note", "#footer-newsletter", ".product-title", "#size-guide"]
GROUPS = ["home-hero", "promo-banner", "checkout", "header", "reco", "pricing"]


def _segments():
    return {
        "newsletter": {"utm.source": {"$ini": ["newsletter", "mailchimp", "brevo"]}},
        "google_search": {"referrer.source": "google", "referrer.medium": "search"},
        "social": {"referrer.medium": "social"},
        "mobile": {"device.type": "mobile"},
        "mobile_fr": {"$and": [{"device.type": "mobile"}, {"geo.country": "FR"}]},
        "returning_buyer": {"visit.returning": True, "history.events.purchase": {"$gte": 1}},
        "new_visitor": {"visit.new": True},
        "big_cart": {"cart.value": {"$gte": 100}},
        "cart_abandoner": {"cart.items": {"$gte": 1}, "page.type": {"$nin": ["cart", "checkout"]}},
        "vip": {"user.tags": {"$in": ["vip", "gold"]}},
        "app_modern": {"user.app_version": {"$vgte": "4.2.0"}},
        "app_legacy": {"user.app_version": {"$vlt": "3.0.0"}},
        "shoes_fan": {"history.categories": {"$in": ["shoes", "sneakers", "boots"]}},
        "eu": {"geo.continent": "EU"},
        "north_america": {"geo.country": {"$in": ["US", "CA"]}},
        "evening": {"time.hour": {"$gte": 18}},
        "weekend": {"time.weekday": {"$in": [0, 6]}},
        "black_friday_utm": {"utm.campaign": {"$regexi": "black[-_ ]?friday"}},
        "ios": {"device.os": {"$regex": "^(iOS|iPadOS)"}},
        "desktop_chrome": {"$and": [{"device.type": "desktop"}, {"device.browser": {"$regexi": "^chrom"}}]},
        "engaged": {"$or": [{"visit.pageviews": {"$gte": 5}}, {"history.events.add_to_cart": {"$gte": 2}}]},
        "french_speaking": {"device.lang": {"$regex": "^fr(-|$)"}},
        "product_viewers": {"history.products": {"$in": ["p1001", "p1002", "p1003", "p2001", "p2002"]}},
        "high_value_returning": {"$and": [{"visit.count": {"$gt": 3}},
                                          {"$or": [{"cart.value": {"$gt": 80}}, {"user.tags": {"$in": ["vip"]}}]}]},
    }


def _leaf(rng):
    kind = rng.randrange(14)
    if kind == 0:
        cats = "|".join(rng.sample(CATEGORIES, rng.randint(1, 3)))
        return {"page.path": {"$regex": f"^/(fr/|de/)?c/({cats})(/|$)"}}
    if kind == 1:
        return {"referrer.host": {"$regexi": rng.choice([r"(^|\.)GOOGLE\.", r"(^|\.)bing\.com$", r"facebook|instagram"])}}
    if kind == 2:
        return {"history.categories": {"$in": rng.sample(CATEGORIES, rng.randint(1, 4))}}
    if kind == 3:
        return {"user.app_version": {"$vgte": f"{rng.randint(2, 5)}.{rng.randint(0, 12)}.{rng.randint(0, 9)}"}}
    if kind == 4:
        return {"device.type": {"$in": rng.sample(["mobile", "desktop", "tablet"], rng.randint(1, 2))}}
    if kind == 5:
        return {"geo.country": rng.choice(COUNTRIES)[0]}
    if kind == 6:
        return {"cart.value": {rng.choice(["$gte", "$lt"]): rng.choice([25, 50, 80, 120, 200])}}
    if kind == 7:
        return {"visit.count": {"$gt": rng.randint(1, 6)}}
    if kind == 8:
        return {"utm.campaign": {"$regexi": rng.choice(["black[-_ ]?friday", "^winter", "retarget", "sale$"])}}
    if kind == 9:
        low = rng.randint(6, 20)
        return {"time.hour": {"$gte": low, "$lt": low + rng.randint(2, 6)}}
    if kind == 10:
        return {"user.tags": {"$in": rng.sample(["vip", "gold", "newsletter", "b2b", "student", "employee"], 2)}}
    if kind == 11:
        return {"device.lang": {"$regex": rng.choice(["^fr", "^de", "^en-(GB|US)", "^(es|it)"])}}
    if kind == 12:
        return {"history.products": {"$in": [f"p{rng.randint(1000, 1010)}" for _ in range(rng.randint(2, 6))]}}
    return {"page.query.ref": {"$in": ["spring", "affiliate-7", "blog"]}}


def _condition(rng, depth=0):
    """A nested $and/$or tree of 1-3 leaves or subtrees, as merchants click them together."""
    if depth >= 2 or rng.random() < 0.35:
        return _leaf(rng)
    op = rng.choice(["$and", "$or"])
    return {op: [_condition(rng, depth + 1) for _ in range(rng.randint(2, 3))]}


def _pages(rng):
    kind = rng.randrange(6)
    if kind == 0:
        return None  # every page
    if kind == 1:
        return {"page.type": rng.choice(["product", "category", "home", "cart", "checkout"])}
    if kind == 2:
        return {"page.path": {"$in": ["/", "/index.html", "/fr/", "/de/"]}}
    if kind == 3:
        return {"page.path": {"$regex": rng.choice([r"^/(fr/|de/)?p/", r"^/(fr/|de/)?c/", r"^/checkout(/|$)", r"^/cart"])}}
    if kind == 4:
        return {"$or": [{"page.type": "product"}, {"page.path": {"$regex": r"^/(fr/|de/)?c/"}}]}
    return {"page.type": {"$in": ["product", "category", "search"]}}


def _actions(rng, i):
    actions = []
    for _ in range(rng.randint(1, 3)):
        selector = rng.choice(SELECTORS) if rng.random() < 0.6 else f"#slot-{i}-{rng.randrange(100)}"
        kind = rng.randrange(4)
        if kind == 0:
            actions.append({"selector": selector, "text": f"Offer {i}: free shipping over {rng.choice([30, 50])} EUR"})
        elif kind == 1:
            actions.append({"selector": selector, "addClass": f"promo-{i}"})
        elif kind == 2:
            actions.append({"selector": selector, "attr": {"href": f"/promo/{i}?utm_content=v{rng.randrange(9)}"}})
        else:
            actions.append({"selector": selector, "style": {"background": "#ffe58a", "font-weight": "600"}})
    if rng.random() < 0.3:
        actions.append({"css": f".promo-{i}{{outline:2px solid #e33}}"})
    return actions


def make_config(rng):
    segments = _segments()
    campaigns = []
    for i in range(N_CAMPAIGNS):
        experiment = rng.random() < 0.4
        n_var = rng.choice([2, 2, 3]) if experiment else rng.choice([1, 1, 2])
        variations = []
        for j in range(n_var):
            control = experiment and j == 0
            variations.append({"key": "control" if control else f"v{j}",
                               "actions": [] if control else _actions(rng, i)})
        if n_var > 1 and rng.random() < 0.3:
            weights = rng.choice([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]] if n_var == 2 else [[0.5, 0.25, 0.25], [0.6, 0.2, 0.2]])
            for v, w in zip(variations, weights):
                v["weight"] = w
        who = rng.randrange(4)  # segment, conditions, both, or every visitor
        campaign = {"key": f"c{i:03d}-{'exp' if experiment else 'perso'}",
                    "type": "experiment" if experiment else "personalization", "status": "live",
                    "priority": rng.randint(0, 20), "variations": variations, "goals": ["purchase", "add_to_cart"]}
        if who in (0, 2):
            campaign["segment"] = rng.choice(sorted(segments))
        if who in (1, 2):
            campaign["conditions"] = _condition(rng)
        pages = _pages(rng)
        if pages is not None:
            campaign["pages"] = pages
        if rng.random() < 0.3:
            campaign["group"] = rng.choice(GROUPS)
        if rng.random() < 0.25:
            campaign["schedule"] = {"start": "2025-01-01T00:00:00Z", "end": "2098-12-31T23:59:59Z"}
        if rng.random() < 0.2:
            campaign["cap"] = {"per_visitor": rng.randint(3, 10), "per_session": 1}
        if rng.random() < 0.15:
            campaign["trigger"] = rng.choice([{"scroll": 50}, {"time_on_page": 20}, {"exit_intent": True}])
        if rng.random() < 0.2:
            campaign["traffic"] = rng.choice([0.5, 0.8])
        campaigns.append(campaign)
    return {
        "segments": segments,
        "goals": {"purchase": {"event": "purchase"}, "add_to_cart": {"click": "button.add-to-cart"},
                  "thanks_page": {"pageview": {"page.path": "/thanks"}}},
        "campaigns": campaigns,
        "settings": {"holdout": 0.05, "consent": "implied", "antiflicker_ms": 400},
    }


def make_profile(rng, i):
    """Attributes as the SDK fills them (docs: hot data namespaces), for one page view."""
    country, continent = rng.choice(COUNTRIES)
    source, medium = rng.choice(SOURCES)
    device = rng.choice(["mobile", "mobile", "desktop", "tablet"])
    os_ = {"mobile": rng.choice(["iOS 18.1", "Android 15"]), "tablet": "iPadOS 18", "desktop": rng.choice(["Windows 11", "macOS 15"])}[device]
    cats = rng.sample(CATEGORIES, rng.randint(0, 4))
    page_type = rng.choice(["home", "category", "product", "product", "cart", "checkout", "search"])
    prefix = rng.choice(["", "/fr", "/de"])
    path = {"home": prefix + "/", "category": f"{prefix}/c/{rng.choice(CATEGORIES)}/",
            "product": f"{prefix}/p/{rng.choice(CATEGORIES)}/p{rng.randint(1000, 1010)}",
            "cart": "/cart", "checkout": "/checkout/shipping", "search": "/search"}[page_type]
    query = {"ref": rng.choice(["spring", "blog", "x"])} if rng.random() < 0.2 else {}
    visits = rng.randint(1, 9)
    attrs = {
        "page": {"url": f"https://shop.example{path}", "path": path, "host": "shop.example", "query": query,
                 "title": f"Shop - {page_type}", "type": page_type, "lang": rng.choice(["fr", "en", "de"]),
                 "scroll": 0, "time": 0, "exit_intent": False, "idle": 0},
        "referrer": {"url": f"https://www.{source}.com/" if medium in ("search", "social") else "",
                     "host": f"www.{source}.com" if medium in ("search", "social") else "",
                     "source": source, "medium": medium},
        "utm": {},
        "visit": {"new": visits == 1, "returning": visits > 1, "count": visits, "pageviews": rng.randint(1, 12),
                  "total_pageviews": rng.randint(1, 80), "days_since_last": rng.randint(0, 40),
                  "landing": path, "time_on_site": rng.randint(0, 900)},
        "time": {"hour": rng.randint(0, 23), "weekday": rng.randint(0, 6), "date": "2026-11-27"},
        "device": {"type": device, "os": os_, "browser": rng.choice(["Chrome", "Safari", "Firefox", "Chromium"]),
                   "touch": device != "desktop", "lang": rng.choice(["fr-FR", "fr", "de-DE", "en-GB", "en-US", "es-ES"]),
                   "screen": {"width": rng.choice([390, 768, 1440, 1920]), "height": rng.choice([844, 1024, 900, 1080])}},
        "geo": {"country": country, "region": "", "city": "", "continent": continent, "timezone": "Europe/Paris"},
        "history": {"pages": [path, "/"], "products": [f"p{rng.randint(1000, 1010)}" for _ in range(rng.randint(0, 4))],
                    "categories": cats, "events": {"purchase": rng.choice([0, 0, 1, 3]), "add_to_cart": rng.randint(0, 4)}},
        "cart": {"value": rng.choice([0, 0, 19.9, 54.0, 99.5, 149.0, 310.0]), "items": rng.randint(0, 5)},
        "user": {"app_version": f"{rng.randint(2, 5)}.{rng.randint(0, 12)}.{rng.randint(0, 9)}",
                 "tags": rng.sample(["vip", "gold", "newsletter", "b2b", "student"], rng.randint(0, 2))},
    }
    if rng.random() < 0.45:
        attrs["utm"] = {"source": rng.choice(["Newsletter", "google", "facebook", "mailchimp"]),
                        "medium": rng.choice(["email", "cpc", "social"]), "campaign": rng.choice(UTM_CAMPAIGNS)}
    return {"visitor_id": f"v1.{rng.getrandbits(64):016x}{i:04d}", "attributes": attrs}


def growthbook_features(bundle):
    """The same targeting as GrowthBook features: one feature per campaign, one rule whose
    `condition` is the $and of the campaign's pages, segment and conditions; an experiment rule
    (variations, weights, coverage = traffic, hashed on `id` with the campaign's seed), or a
    force rule with the same coverage for a single-variation personalization."""
    segments = bundle["segments"]
    features = {}
    for c in bundle["campaigns"]:
        parts = [p for p in (c["pages"], segments[c["segment"]] if c["segment"] else None, c["conditions"]) if p is not None]
        rule = {"hashAttribute": "id", "seed": c["seed"], "coverage": c["traffic"]}
        if parts:
            rule["condition"] = parts[0] if len(parts) == 1 else {"$and": parts}
        keys = [v["key"] for v in c["variations"]]
        if len(keys) == 1:
            rule["force"] = keys[0]
        else:
            rule.update(key=c["key"], variations=keys, weights=[v["weight"] for v in c["variations"]])
        features[c["key"]] = {"defaultValue": None, "rules": [rule]}
    return features


def build():
    rng = random.Random(SEED)
    config = make_config(rng)
    problems = validate_config(config)
    if problems:
        raise RuntimeError(f"generated config is invalid: {problems[:3]}")
    bundle = compile_bundle(SITE, 1, config, now=datetime(2026, 11, 23, tzinfo=timezone.utc))
    profiles = [make_profile(rng, i) for i in range(N_PROFILES)]
    return {"config": config, "bundle": bundle, "profiles": profiles, "growthbook_features": growthbook_features(bundle)}


_cache = {}


def load():
    """The workload, generated and written to bench/out/workload.json once per run."""
    if "data" not in _cache:
        data = build()
        OUT.mkdir(exist_ok=True)
        path = OUT / "workload.json"
        path.write_text(json.dumps(data, separators=(",", ":")))
        _cache["data"], _cache["path"] = data, path
    return _cache["data"]


def path():
    load()
    return _cache["path"]
