"""The spool never stops on one bad batch: what can be replayed is, what cannot is set aside
after MAX_TRIES tries (spool/dead/, counted in /healthz and in results' `rejected`), a store
still down keeps everything, and a claim left by a worker killed mid-replay is taken back
(real gunicorn, SIGKILL): nothing lost, nothing counted twice."""
import json
import os
import signal
import time
import urllib.request

from server import create_app
from server.configs import publishing
from server.events import spool
from server.events.batch import bucketed_assignment
from server.store import UNAVAILABLE, get_store
from server.store.outage import PROBE_EVERY_S
from tests.conftest import EXPERIMENT_CONFIG, make_site
from tests.servers import (
    BROWSER_UA,
    durable_redis,
    gunicorn_server,
    gunicorn_workers,
    wait_for,
)

NOW = int(time.time() * 1000)


def _env(tmp_path, secret="spool-secret-key-0123456789", **extra):
    return {"VITRINA_DATABASE": str(tmp_path / "v.sqlite3"), "VITRINA_SECRET_KEY": secret,
            "VITRINA_SPOOL_DIR": str(tmp_path / "spool"), "VITRINA_RATE_CLIENT": "0", **extra}


def _publish(app, auth):
    client = app.test_client()
    assert client.put("/api/v1/sites/shop/config", json=EXPERIMENT_CONFIG, headers=auth).status_code == 200
    return client.post("/api/v1/sites/shop/publish", headers=auth).get_json()["version"]


def _batch(app, version, i):
    """(visitor, events): visitor i's true assignment in that version, then a purchase worth 1."""
    with app.app_context():
        bundle = publishing.load_version("shop", version)
    visitor = f"visitor-{i:06d}"
    _, variation = bucketed_assignment(bundle, bundle["campaigns"][0], visitor)
    return visitor, [
        {"id": f"exp-{i:06d}", "type": "exposure", "version": version, "ts": NOW, "campaign": "hero",
         "variation": variation, "holdout": False},
        {"id": f"buy-{i:06d}", "type": "conversion", "version": version, "ts": NOW, "goal": "purchase", "value": 1}]


def _totals(app):
    with app.app_context():
        counters = get_store().counters("shop")
        rejected = get_store().rejections("shop")
    visitors = sum(c["visitors"] for c in counters if c["goal"] is None)
    conversions = sum(c["conversions"] for c in counters if c["goal"] == "purchase")
    return visitors, conversions, rejected


def _names(folder):
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def test_a_batch_of_a_version_that_no_longer_verifies_does_not_hold_up_the_fifty_behind_it(tmp_path):
    old = create_app(env=_env(tmp_path, "old-secret-key-0123456789"))
    auth = make_site(old, "shop")
    assert _publish(old, auth) == 1
    folder = spool.spool_dir(old)
    spool.write_batch(folder, "shop", *_batch(old, 1, 0))  # spooled under the old key, oldest of all
    # The secret key replaced without keeping the old one: version 1 no longer verifies.
    rotated = create_app(env=_env(tmp_path, "new-secret-key-0123456789"))
    assert _publish(rotated, auth) == 2
    for i in range(1, 51):
        spool.write_batch(folder, "shop", *_batch(rotated, 2, i))

    assert spool.replay_once(rotated) == 50  # everything behind the bad batch, in the first round
    assert _totals(rotated) == (50, 50, {})
    (waiting,) = _names(folder)
    assert waiting.endswith("~1.batch")  # one try counted, waiting RETRY_DELAYS_S[0] for the next
    assert spool.replay_once(rotated) == 0 and _names(folder) == [waiting]  # not due yet

    later = time.time()
    for tries in range(2, spool.MAX_TRIES + 1):
        later += max(spool.RETRY_DELAYS_S) + 1
        assert spool.replay_once(rotated, now=later) == 0
        assert _names(folder) == ([] if tries == spool.MAX_TRIES else [waiting.replace("~1.", f"~{tries}.")])
    assert spool.pending(rotated) == 0 and spool.dead_letters(rotated) == 1
    assert _totals(rotated) == (50, 50, {"dead_letter": 2})  # its two events, never counted twice
    health = rotated.test_client().get("/healthz").get_json()
    assert (health["spooled"], health["dead_letter"]) == (0, 1)
    results = rotated.test_client().get("/api/v1/sites/shop/results", headers=auth).get_json()
    assert results["rejected"] == {"dead_letter": 2}

    # Set aside, not lost: with the old key configured again, moved back, it is recorded.
    both = create_app(env=_env(tmp_path, "new-secret-key-0123456789,old-secret-key-0123456789"))
    (dead,) = (folder / spool.DEAD_LETTER).iterdir()
    os.replace(dead, folder / dead.name)
    assert spool.replay_once(both) == 1
    assert _totals(both)[:2] == (51, 51)


def test_a_batch_refused_on_verification_is_counted_and_dropped_at_once(tmp_path):
    app = create_app(env=_env(tmp_path))
    _publish(app, make_site(app, "shop"))
    folder = spool.spool_dir(app)
    visitor, events = _batch(app, 1, 1)
    events[0]["variation"] = "b" if events[0]["variation"] == "control" else "control"  # forged
    spool.write_batch(folder, "shop", visitor, events)
    spool.write_batch(folder, "shop", *_batch(app, 1, 2))
    assert spool.replay_once(app) == 1
    assert _names(folder) == [] and spool.dead_letters(app) == 0
    assert _totals(app) == (1, 1, {"bucketing": 1})


def test_an_unreadable_spool_file_is_set_aside_at_once(tmp_path):
    app = create_app(env=_env(tmp_path))
    auth = make_site(app, "shop")
    _publish(app, auth)
    folder = spool.spool_dir(app)
    bad = spool.write_batch(folder, "shop", *_batch(app, 1, 1))
    bad.write_text('{"site": "shop", "visitor_id": "visitor-000001", "ev')  # a disk that lost its tail
    spool.write_batch(folder, "shop", *_batch(app, 1, 2))
    assert spool.replay_once(app) == 1
    assert spool.pending(app) == 0 and spool.dead_letters(app) == 1
    assert _totals(app)[:2] == (1, 1)


def test_a_store_still_down_stops_the_round_and_keeps_everything_as_it_was(tmp_path):
    with durable_redis() as (redis_url, start_redis, stop_redis, _):
        app = create_app(env=_env(tmp_path, VITRINA_REDIS_URL=redis_url))
        auth = make_site(app, "shop")
        _publish(app, auth)
        folder = spool.spool_dir(app)
        batches = [_batch(app, 1, i) for i in range(5)]
        for visitor, events in batches:
            spool.write_batch(folder, "shop", visitor, events)
        before = _names(folder)
        stop_redis()
        for _ in range(3):
            try:
                spool.replay_once(app)
                raise AssertionError("replay_once did not report the store down")
            except UNAVAILABLE:
                pass
            assert _names(folder) == before  # no claim left behind, no try counted
        start_redis()
        time.sleep(PROBE_EVERY_S)  # the store found away is asked again this often (server/store/outage.py)
        assert spool.replay_once(app) == 5
        assert _totals(app) == (5, 5, {})
        app.extensions["vitrina_store"].close()


def _request(url, data=None, headers=None, method=None):
    req = urllib.request.Request(url, data=data, headers={"User-Agent": BROWSER_UA, **(headers or {})}, method=method)
    with urllib.request.urlopen(req, timeout=10) as response:
        return response.status, response.read()


def test_a_claim_of_a_worker_killed_mid_replay_is_taken_back_nothing_lost_nothing_twice(tmp_path):
    batches = 150
    with durable_redis() as (redis_url, start_redis, stop_redis, redis_process):
        # a long store timeout: the replayer that probes the hung store holds its claim long enough to be killed
        env = _env(tmp_path, VITRINA_REDIS_URL=redis_url, VITRINA_STORE_TIMEOUT_MS="10000")
        setup = create_app(env=env)
        auth = make_site(setup, "shop")
        _publish(setup, auth)
        bodies = [json.dumps(dict(zip(("visitor_id", "events"), _batch(setup, 1, i)))).encode() for i in range(batches)]
        setup.extensions["vitrina_store"].close()
        folder = tmp_path / "spool"
        with gunicorn_server(env, workers=2) as url:
            for _ in range(4):  # every worker verifies version 1 while the store is up
                _request(f"{url}/v1/sites/shop/collect", bodies[0], {"Content-Type": "text/plain"})
            stop_redis()
            for body in bodies[1:]:
                assert _request(f"{url}/v1/sites/shop/collect", body, {"Content-Type": "text/plain"})[0] == 202
            start_redis()
            os.kill(redis_process().pid, signal.SIGSTOP)  # back, but hung: a replayer blocks holding a claim
            claims = []
            wait_for(lambda: claims.extend(folder.glob("*.claimed")) or claims, timeout=10, what="a claim")
            worker = int(claims[0].name.rsplit("-", 1)[1].split(".")[0])
            assert worker in gunicorn_workers(url)  # the claim names the process holding it
            os.kill(worker, signal.SIGKILL)
            # the claim outlives its worker until another process takes it back (a try counted)
            orphan_id = claims[0].name.split("~")[0].split("@")[0]
            wait_for(lambda: any(p.name.startswith(orphan_id) and p.name.endswith("~1.batch")
                                 or p.name.startswith(orphan_id + "~1@") for p in folder.iterdir()),
                     timeout=15, what="the orphaned claim taken back")
            os.kill(redis_process().pid, signal.SIGCONT)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (spool_left := [p for p in folder.iterdir() if p.is_file()]):
                time.sleep(0.2)
            assert spool_left == [], sorted(p.name for p in spool_left)[:5]
            status, body = _request(f"{url}/api/v1/sites/shop/results", headers=auth)
            hero = json.loads(body)["campaigns"][0]
            visitors = sum(v["visitors"] for v in hero["variations"])
            conversions = sum(v["goals"]["purchase"]["conversions"] for v in hero["variations"])
            revenue = sum(v["goals"]["purchase"]["revenue"] for v in hero["variations"])
            assert (visitors, conversions, revenue) == (batches, batches, float(batches))
            assert json.loads(body)["rejected"] == {}
            health = json.loads(_request(f"{url}/healthz")[1])
            assert (health["spooled"], health["dead_letter"]) == (0, 0)


def test_a_spooled_batch_keeps_the_requests_facts_but_never_its_address(tmp_path):
    """Device and country are the request's: a batch replayed later is sliced by what its
    request said, and the spool file holds no address."""
    iphone = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              "Version/17.4 Mobile/15E148 Safari/604.1")
    with durable_redis() as (redis_url, start_redis, stop_redis, _):
        app = create_app(env=_env(tmp_path, VITRINA_REDIS_URL=redis_url))
        _publish(app, make_site(app, "shop"))
        client = app.test_client()
        visitor, events = _batch(app, 1, 7)
        stop_redis()
        response = client.post("/v1/sites/shop/collect", data=json.dumps({"visitor_id": visitor, "events": events}),
                               headers={"User-Agent": iphone}, environ_base={"REMOTE_ADDR": "81.2.69.142"})
        assert response.status_code == 202
        (spooled,) = spool.spool_dir(app).glob("*.batch")
        assert json.loads(spooled.read_text())["facts"] == {"device": "mobile", "country": "GB", "excluded": None}
        assert "81.2.69.142" not in spooled.read_text()
        start_redis()
        time.sleep(PROBE_EVERY_S)  # the store found away is asked again this often
        assert spool.replay_once(app) == 1
        with app.app_context():
            store = get_store()
            assert {r["value"] for r in store.slice_counters("shop", "device.type")} == {"mobile"}
            assert {r["value"] for r in store.slice_counters("shop", "geo.country")} == {"GB"}
            store.close()


def test_a_spooled_batch_is_timed_by_its_receipt_not_its_replay(tmp_path):
    """An outage longer than collect's time window: events that were fresh when the batch was
    spooled are still counted when it is replayed; events already too old then are refused."""
    from server.events.batch import MAX_EVENT_AGE_S
    app = create_app(env=_env(tmp_path))
    _publish(app, make_site(app, "shop"))
    folder = spool.spool_dir(app)
    received = time.time() - MAX_EVENT_AGE_S  # spooled 3 days ago
    for i, age_at_receipt in ((1, 3_600), (2, MAX_EVENT_AGE_S + 3_600)):
        visitor, events = _batch(app, 1, i)
        for event in events:
            event["ts"] = int((received - age_at_receipt) * 1000)
        path = spool.write_batch(folder, "shop", visitor, events)
        path.rename(path.with_name(f"{int(received * 1e9)}-{i}-{path.name.split('-', 2)[2]}"))
    assert spool.replay_once(app) == 1
    assert _names(folder) == [] and spool.dead_letters(app) == 0
    assert _totals(app) == (1, 1, {"stale": 2})
