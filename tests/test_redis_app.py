"""The whole merchant + browser flow over HTTP with VITRINA_REDIS_URL set (a real
redis-server), giving the same results as the embedded SQLite store."""
import json
import time

from conftest import DEMO_CONFIG, make_site

from server import create_app
from server.configs.compiler import compile_bundle
from server.events.batch import bucketed_assignment
from server.store import get_store

TS = int(time.time() * 1000)  # collect refuses events more than 3 days old


def _app(tmp_path, redis_url=None):
    env = {"VITRINA_DATABASE": str(tmp_path / "vitrina.sqlite3"), "VITRINA_SECRET_KEY": "test-secret-key-0123456789"}
    if redis_url:
        env["VITRINA_REDIS_URL"] = redis_url
    return create_app(env=env)


def exposure(event_id, campaign, variation, version=1, **extra):
    holdout = variation is None
    return {"id": event_id, "type": "exposure", "version": version, "ts": TS, "campaign": campaign,
            "variation": variation, "holdout": holdout, **extra}


def conversion(event_id, goal, value=None, version=1):
    event = {"id": event_id, "type": "conversion", "version": version, "ts": TS, "goal": goal}
    return event if value is None else {**event, "value": value}


def _bucketed(variation, holdout=False, skip=0):
    """A visitor id that bucketing puts on `variation` of cta-wording (or in the holdout)."""
    bundle = compile_bundle("shop", 1, json.loads(DEMO_CONFIG.read_text()))
    cta = next(c for c in bundle["campaigns"] if c["key"] == "cta-wording")
    ids = (f"visitor-{i:05d}" for i in range(100_000))
    matching = (v for v in ids if bucketed_assignment(bundle, cta, v) == (holdout, variation))
    return [next(matching) for _ in range(skip + 1)][-1]


ALPHA, BETA, GAMMA, DELTA = _bucketed("control"), _bucketed("urgent"), _bucketed("control", True), _bucketed("control", skip=1)

BATCHES = [
    (ALPHA, [exposure("ev-alpha-1", "cta-wording", "control"),
                       conversion("ev-alpha-2", "purchase", 30), conversion("ev-alpha-3", "purchase", 20),
                       conversion("ev-alpha-4", "add_to_cart")]),
    (BETA, [exposure("ev-beta-01", "cta-wording", "urgent"),
            exposure("ev-beta-02", "hero-newsletter", "promo"),
            conversion("ev-beta-04", "purchase", 50.25)]),
    (GAMMA, [exposure("ev-gamma-1", "cta-wording", None), conversion("ev-gamma-2", "purchase", 10)]),
    (DELTA, [conversion("ev-delta-1", "purchase", 99),  # before any exposure: not attributed
                       exposure("ev-delta-2", "cta-wording", "control")]),
    ("visitor-qa-01", [exposure("ev-qa-0001", "cta-wording", "urgent", forced=True)]),  # QA: never counted
    (BETA, [exposure("ev-beta-01", "cta-wording", "urgent"),  # a retried beacon
            exposure("ev-beta-02", "hero-newsletter", "promo"),
            conversion("ev-beta-04", "purchase", 50.25)]),
]


def run_flow(app):
    """Publish the demo, fetch the bundle, collect the events; returns the results body."""
    client = app.test_client()
    auth = make_site(app, "shop")
    config = json.loads(DEMO_CONFIG.read_text())
    assert client.put("/api/v1/sites/shop/config", json=config, headers=auth).status_code == 200
    assert client.get("/api/v1/sites/shop/config", headers=auth).get_json() == config
    assert client.post("/api/v1/sites/shop/publish", headers=auth).get_json()["version"] == 1
    bundle = client.get("/v1/sites/shop/bundle.json")
    assert bundle.status_code == 200 and bundle.get_json()["bundle"]["version"] == 1
    assert client.get("/v1/sites/shop/bundle.json", headers={"If-None-Match": bundle.headers["ETag"]}).status_code == 304
    for visitor_id, events in BATCHES:
        body = json.dumps({"visitor_id": visitor_id, "events": events})
        response = client.post("/v1/sites/shop/collect", data=body, content_type="text/plain")
        assert response.status_code == 204, response.get_data(as_text=True)
    unknown = {"visitor_id": ALPHA, "events": [conversion("ev-alpha-9", "purchase", 1, version=2)]}
    assert client.post("/v1/sites/shop/collect", json=unknown).status_code == 400
    assert client.get("/api/v1/sites/shop/versions", headers=auth).get_json()["versions"][0]["version"] == 1
    results = client.get("/api/v1/sites/shop/results", headers=auth)
    assert results.status_code == 200
    return results.get_json()


def test_redis_backed_app_gives_the_same_results_as_sqlite(tmp_path, redis_url):
    redis_app = _app(tmp_path / "redis", redis_url)
    store = redis_app.extensions["vitrina_store"]
    try:
        assert type(store).__name__ == "RedisStore"
        store.r.flushall()
        health = redis_app.test_client().get("/healthz").get_json()
        assert health["store"] == "RedisStore" and health["store_ok"] is True
        with_redis = run_flow(redis_app)
        with redis_app.app_context():
            assert get_store().list_sites() == ["shop"]
    finally:
        store.close()
    with_sqlite = run_flow(_app(tmp_path / "sqlite"))
    assert with_redis == with_sqlite

    campaigns = {c["key"]: c for c in with_redis["campaigns"]}
    cta = campaigns["cta-wording"]
    arms = {v["key"]: v for v in cta["variations"]}
    assert arms["control"]["visitors"] == 2  # alpha and delta
    assert arms["control"]["goals"]["purchase"] == {"conversions": 1, "rate": 0.5, "revenue": 50.0,
        "revenue_per_visitor": 25.0, "orders": 0, "aov": None}
    assert arms["control"]["goals"]["add_to_cart"]["conversions"] == 1
    assert arms["urgent"]["visitors"] == 1  # beta; the forced QA exposure is not counted
    assert arms["urgent"]["goals"]["purchase"] == {"conversions": 1, "rate": 1.0, "revenue": 50.25,
        "revenue_per_visitor": 50.25, "orders": 0, "aov": None}
    assert cta["holdout"]["visitors"] == 1
    assert cta["holdout"]["goals"]["purchase"] == {"conversions": 1, "rate": 1.0, "revenue": 10.0,
        "revenue_per_visitor": 10.0, "orders": 0, "aov": None}
    hero = campaigns["hero-newsletter"]
    assert hero["variations"][0]["visitors"] == 1
    assert hero["variations"][0]["goals"]["purchase"]["revenue"] == 50.25
    assert campaigns["late-reco"]["variations"][0]["visitors"] == 0


def test_rate_limits_are_shared_by_every_process_through_redis(tmp_path, redis_url):
    env = {"VITRINA_DATABASE": str(tmp_path / "r.sqlite3"), "VITRINA_SECRET_KEY": "test-secret-key-0123456789",
           "VITRINA_REDIS_URL": redis_url, "VITRINA_RATE_CLIENT": "3", "VITRINA_RATE_WINDOW": "60"}
    first, second = create_app(env=env), create_app(env=env)  # two server processes, one Redis
    try:
        first.extensions["vitrina_store"].r.flushall()
        make_site(first, "shop")
        hit = lambda app: app.test_client().post("/v1/sites/shop/collect", data="{}",  # noqa: E731
                                                 environ_base={"REMOTE_ADDR": "198.51.100.7"}).status_code
        assert [hit(first), hit(second), hit(first)] == [400, 400, 400]
        assert hit(second) == 429
    finally:
        for app in (first, second):
            app.extensions["vitrina_store"].close()
