"""Nothing lost: events sent under load while Redis stops and restarts, or while a gunicorn
worker is killed, are all counted exactly once (clients retry as the SDK does; the server
spools to disk while Redis is down)."""
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request

import pytest

from server.web.auth import hash_key, new_api_key
from tests.conftest import EXPERIMENT_CONFIG
from tests.servers import BROWSER_UA, durable_redis, gunicorn_server, gunicorn_workers

BATCHES = 240


def _request(url, data=None, headers=None, method=None):
    req = urllib.request.Request(url, data=data, headers={"User-Agent": BROWSER_UA, **(headers or {})}, method=method)
    with urllib.request.urlopen(req, timeout=10) as response:
        return response.status, response.read()


def _setup_site(url, env):
    key = new_api_key()
    from server import create_app
    from server.store import get_store
    app = create_app(env=env)
    with app.app_context():
        get_store().create_site("shop", hash_key(key))
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    _request(f"{url}/api/v1/sites/shop/config", json.dumps(EXPERIMENT_CONFIG).encode(), auth, "PUT")
    _request(f"{url}/api/v1/sites/shop/publish", b"", auth, "POST")
    app.extensions["vitrina_store"].close()
    return auth


def _batch(i):
    """Visitor i: its true experiment assignment, then a purchase worth 1."""
    from server.decisions.bucketing import hash as bucket_hash
    from server.decisions.decide import choose_variation
    visitor = f"visitor-{i:06d}"
    campaign = {"variations": [{"key": "control", "weight": 0.5}, {"key": "b", "weight": 0.5}], "traffic": 1}
    variation = choose_variation(campaign, bucket_hash("hero", visitor))["key"]
    now = int(time.time() * 1000)
    return json.dumps({"visitor_id": visitor, "events": [
        {"id": f"exp-{i:06d}", "type": "exposure", "version": 1, "ts": now, "campaign": "hero",
         "variation": variation, "holdout": False},
        {"id": f"buy-{i:06d}", "type": "conversion", "version": 1, "ts": now, "goal": "purchase", "value": 1}]}).encode()


def _send_all(url, stats, pause=0.004):
    """Send every batch, retrying each until the server accepts it, as the SDK's queue does."""
    for i in range(BATCHES):
        body = _batch(i)
        for attempt in range(200):
            try:
                status, _ = _request(f"{url}/v1/sites/shop/collect", body, {"Content-Type": "text/plain"})
                stats[status] = stats.get(status, 0) + 1
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
                code = getattr(e, "code", "conn")
                stats[code] = stats.get(code, 0) + 1
                time.sleep(0.05)
        else:
            raise AssertionError(f"batch {i} never accepted")
        time.sleep(pause)


def _totals(url, auth):
    status, body = _request(f"{url}/api/v1/sites/shop/results", headers=auth)
    hero = json.loads(body)["campaigns"][0]
    visitors = sum(v["visitors"] for v in hero["variations"])
    conversions = sum(v["goals"]["purchase"]["conversions"] for v in hero["variations"])
    revenue = sum(v["goals"]["purchase"]["revenue"] for v in hero["variations"])
    return visitors, conversions, revenue


def _wait_totals(url, auth, expected, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        totals = _totals(url, auth)
        if totals == expected or time.monotonic() > deadline:
            return totals
        time.sleep(0.25)


@pytest.fixture
def env(tmp_path):
    return {"VITRINA_DATABASE": str(tmp_path / "v.sqlite3"), "VITRINA_SECRET_KEY": "fault-secret-key-0123456789",
            "VITRINA_SPOOL_DIR": str(tmp_path / "spool")}


def test_redis_outage_under_load_loses_nothing_and_counts_once(env, tmp_path):
    with durable_redis() as (redis_url, start_redis, stop_redis, _):
        env = {**env, "VITRINA_REDIS_URL": redis_url}
        with gunicorn_server(env, workers=2) as url:
            auth = _setup_site(url, env)
            _request(f"{url}/v1/sites/shop/bundle.json")  # workers learn the version before the outage
            stats = {}
            sender = threading.Thread(target=_send_all, args=(url, stats))
            sender.start()
            time.sleep(0.3)
            stop_redis()
            time.sleep(1.5)  # batches keep arriving while Redis is down
            start_redis()
            sender.join(120)
            assert not sender.is_alive()
            assert stats.get(202, 0) > 0, f"no batch was spooled during the outage: {stats}"
            assert _wait_totals(url, auth, (BATCHES, BATCHES, float(BATCHES))) == (BATCHES, BATCHES, float(BATCHES))
            # every spooled batch has been replayed and removed
            assert not list((tmp_path / "spool").glob("*.batch"))
            # resending everything (a client retrying after the fact) changes nothing
            _send_all(url, {}, pause=0)
            assert _totals(url, auth) == (BATCHES, BATCHES, float(BATCHES))


def test_killed_worker_loses_nothing_and_counts_once(env):
    with gunicorn_server(env, workers=2) as url:
        auth = _setup_site(url, env)
        stats = {}
        sender = threading.Thread(target=_send_all, args=(url, stats))
        sender.start()
        killed = 0
        for _ in range(3):
            time.sleep(0.3)
            workers = sorted(gunicorn_workers(url))
            if workers:
                os.kill(workers[0], signal.SIGKILL)
                killed += 1
        sender.join(120)
        assert killed == 3 and not sender.is_alive()
        assert _wait_totals(url, auth, (BATCHES, BATCHES, float(BATCHES))) == (BATCHES, BATCHES, float(BATCHES))
