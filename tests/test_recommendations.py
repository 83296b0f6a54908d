"""Strategies on a small planted shop, through the public endpoint, on both store backends:
each returns what the planted structure implies; filters, merchandising rules and the fallback
chain apply and say what served; signals from collect count, and a flood from one visitor
moves nothing."""
import json
import time

import pytest
from conftest import make_site
from servers import redis_server

from server import create_app
from server.cache import app_caches
from server.recs.build import build_site
from server.store import get_store

TS = int(time.time() * 1000)  # collect refuses events more than 3 days old
API = "/api/v1/sites/shop"
RECS = "/v1/sites/shop/recommendations"

# category, price, brand, availability (+ extra fields)
CATALOGUE = {
    "mug-a": ("Kitchen > Mugs", 10, "Acme", "in_stock", {"custom_label_0": "standard"}),
    "mug-b": ("Kitchen > Mugs", 11, "Acme", "in_stock", {}),
    "mug-c": ("Kitchen > Mugs", 12, "Borealis", "in_stock", {}),
    "mug-a-red": ("Kitchen > Mugs", 10, "Acme", "in_stock", {}),  # a variant of mug-a: never similar to it
    "mug-e": ("Kitchen > Mugs", 24, "Cobalt", "in_stock", {}),
    "mug-d": ("Kitchen > Mugs", 30, "Acme", "in_stock", {}),
    "beans-1": ("Kitchen > Coffee", 8, "Dune", "in_stock", {"custom_label_0": "high_margin"}),
    "spoon-1": ("Kitchen > Spoons", 3, "Ember", "in_stock", {}),
    "spoon-out": ("Kitchen > Spoons", 3, "Ember", "out_of_stock", {}),
    "rake-1": ("Garden > Tools", 20, "Fjord", "in_stock", {}),
    "rake-2": ("Garden > Tools", 21, "Fjord", "in_stock", {}),
}
# planted co-purchases: (how many customers, items of each one's order)
ORDERS = [(6, ["mug-a", "beans-1"]), (4, ["mug-a", "spoon-1"]), (3, ["mug-a", "spoon-out"]),
          (2, ["mug-a", "rake-1"]), (3, ["rake-1", "rake-2"]), (3, ["mug-e"]), (1, ["mug-a", "mug-b"])]
# planted co-views: (how many visitors, items viewed in one session)
SESSIONS = [(3, ["mug-a", "mug-c"]), (1, ["mug-a", "mug-b"]), (4, ["rake-2"])]


def feed_record(pid):
    category, price, brand, availability, extra = CATALOGUE[pid]
    record = {"id": pid, "title": pid.replace("-", " ").title(), "link": f"https://shop.example/p/{pid}",
              "image_link": f"https://shop.example/i/{pid}.png", "price": f"{price:.2f} EUR", "brand": brand,
              "availability": availability, "product_type": category, **extra}
    if pid.startswith("mug-a"):
        record["item_group_id"] = "mug-a"
    return record


def jsonl(records):
    return "\n".join(json.dumps(r) for r in records)


@pytest.fixture(params=["sqlite", "redis"])
def app(request, tmp_path):
    env = {"VITRINA_DATABASE": str(tmp_path / "v.sqlite3"), "VITRINA_SECRET_KEY": "test-secret-key-0123456789",
           "VITRINA_RATE_CLIENT": "0", "VITRINA_RATE_SITE": "0"}
    if request.param == "redis":
        env["VITRINA_REDIS_URL"] = request.getfixturevalue("redis_url")
    app = create_app(env=env)
    if request.param == "redis":
        with app.app_context():
            get_store().r.flushall()
    return app


def item_event(n, action, items, session=1):
    return {"id": f"item-event-{n:06d}", "type": "item", "action": action, "items": items, "session": session,
            "ts": TS}


def collect(client, visitor, events):
    response = client.post("/v1/sites/shop/collect", data=json.dumps({"visitor_id": visitor, "events": events}))
    assert response.status_code == 204, response.get_json()


def planted(app, client):
    headers = make_site(app, "shop")
    records = jsonl(feed_record(pid) for pid in CATALOGUE)
    assert client.put(f"{API}/catalog", data=records, headers={**headers, "Content-Type": "application/x-ndjson"}
                      ).get_json()["errors"] == []
    orders, n = [], 0
    for count, items in ORDERS:
        for _ in range(count):
            n += 1
            orders.append({"order_id": f"o-{n}", "customer_id": f"c-{n}", "ts": int(time.time() * 1000) - 3600_000,
                           "items": [{"id": i, "quantity": 1, "price": 5} for i in items]})
    answer = client.post(f"{API}/orders", data=jsonl(orders), headers={**headers, "Content-Type": "application/x-ndjson"})
    assert answer.get_json()["imported"] == len(orders)
    n = 0
    for count, items in SESSIONS:
        for _ in range(count):
            n += 1
            collect(client, f"viewer-{n:04d}", [item_event(n * 100 + k, "view", [i]) for k, i in enumerate(items)])
    build(app)
    return headers


def build(app):
    with app.app_context():
        summary = build_site(get_store(), "shop")
    forget_recent_reads(app)
    return summary


def forget_recent_reads(app):
    """The endpoint reads rules, rankings and products at most 5 s old; a test does not wait."""
    for cache in app_caches(app).values():
        cache.clear()


@pytest.fixture
def shop(app):
    client = app.test_client()
    return client, planted(app, client)


def recs(client, query, status=200):
    response = client.get(f"{RECS}?{query}")
    assert response.status_code == status, response.get_json()
    return response.get_json()


def ids(answer):
    return [item["id"] for item in answer["items"]]


def test_bought_together_follows_the_planted_orders_and_hides_what_is_out_of_stock(shop):
    client, _ = shop
    answer = recs(client, "strategy=bought_together&items=mug-a&n=3")
    # cosine over buyers: beans-1 6/sqrt(16*6), spoon-1 4/sqrt(16*4), rake-1 2/sqrt(16*5); spoon-out
    # (3 buyers) is out of stock, mug-b (1 buyer together) is under the minimum support
    assert (answer["strategy"], answer["served_by"], ids(answer)) == ("bought_together", "bought_together",
                                                                       ["beans-1", "spoon-1", "rake-1"])
    first = answer["items"][0]
    assert first == {"id": "beans-1", "title": "Beans 1", "link": "https://shop.example/p/beans-1",
                     "image_link": "https://shop.example/i/beans-1.png", "price": 8.0, "sale_price": None,
                     "currency": "EUR", "availability": "in_stock", "brand": "Dune", "product_type": "Kitchen > Coffee"}
    assert "custom_label_0" not in first  # merchant-internal labels (margins) never reach a shopper


def test_the_answer_is_cacheable_public_and_deterministic(shop):
    client, _ = shop
    response = client.get(f"{RECS}?strategy=bought_together&items=mug-a&n=3")
    assert response.headers["Cache-Control"].startswith("public, max-age=")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert all(client.get(f"{RECS}?strategy=bought_together&items=mug-a&n=3").get_json() == response.get_json()
               for _ in range(3))


def test_filters_exclusions_price_category_and_availability(shop):
    client, _ = shop
    assert ids(recs(client, "strategy=bought_together&items=mug-a&n=2&exclude=beans-1")) == ["spoon-1", "rake-1"]
    assert ids(recs(client, "strategy=bought_together&items=mug-a&n=1&max_price=5")) == ["spoon-1"]
    assert ids(recs(client, "strategy=bought_together&items=mug-a&n=1&min_price=15")) == ["rake-1"]
    assert ids(recs(client, "strategy=bought_together&items=mug-a&n=2&category=Kitchen")) == ["beans-1", "spoon-1"]
    both = recs(client, "strategy=bought_together&items=mug-a&n=4&availability=in_stock,out_of_stock")
    assert ids(both) == ["beans-1", "spoon-1", "spoon-out", "rake-1"] and both["served_by"] == "bought_together"


def test_thin_data_is_filled_along_the_chain_which_says_what_served(shop):
    client, _ = shop
    # bought_together has 3 in stock for mug-a; similar fills with mug-b then mug-c; the mugs'
    # bestsellers then (mug-a, the anchor, left out): mug-e
    answer = recs(client, "strategy=bought_together&items=mug-a&n=4")
    assert (answer["served_by"], answer["filled_by"]) == ("bought_together", ["similar"])
    assert ids(answer) == ["beans-1", "spoon-1", "rake-1", "mug-b"]
    answer = recs(client, "strategy=bought_together&items=mug-a&n=6")
    assert answer["filled_by"] == ["similar", "bestsellers_in_category"]
    assert ids(answer)[3:] == ["mug-b", "mug-c", "mug-e"]
    assert recs(client, "strategy=bought_together&items=mug-a&n=3")["filled_by"] == []
    # an item nobody bought with anything
    answer = recs(client, "strategy=bought_together&items=mug-c&n=1")
    assert (answer["served_by"], ids(answer)) == ("similar", ["mug-b"])
    # no items at all: straight to bestsellers
    assert recs(client, "strategy=bought_together&n=2")["served_by"] == "bestsellers"
    # an unknown item (not in the feed) is no anchor
    assert recs(client, "strategy=similar&items=unknown-1&n=1")["served_by"] == "bestsellers"
    # nothing at all to show
    empty = recs(client, "strategy=recently_viewed&items=spoon-out")
    assert (empty["served_by"], empty["filled_by"], empty["items"]) == (None, [], [])


def test_similar_is_same_category_close_in_price_and_never_a_variant(shop):
    client, _ = shop
    answer = recs(client, "strategy=similar&items=mug-a&n=2")
    # mug-b: same brand + 0.9 closeness; mug-c: 0.8; mug-a-red is a variant; mug-e, mug-d too dear
    assert (answer["served_by"], ids(answer)) == ("similar", ["mug-b", "mug-c"])


def test_upsell_is_dearer_in_the_category_ranked_by_what_converts(shop):
    client, _ = shop
    answer = recs(client, "strategy=upsell&items=mug-a&n=3")
    # mug-e converts (3 buyers); mug-d is over 2.5 times the price; then nearer first
    assert (answer["served_by"], ids(answer)) == ("upsell", ["mug-e", "mug-b", "mug-c"])


def test_viewed_together_counts_sessions_with_a_minimum_support(shop):
    client, _ = shop
    answer = recs(client, "strategy=viewed_together&items=mug-a&n=1")
    assert (answer["served_by"], ids(answer)) == ("viewed_together", ["mug-c"])  # mug-b: one session only


def test_trending_decays_where_bestsellers_do_not(app, shop):
    client, headers = shop
    old = int((time.time() - 30 * 86_400) * 1000)
    orders = [{"order_id": f"old-{n}", "customer_id": f"old-{n}", "ts": old, "items": [{"id": "mug-d"}]}
              for n in range(20)]
    client.post(f"{API}/orders", data=jsonl(orders), headers={**headers, "Content-Type": "application/x-ndjson"})
    build(app)
    assert ids(recs(client, "strategy=bestsellers&n=1")) == ["mug-d"]  # 20 buyers, a month ago
    trending = ids(recs(client, "strategy=trending&n=11"))
    assert trending[0] == "mug-a" and trending[-1] == "mug-d"  # 10 half-lives later it weighs ~0.06


def test_bestsellers_per_category_recently_viewed_and_personal(shop):
    client, _ = shop
    garden = recs(client, "strategy=bestsellers&category=Garden&n=2")
    assert (garden["served_by"], ids(garden)) == ("bestsellers", ["rake-1", "rake-2"])
    recent = recs(client, "strategy=recently_viewed&items=rake-2,spoon-out,mug-a&n=4")
    assert (recent["served_by"], ids(recent)) == ("recently_viewed", ["rake-2", "mug-a"])
    personal = recs(client, "strategy=personal&items=mug-a&n=2")
    # beans-1 from bought_together (0.61), mug-c from viewed_together (0.87 = 3/sqrt(4*3))
    assert (personal["served_by"], ids(personal)) == ("personal", ["mug-c", "beans-1"])


def test_merchandising_boosts_buries_and_pins(app, shop):
    client, headers = shop
    url = f"{API}/merchandising"
    rules = {"rules": [{"action": "boost", "match": {"id": "spoon-1"}, "factor": 2}]}
    assert client.put(url, json=rules, headers=headers).status_code == 200
    forget_recent_reads(app)
    assert ids(recs(client, "strategy=bought_together&items=mug-a&n=3")) == ["spoon-1", "beans-1", "rake-1"]
    rules = {"rules": [{"action": "bury", "match": {"custom_label_0": "high_margin"}},
                       {"action": "pin", "id": "mug-d", "position": 2, "strategies": ["bought_together"]},
                       {"action": "pin", "id": "spoon-out", "position": 1},  # out of stock: never shown
                       {"action": "boost", "match": {"category": "Garden"}, "factor": 10,
                        "strategies": ["similar"]}]}  # not for this strategy
    assert client.put(url, json=rules, headers=headers).status_code == 200
    forget_recent_reads(app)
    answer = recs(client, "strategy=bought_together&items=mug-a&n=3")
    assert (answer["served_by"], ids(answer)) == ("bought_together", ["spoon-1", "mug-d", "rake-1"])
    # buried: after everything else, the fallbacks' items included
    assert ids(recs(client, "strategy=bought_together&items=mug-a&n=3&exclude=mug-d")) == ["spoon-1", "rake-1",
                                                                                         "mug-b"]
    assert ids(recs(client, "strategy=bought_together&items=mug-a&n=20&exclude=mug-d"))[-1] == "beans-1"


def test_bad_queries_are_refused_with_their_paths(shop):
    client, _ = shop
    answer = recs(client, "strategy=similar&items=a%20b,ok&n=0&exclude=" + ",".join(f"x{i}" for i in range(101))
                  + "&availability=maybe&min_price=-1&max_price=abc&unknown=1", status=400)
    assert answer["error"] == "invalid_query"
    assert [d["path"] for d in answer["details"]] == ["", "/items/0", "/exclude", "/n", "/availability",
                                                      "/min_price", "/max_price"]
    assert recs(client, "strategy=similar&items=" + ",".join(f"i{i}" for i in range(21)), status=400)[
        "details"][0]["path"] == "/items"
    assert recs(client, "strategy=similar&n=21", status=400)["details"][0]["path"] == "/n"
    assert recs(client, "strategy=similar&n=2&n=3", status=400)["details"][0]["message"] == "each parameter at most once"
    unknown = recs(client, "strategy=cheapest", status=404)
    assert unknown["error"] == "strategy_not_found" and unknown["details"][0]["path"] == "/strategy"
    missing = client.get("/v1/sites/nowhere/recommendations?strategy=similar")
    assert missing.status_code == 404 and missing.get_json()["error"] == "site_not_found"
    assert missing.headers["Access-Control-Allow-Origin"] == "*"


def test_signals_count_only_for_ids_in_the_feed(app, shop):
    client, _ = shop
    for n in range(14):
        collect(client, f"ghost-{n:04d}", [item_event(900_000 + n, "purchase", ["not-in-feed", "rake-2"])])
    build(app)
    with app.app_context():
        assert "bt:not-in-feed" not in get_store().rankings("shop", ["bt:not-in-feed"])
    # rake-2 gained 14 buyers: 17, above mug-a's 16
    assert ids(recs(client, "strategy=bestsellers&n=1")) == ["rake-2"]


def test_a_flood_from_one_visitor_moves_nothing(app, shop):
    """Once a visitor has viewed, carted and bought two items, a flood of the same from them (1,200
    events over 60 sessions and 400 baskets) changes no score: each score counts them once."""
    client, _ = shop
    names = ["bt:mug-a", "vt:mug-a", "bt:rake-2", "vt:rake-2", "bs", "tr", "bs:Kitchen", "tr:Garden"]
    n = 0

    def flood(batches):
        nonlocal n
        for _ in range(batches):
            events = []
            for k in range(20 if batches > 1 else 3):
                n += 1
                action = ("view", "cart", "purchase")[k % 3]
                events.append(item_event(500_000 + n, action, ["mug-a", "rake-2"], session=n))
            collect(client, "flooder-0001", events)

    flood(1)
    build(app)
    once = _rankings(app, names)
    flood(60)
    build(app)
    flooded = _rankings(app, names)
    for name in names:
        if name.startswith("tr"):  # time decays between the builds: a few seconds of a 3-day half-life
            assert [i for i, _ in json.loads(flooded[name])] == [i for i, _ in json.loads(once[name])]
            assert all(abs(a[1] - b[1]) < 1e-3 for a, b in zip(json.loads(flooded[name]), json.loads(once[name])))
        else:
            assert flooded.get(name) == once.get(name), name
    # and one visitor, under the minimum support, never makes a pair
    assert "rake-2" not in dict(json.loads(flooded["bt:mug-a"])) and "rake-2" not in dict(json.loads(flooded["vt:mug-a"]))
    assert ids(recs(client, "strategy=bought_together&items=mug-a&n=3")) == ["beans-1", "spoon-1", "rake-1"]


def _rankings(app, names):
    with app.app_context():
        return get_store().rankings("shop", names)


def test_a_second_honest_visitor_does_count(app, shop):
    """The other side of the flood cap: two distinct visitors make a pair."""
    client, _ = shop
    for v in range(2):
        collect(client, f"honest-{v:04d}", [item_event(700_000 + v, "purchase", ["rake-2", "spoon-1"])])
    build(app)
    assert "spoon-1" in ids(recs(client, "strategy=bought_together&items=rake-2&n=20&availability=in_stock"))


def test_an_unreachable_store_is_a_503_in_the_error_shape(tmp_path):
    with redis_server() as (url, _, proc):
        env = {"VITRINA_DATABASE": str(tmp_path / "v.sqlite3"), "VITRINA_SECRET_KEY": "test-secret-key-0123456789",
               "VITRINA_REDIS_URL": url}
        app = create_app(env=env)
        client = app.test_client()
        planted(app, client)
        assert recs(client, "strategy=bought_together&items=mug-a&n=3")["served_by"] == "bought_together"
        proc.kill()
        proc.wait(10)
        for query in ("strategy=bought_together&items=mug-a&n=3", "strategy=similar&items=rake-2"):
            cached = client.get(f"{RECS}?{query}")  # the first: from reads less than 5 s old
            assert cached.status_code == (200 if "mug-a" in query else 503)
        forget_recent_reads(app)
        response = client.get(f"{RECS}?strategy=bought_together&items=mug-a&n=3")
        assert response.status_code == 503 and response.get_json()["error"] == "store_unavailable"
        assert response.headers["Cache-Control"] == "no-store" and response.headers["Access-Control-Allow-Origin"] == "*"


def test_reading_products_a_page_at_a_time_gives_what_reading_them_all_gives(app, shop, monkeypatch):
    from server.recs import merchandising, serve
    from server.recs.strategies import STRATEGIES

    def answers():
        with app.app_context():
            return [serve.recommend(get_store(), "shop", serve.Query(strategy, (anchor,), n, frozenset(exclude)),
                                    {"rules": [{"action": "bury", "match": {"brand": "Fjord"}}]})
                    for strategy in STRATEGIES for anchor in CATALOGUE for n in (1, 3, 20)
                    for exclude in ((), ("beans-1", "mug-b"))]

    paged = answers()
    monkeypatch.setattr(merchandising, "reorders", lambda rules: True)  # as with a boost: read everything
    assert answers() == paged


def test_a_product_answers_its_public_fields_and_live_activity(app, shop):
    client, _ = shop
    # the planted orders are an hour old: each customer bought once; sessions viewed mug-a 4 times
    answer = client.get("/v1/sites/shop/products/mug-a")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "public, max-age=60"
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    body = answer.get_json()
    assert body == {"id": "mug-a", "title": "Mug A", "link": "https://shop.example/p/mug-a",
                    "image_link": "https://shop.example/i/mug-a.png", "price": 10.0, "sale_price": None,
                    "currency": "EUR", "availability": "in_stock", "brand": "Acme", "product_type": "Kitchen > Mugs",
                    "views_24h": 4, "purchases_24h": 16}
    assert "custom_label_0" not in body  # margins never leave the merchant API
    for n in range(50):  # a flood from one visitor counts once an hour
        collect(client, "flooder-0002", [item_event(800_000 + n, "view", ["mug-a"])])
    forget_recent_reads(app)
    assert client.get("/v1/sites/shop/products/mug-a").get_json()["views_24h"] == 5
    assert client.get("/v1/sites/shop/products/nope").status_code == 404
    assert client.get("/v1/sites/shop/products/a%20b").get_json()["details"][0]["path"] == "/id"
    assert client.get("/v1/sites/other/products/mug-a").get_json()["error"] == "site_not_found"
