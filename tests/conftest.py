import json
from pathlib import Path

import pytest

from server import create_app
from server.store import get_store
from server.web.auth import hash_key, new_api_key
from tests.servers import redis_server

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "server" / "demo" / "config.json"
# One 50/50 experiment, no holdout: every visitor is counted, in the variation bucketing gives.
EXPERIMENT_CONFIG = {
    "campaigns": [{"key": "hero", "type": "experiment",
                   "variations": [{"key": "control", "weight": 0.5}, {"key": "b", "weight": 0.5}],
                   "goals": ["purchase"]}],
    "goals": {"purchase": {"event": "purchase"}},
    "settings": {"holdout": 0},
}


@pytest.fixture(scope="module")
def redis_url():
    """A real redis-server of the test module's own, empty when the module starts (tests that
    share it flush what they need empty)."""
    with redis_server() as (url, _, _):
        yield url


@pytest.fixture
def app(tmp_path):
    env = {"VITRINA_DATABASE": str(tmp_path / "vitrina.sqlite3"), "VITRINA_SECRET_KEY": "test-secret-key-0123456789"}
    return create_app(env=env)


@pytest.fixture
def client(app):
    return app.test_client()


def make_site(app, site):
    """Create a site; returns the Authorization headers of its new key."""
    key = new_api_key()
    with app.app_context():
        get_store().create_site(site, hash_key(key))
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def shop(app):
    return make_site(app, "shop")


@pytest.fixture
def demo_config():
    return json.loads(DEMO_CONFIG.read_text())


@pytest.fixture
def published(client, shop, demo_config):
    """Site 'shop' with the demo config published as version 1."""
    assert client.put("/api/v1/sites/shop/config", json=demo_config, headers=shop).status_code == 200
    assert client.post("/api/v1/sites/shop/publish", headers=shop).get_json()["version"] == 1
    return shop


def shop_with(tmp_path, config, **env):
    """A new app (SQLite; no per-client rate limit, the test client sends everything from one
    address) with site 'shop' and `config` published: (app, client, the key's headers)."""
    app = create_app(env={"VITRINA_DATABASE": str(tmp_path / "vitrina.sqlite3"),
                          "VITRINA_SECRET_KEY": "test-secret-key-0123456789", "VITRINA_RATE_CLIENT": "0", **env})
    client = app.test_client()
    auth = make_site(app, "shop")
    assert client.put("/api/v1/sites/shop/config", json=config, headers=auth).status_code == 200
    assert client.post("/api/v1/sites/shop/publish", headers=auth).status_code == 201
    return app, client, auth


def database_bytes(app):
    """Every byte SQLite wrote for this app, WAL included."""
    base = Path(app.config["VITRINA_DATABASE"])
    return b"".join(p.read_bytes() for p in (base, base.with_name(base.name + "-wal")) if p.exists())
