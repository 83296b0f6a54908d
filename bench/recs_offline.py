"""recs_offline: recommendation quality on a generated shop, the recommendations endpoint's
latency, and the time to import a 100,000-product catalogue, on SQLite and on Redis.

Quality. server/recs/synthetic.py generates a shop with planted co-purchase structure (1,000
products in 24 categories; 10,000 orders, each picking 2+ products of one Zipf-popular bundle of 3
or 4 complementary products from different categories, plus a globally popular product 30% of the
time; 8,000 browsing sessions within a category). Orders are split by time: the first 80% train
(imported through the order importer, sessions recorded as collect's view signals), the last 20%
test. Leave-last-item-out: for each test order, the other items are the anchors and the last item
must come back among 4 recommendations, asked through server.recs.serve.recommend (the endpoint's
code, every availability allowed so stock does not blur the comparison). Figures: hit-rate@4 and
NDCG@4 (1/log2(rank+1), one relevant item) of each strategy, and of bought_together with each
similarity (cosine, Jaccard, lift); the baseline is popularity (the bestsellers strategy, the same
list for everybody), measured in the same run. Target: bought_together at least 2x popularity.

Latency. `vitrina serve` (4 workers) with the same shop built; wrk (2 threads, 16 connections)
asks bought_together for 4 items anchored on random products (n=4, each query different), 8 s;
p50 and p99 against GET /healthz under the same load. Targets: p50 < 10 ms, p99 < 50 ms.

Import. 100,000 products as JSON lines (about 40 MB) PUT to `vitrina serve`: wall time, against
reading and parsing the same body with json.loads line by line (the floor any importer pays).
Target: < 30 s (seconds, not minutes) on 2 shared cores."""
import json
import math
import random
import tempfile
import time
from pathlib import Path

from .common import (
    Row,
    create_site,
    gunicorn_server,
    http,
    log,
    redis_server,
    server_env,
    temp_dir,
    wrk,
)

SITE = "shop"
PRODUCTS, ORDERS, SESSIONS = 1000, 10_000, 8000
TRAIN_SHARE = 0.8
K = 4
IMPORT_PRODUCTS = 100_000
WRK_SECONDS = 8
EVALUATED = ("viewed_together", "similar", "upsell", "personal", "trending", "bestsellers")
ALL_AVAILABILITY = frozenset({"in_stock", "out_of_stock", "preorder", "backorder"})


def _shop():
    from server.recs.synthetic import generate
    return generate(products=PRODUCTS, orders=ORDERS, sessions=SESSIONS, seed=11, noise=0.3, now=time.time())


def _load(store, shop, train):
    from server.catalog.importer import import_orders, import_products
    store.create_site(SITE, "bench-hash")
    import_products(store, SITE, ((n, p, None) for n, p in enumerate(shop["products"], 1)), replace=True)
    import_orders(store, SITE, ((n, o, None) for n, o in enumerate(train, 1)))
    now = time.time()
    rows = [(f"view-{s:07d}-{k}", now - 3600, f"v:{visitor}", f"s:{visitor}:1", "view", json.dumps([item]))
            for s, (visitor, items) in enumerate(shop["sessions"]) for k, item in enumerate(items)]
    store.record_interactions(SITE, rows)


def _evaluate(store, strategy, test):
    """(hit-rate@K, NDCG@K) of a strategy over the test orders."""
    from server.recs.serve import Query, recommend
    hits, gain = 0, 0.0
    for anchors, target in test:
        query = Query(strategy=strategy, items=tuple(anchors), n=K, availability=ALL_AVAILABILITY)
        shown = [item["id"] for item in recommend(store, SITE, query)["items"]]
        if target in shown:
            hits += 1
            gain += 1 / math.log2(shown.index(target) + 2)
    return hits / len(test), gain / len(test)


def quality():
    from server.recs.build import build_site
    from server.store.sqlite import SQLiteStore
    shop = _shop()
    cut = int(len(shop["orders"]) * TRAIN_SHARE)
    train, held_out = shop["orders"][:cut], shop["orders"][cut:]
    test = [([i["id"] for i in o["items"][:-1]], o["items"][-1]["id"]) for o in held_out if len(o["items"]) >= 2]
    rows, figures = [], {}
    with temp_dir("vitrina-bench-recs-") as workdir:
        store = SQLiteStore(str(workdir / "recs.sqlite3"))
        _load(store, shop, train)
        for kind in ("jaccard", "lift", "cosine"):  # cosine last: the other strategies are read from its build
            summary = build_site(store, SITE, kind=kind)
            figures[f"bought_together ({kind})"] = _evaluate(store, "bought_together", test)
            log(f"{kind}: build {summary['seconds']} s, {summary['rankings']} rankings")
        for strategy in EVALUATED:
            figures[strategy] = _evaluate(store, strategy, test)
        store.close()
    base_hit, base_ndcg = figures["bestsellers"]
    log(f"{len(train)} training orders, {len(test)} test orders (leave last item out), K={K}")
    for name, (hit, ndcg) in figures.items():
        if name == "bestsellers":
            continue
        target = name.startswith("bought_together (cosine")
        rows.append(Row("recs_offline", f"hit-rate@{K} {name}", hit, "", base_hit, "popularity",
                        "≥ 2× popularity" if target else "", (hit >= 2 * base_hit) if target else None))
        rows.append(Row("recs_offline", f"NDCG@{K} {name}", ndcg, "", base_ndcg, "popularity"))
    return rows


def _paths(shop, count=500):
    rng = random.Random(3)
    ids = [p["id"] for p in shop["products"]]
    return [f"/v1/sites/{SITE}/recommendations?strategy=bought_together&items={rng.choice(ids)}&n=4"
            for _ in range(count)]


def _lua(paths):
    body = ",".join(json.dumps(p) for p in paths)
    return f"local paths = {{{body}}}\nrequest = function() return wrk.format('GET', paths[math.random(#paths)]) end\n"


def latency(name, redis_url=None):
    from server import create_app
    from server.recs.build import build_site
    from server.store import get_store
    shop = _shop()
    with temp_dir("vitrina-bench-recs-http-") as workdir:
        env = server_env(workdir, redis_url)
        app = create_app(env=env)
        with app.app_context():
            store = get_store()
            if redis_url:
                store.r.flushall()
            _load(store, shop, shop["orders"])
            build_site(store, SITE)
        store.close()
        script = workdir / "paths.lua"
        script.write_text(_lua(_paths(shop)))
        with gunicorn_server({**env, "VITRINA_RECS_EVERY_S": "0"}, workers=4) as url:
            status, _, body = http(url + _paths(shop, 1)[0])
            assert status == 200 and json.loads(body)["items"], body
            wrk(url + "/healthz", 2, 16, threads=2)  # warm up
            recs = wrk(url + "/", WRK_SECONDS, 16, threads=2, script=script)
            health = wrk(url + "/healthz", WRK_SECONDS, 16, threads=2)
    if recs["errors"] or recs["status"]:
        raise RuntimeError(f"wrk saw errors: {recs}")
    log(f"{name}: recommendations {recs['rps']:,.0f} req/s, /healthz {health['rps']:,.0f} req/s")
    rows = []
    for pct, target_ms in (("p50", 10), ("p99", 50)):
        figure, base = recs[f"{pct}_us"] / 1000, health[f"{pct}_us"] / 1000
        note = f"/healthz itself takes {base:.0f} ms at {pct} under this load" if base >= target_ms else ""
        rows.append(Row("recs_offline", f"recommendations {pct}, {name}", figure, "ms", base, f"GET /healthz {pct}",
                        f"< {target_ms} ms", figure < target_ms, note))
    return rows


def _big_feed(path):
    rng = random.Random(5)
    with open(path, "w") as f:
        for i in range(IMPORT_PRODUCTS):
            f.write(json.dumps({"id": f"sku-{i:06d}", "title": f"Product number {i} in a long enough title",
                                "link": f"https://shop.example/products/{i}?ref=feed",
                                "image_link": f"https://cdn.shop.example/images/{i}/large.jpg",
                                "price": f"{rng.uniform(1, 500):.2f} EUR", "availability": "in_stock",
                                "brand": f"Brand {i % 300}", "product_type": f"Dept {i % 12} > Kind {i % 97}",
                                "google_product_category": str(1000 + i % 50), "item_group_id": f"g{i // 3}",
                                "custom_label_0": "high_margin" if i % 3 else "standard"}) + "\n")


def import_time(name, feed_path, redis_url=None):
    if redis_url:
        import redis
        redis.Redis.from_url(redis_url).flushall()  # the latency run's shop
    with temp_dir("vitrina-bench-import-") as workdir:
        env = server_env(workdir, redis_url)
        key = create_site(env, SITE)
        with gunicorn_server({**env, "VITRINA_RECS_EVERY_S": "0"}, workers=2) as url:
            body = feed_path.read_bytes()
            t0 = time.monotonic()
            status, _, answer = http(f"{url}/api/v1/sites/{SITE}/catalog", body,
                                     {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"},
                                     "PUT", timeout=600)
            seconds = time.monotonic() - t0
    answer = json.loads(answer)
    if status != 200 or answer["upserted"] != IMPORT_PRODUCTS:
        raise RuntimeError(f"import failed: {status} {answer}")
    t0 = time.monotonic()
    with open(feed_path, "rb") as f:
        for line in f:
            json.loads(line)
    floor = time.monotonic() - t0
    log(f"{name}: {IMPORT_PRODUCTS:,} products ({len(body) / 1e6:.0f} MB) in {seconds:.1f} s")
    return [Row("recs_offline", f"import 100,000 products, {name}", seconds, "s", floor, "json.loads per line",
                "< 30 s", seconds < 30)]


def run():
    rows = quality()
    with tempfile.TemporaryDirectory(prefix="vitrina-bench-feed-") as tmp:
        feed_path = Path(tmp) / "feed.jsonl"
        _big_feed(feed_path)
        with redis_server() as (redis_url, _, _):
            for name, url in (("SQLite", None), ("Redis", redis_url)):
                rows += latency(name, url)
                rows += import_time(name, feed_path, url)
    return rows
