"""`vitrina demo`: a small shop on its own origin (server/demo/storefront.py) with the sample config
published, its catalogue imported from a feed file, a few thousand past orders with planted
complementarities imported and recommendations built, and the server under gunicorn."""
import io
import json
import random
import time
from pathlib import Path

from server import create_app
from server.catalog import feed
from server.catalog.importer import import_orders, import_products
from server.configs.publishing import publish_file
from server.demo.shop import make_shop_server, serve_in_thread
from server.demo.storefront import Storefront, feed_text, products
from server.recs.build import build_site
from server.recs.synthetic import planted_orders
from server.settings import load_config
from server.store import DEFAULT_KEY_NAME, SiteExists, describe, get_store
from server.web.auth import hash_key, new_api_key
from server.web.gunicorn_app import run

DEMO_DIR = Path(__file__).resolve().parent
SITE = "demo"
ORDERS = 3000
ORDER_DAYS = 60
SEED = 11
# What shoppers buy together in the demo shop: recommendations should find these.
BUNDLES = [
    ["mug-ceramic", "beans-espresso", "frother-milk", "latte-glasses"],
    ["dripper-pourover", "filters-paper", "kettle-gooseneck"],
    ["teapot-castiron", "tea-sencha", "strainer-tea", "teacups-pair"],
    ["candle-soy", "trimmer-wick", "matches-long"],
    ["throw-wool", "cushion-linen", "lamp-reading"],
    ["planter-terracotta", "soil-potting", "seeds-herbs"],
    ["shears-pruning", "gloves-garden", "pad-kneeling"],
    ["notebook-dotgrid", "pen-fountain", "ink-bottle"],
    ["organiser-desk", "board-cork", "pins-push"],
]


def past_orders(now):
    """ORDERS orders over the last ORDER_DAYS days, deterministic but for their times: the same
    order ids on every run, so importing them again adds nothing."""
    catalogue = products()
    prices = {p["id"]: p["sale_price"] or p["price"] for p in catalogue}
    return planted_orders([p["id"] for p in catalogue], BUNDLES, ORDERS, random.Random(SEED), noise=0.35,
                          days=ORDER_DAYS, now=now, prices=prices)


def stock(store, site, shop_origin, now=None):
    """Import the feed (links on the shop's origin) and the past orders into `site`, then build
    the recommendations; returns the build's summary."""
    text = feed_text(shop_origin).encode()
    answer = import_products(store, site, feed.records(io.BytesIO(text), "text/csv"), replace=True)
    if answer["errors"]:
        raise SystemExit(f"the demo feed is not clean: {answer['errors'][:3]}")
    lines = "\n".join(json.dumps(o) for o in past_orders(time.time() if now is None else now)).encode()
    answer = import_orders(store, site, feed.records(io.BytesIO(lines), "application/x-ndjson"))
    if answer["errors"]:
        raise SystemExit(f"the demo orders are not clean: {answer['errors'][:3]}")
    return build_site(store, site)


def prepare(shop_origin):
    """Create the demo site if needed, publish the sample config if it changed, stock the shop;
    returns a fresh API key."""
    key = new_api_key()
    with create_app().app_context():
        store = get_store()
        try:
            store.create_site(SITE, hash_key(key))
        except SiteExists:  # a new run's key replaces the last run's
            store.revoke_key(SITE, DEFAULT_KEY_NAME)
            store.add_key(SITE, DEFAULT_KEY_NAME, "owner", hash_key(key))
        config_path = DEMO_DIR / "config.json"
        draft = store.get_draft(SITE)
        if draft is None or json.loads(draft) != json.loads(config_path.read_text()) or not store.list_versions(SITE):
            result = publish_file(SITE, config_path)
            if result.problems or result.warnings:
                raise SystemExit(f"the sample config is not clean: {result.problems or result.warnings}")
        stock(store, SITE, shop_origin)
    return key


def run_demo(host, port, shop_port):
    shop_origin = f"http://{host}:{shop_port}"
    key = prepare(shop_origin)
    origin = f"http://{host}:{port}"
    shop = make_shop_server(host, shop_port, DEMO_DIR / "static", origin, SITE, Storefront(origin, SITE))
    serve_in_thread(shop)
    print(f"""
Vitrina demo is running.
  Shop (its own origin):  {shop_origin}/
  Newsletter visitor:     {shop_origin}/?utm_source=newsletter
  Cart cross-sell test:   add a mug to the cart, then {shop_origin}/cart.html
  Server:                 {origin}   (tag: {origin}/v1/sites/{SITE}/tag.js)
  Store:                  {describe(load_config())}
  Results:                curl -H 'Authorization: Bearer {key}' {origin}/api/v1/sites/{SITE}/results
Press Ctrl+C to stop.
""", flush=True)
    run(host, port, 2)
