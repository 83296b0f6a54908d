"""`vitrina demo`: a demo site with the sample config published, the shop on its own
origin, and the server under gunicorn."""
import json
from pathlib import Path

from server import create_app
from server.configs.publishing import publish_file
from server.demo.shop import make_shop_server, serve_in_thread
from server.settings import load_config
from server.store import DEFAULT_KEY_NAME, SiteExists, describe, get_store
from server.web.auth import hash_key, new_api_key
from server.web.gunicorn_app import run

DEMO_DIR = Path(__file__).resolve().parent
SITE = "demo"


def prepare():
    """Create the demo site if needed, publish the sample config if it changed; returns a fresh API key."""
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
    return key


def run_demo(host, port, shop_port):
    key = prepare()
    origin = f"http://{host}:{port}"
    shop = make_shop_server(host, shop_port, DEMO_DIR, origin, SITE)
    serve_in_thread(shop)
    print(f"""
Vitrina demo is running.
  Shop (its own origin):  http://{host}:{shop_port}/
  Newsletter visitor:     http://{host}:{shop_port}/?utm_source=newsletter
  Server:                 {origin}   (tag: {origin}/v1/sites/{SITE}/tag.js)
  Store:                  {describe(load_config())}
  Results:                curl -H 'Authorization: Bearer {key}' {origin}/api/v1/sites/{SITE}/results
Press Ctrl+C to stop.
""", flush=True)
    run(host, port, 2)
