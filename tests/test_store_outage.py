"""Serving never depends on the store being up (docs/DESIGN.md "Serving through a store outage"):
every store call is bounded, a store found away is skipped at once (but for a probe now and
then), the event loop never calls the store, tag.js and bundle.json come from memory while it is
away (marked stale), collect spools, and all of it recovers on its own when the store answers.
Real redis-server, stopped (SIGSTOP) and killed; the latency bounds are generous hang detectors,
the figures are in bench/store_outage.py."""
import asyncio
import signal
import sqlite3
import threading
import time

import pytest

from server import create_app
from server.configs import publishing
from server.events import spool
from server.store import UNAVAILABLE, get_store
from server.store.outage import PROBE_EVERY_S, Outage, StoreAway, never_block_this_loop
from server.store.redis_store import RedisStore
from tests.conftest import EXPERIMENT_CONFIG, make_site
from tests.servers import durable_redis, tag_boot, wait_for
from tests.test_fault_tolerance import _batch

HANG = 1.0  # no call may take this long: a bound that only a hang (or a retried timeout) breaks
STALE = "X-Vitrina-Stale"


def _elapsed(call, *args, **kwargs):
    started = time.monotonic()
    try:
        return call(*args, **kwargs), time.monotonic() - started
    except Exception as e:  # noqa: BLE001 -- the exception is the result under test
        return e, time.monotonic() - started


def test_the_guard_skips_an_away_store_and_probes_it_again():
    calls = []

    def store_call(fails):
        calls.append(fails)
        if fails:
            raise ConnectionRefusedError("refused")
        return "answer"

    outage = Outage((OSError,))
    assert outage.call(store_call, False) == "answer" and not outage.away
    with pytest.raises(ConnectionRefusedError):
        outage.call(store_call, True)
    assert outage.away and len(calls) == 2
    for _ in range(20):  # away: not asked at all
        with pytest.raises(StoreAway):
            outage.call(store_call, False)
    assert len(calls) == 2
    time.sleep(PROBE_EVERY_S + 0.05)
    with pytest.raises(ConnectionRefusedError):  # the one probe, still refused
        outage.call(store_call, True)
    with pytest.raises(StoreAway):  # the next probe waits its turn again
        outage.call(store_call, False)
    assert len(calls) == 3 and outage.returns == 0
    time.sleep(PROBE_EVERY_S + 0.05)
    assert outage.call(store_call, False) == "answer"
    assert not outage.away and outage.returns == 1  # back: the version token moves
    assert outage.call(store_call, False) == "answer" and len(calls) == 5


@pytest.fixture
def redis():
    """(url, start, stop, process) of a restartable redis-server (tests/servers.py)."""
    with durable_redis() as handles:
        yield handles


def test_a_stopped_or_killed_redis_fails_a_call_within_the_timeout(redis):
    url, start, _, process = redis
    store = RedisStore(url, timeout_s=0.3)
    store.create_site("shop", "hash")
    process().send_signal(signal.SIGSTOP)
    try:
        # a pooled connection, then a fresh client's new connection (the kernel accepts it for the
        # stopped server): each gives up after the timeout, once (redis-py's default retries 10 times)
        for client in (store, RedisStore(url, timeout_s=0.3)):
            error, took = _elapsed(client.site_exists, "shop")
            assert isinstance(error, RedisStore.UNAVAILABLE) and took < HANG, (error, took)
    finally:
        process().send_signal(signal.SIGCONT)
    assert store.site_exists("shop")
    process().kill()
    process().wait()
    error, took = _elapsed(store.site_exists, "shop")
    assert isinstance(error, RedisStore.UNAVAILABLE) and took < HANG, (error, took)
    start()
    assert store.site_exists("shop")  # the dropped pooled connection is replaced at once
    store.close()


def test_the_version_watch_survives_a_stopped_and_a_restarted_redis(redis):
    url, start, _, process = redis
    publisher, watcher = RedisStore(url), RedisStore(url)
    watcher.version_token()  # starts its listener
    time.sleep(0.2)

    def announced_within(seconds):
        before = watcher._watch.generation
        publisher.announce_version("shop")
        deadline = time.monotonic() + seconds
        while watcher._watch.generation == before:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    assert announced_within(0.5)
    process().send_signal(signal.SIGSTOP)
    time.sleep(1.5)  # longer than the read timeout: a quiet channel is no error
    process().send_signal(signal.SIGCONT)
    assert announced_within(0.5)
    process().kill()
    process().wait()
    start()
    wait_for(lambda: announced_within(0.3), timeout=5, what="announcements after a Redis restart")
    publisher.close()
    watcher.close()


def _redis_app(tmp_path, url, **env):
    return create_app(env={"VITRINA_DATABASE": str(tmp_path / "v.sqlite3"), "VITRINA_REDIS_URL": url,
                           "VITRINA_SECRET_KEY": "outage-secret-key-0123456789",
                           "VITRINA_SPOOL_DIR": str(tmp_path / "spool"), "VITRINA_RATE_CLIENT": "0", **env})


def _publish(client, auth, site="shop"):
    assert client.put(f"/api/v1/sites/{site}/config", json=EXPERIMENT_CONFIG, headers=auth).status_code == 200
    response = client.post(f"/api/v1/sites/{site}/publish", headers=auth)
    assert response.status_code == 201
    return response.get_json()["version"]


def _version_of(tag_body):
    return tag_boot(tag_body)["bundle"]["version"]


def test_tag_and_bundle_come_from_memory_while_redis_is_down_and_recover(redis, tmp_path):
    url, start, stop, _ = redis
    app, publisher = _redis_app(tmp_path, url), _redis_app(tmp_path, url)  # two server processes
    client = app.test_client()
    auth = make_site(app, "shop")
    make_site(app, "other")  # exists, but this process never served it
    assert _publish(client, make_site(app, "collected"), "collected") == 1
    assert client.post("/v1/sites/collected/collect", data=_batch(0)).status_code == 204  # verified version 1
    assert _publish(client, auth) == 1
    tag, bundle = client.get("/v1/sites/shop/tag.js"), client.get("/v1/sites/shop/bundle.json")
    assert STALE not in tag.headers and _version_of(tag.data) == 1
    stop()

    marks = []
    for _ in range(4):  # across the version token's tick: the memo empties, the store is asked in vain
        served, took = _elapsed(client.get, "/v1/sites/shop/tag.js")
        assert (served.status_code, served.data) == (200, tag.data) and took < HANG
        again = client.get("/v1/sites/shop/bundle.json", headers={"If-None-Match": bundle.headers["ETag"]})
        assert again.status_code == 304
        marks.append((served.headers.get(STALE), again.headers.get(STALE)))
        time.sleep(0.4)
    # unmarked until this process finds the store away (at its first read after the tick), marked since
    assert marks[-1] == ("store-unreachable", "store-unreachable"), marks
    # a site whose version this process verified for collect but never served: that version
    served = client.get("/v1/sites/collected/tag.js")
    assert (served.status_code, _version_of(served.data), served.headers[STALE]) == (200, 1, "store-unreachable")
    # a site this process never served: nothing in memory, so the error shape, at once
    missing, took = _elapsed(client.get, "/v1/sites/other/tag.js")
    assert missing.status_code == 503 and missing.get_json()["error"] == "store_unavailable" and took < HANG
    assert missing.headers["Retry-After"] == "1"
    health, took = _elapsed(client.get, "/healthz")
    assert health.status_code == 503 and health.get_json()["status"] == "degraded" and took < HANG
    collected, took = _elapsed(client.post, "/v1/sites/shop/collect", data=_batch(1))
    assert collected.status_code == 202 and took < HANG and spool.pending(app) == 1

    start()
    assert _publish(publisher.test_client(), auth) == 2  # published meanwhile, by another process
    # Back within a probe and a tick of the version token, with the new version, unmarked.
    deadline = time.monotonic() + PROBE_EVERY_S + 1.5
    while True:
        served = client.get("/v1/sites/shop/tag.js")
        if _version_of(served.data) == 2 and STALE not in served.headers:
            break
        assert time.monotonic() < deadline, "the new version was not served after the store came back"
        time.sleep(0.05)
    wait_for(lambda: spool.pending(app) == 0, timeout=5, what="the spool's replay")
    for each in (app, publisher):
        each.extensions["vitrina_store"].close()


def test_the_event_loop_never_calls_the_store(redis, tmp_path):
    url, _, _, process = redis
    app = _redis_app(tmp_path, url)
    client = app.test_client()
    auth = make_site(app, "shop")
    make_site(app, "other")
    _publish(client, auth)
    assert client.get("/v1/sites/shop/tag.js").status_code == 200  # in memory now
    process().send_signal(signal.SIGSTOP)

    async def on_the_loop():
        never_block_this_loop()
        with app.app_context():
            assert publishing.latest("shop").version == 1  # memory
            started = time.monotonic()
            with pytest.raises(StoreAway):
                publishing.latest("other")  # not in memory: refused at once, not read
            return time.monotonic() - started
    took = []  # the loop runs on a thread of its own, as in a worker (and as Playwright's loop is not)
    try:
        loop_thread = threading.Thread(target=lambda: took.append(asyncio.run(on_the_loop())))
        loop_thread.start()
        loop_thread.join()
        assert took and took[0] < 0.05
        with app.app_context():  # the loop is gone: this thread may wait on the store again
            with pytest.raises(UNAVAILABLE):
                get_store().outage.call(get_store().site_exists, "other")
    finally:
        process().send_signal(signal.SIGCONT)
    app.extensions["vitrina_store"].close()


def test_collect_spools_within_a_second_on_a_stopped_redis_and_counts_once(redis, tmp_path):
    url, _, _, process = redis
    app = _redis_app(tmp_path, url)
    auth = make_site(app, "shop")
    _publish(app.test_client(), auth)
    answers = []

    def send(first, count):
        client = app.test_client()
        for i in range(first, first + count):
            answer, took = _elapsed(client.post, "/v1/sites/shop/collect", data=_batch(i))
            answers.append((answer.status_code, took))
    send(0, 5)
    process().send_signal(signal.SIGSTOP)
    try:
        senders = [threading.Thread(target=send, args=(5 + 10 * n, 10)) for n in range(4)]  # as Flask's threads do
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
    finally:
        process().send_signal(signal.SIGCONT)
    assert all(took < HANG for _, took in answers), max(took for _, took in answers)
    statuses = [status for status, _ in answers]
    assert statuses[:5] == [204] * 5 and set(statuses[5:]) == {202}
    send(45, 5)
    wait_for(lambda: spool.pending(app) == 0, timeout=10, what="the spool's replay")
    hero = app.test_client().get("/api/v1/sites/shop/results", headers=auth).get_json()["campaigns"][0]
    assert sum(v["visitors"] for v in hero["variations"]) == 50
    assert sum(v["goals"]["purchase"]["conversions"] for v in hero["variations"]) == 50
    app.extensions["vitrina_store"].close()


def test_a_locked_sqlite_spools_collect_and_still_serves_the_tag(tmp_path):
    app = create_app(env={"VITRINA_DATABASE": str(tmp_path / "v.sqlite3"), "VITRINA_SECRET_KEY": "outage-secret-key-0123456789",
                          "VITRINA_SPOOL_DIR": str(tmp_path / "spool"), "VITRINA_RATE_CLIENT": "0"})
    client = app.test_client()
    auth = make_site(app, "shop")
    _publish(client, auth)
    holder = sqlite3.connect(app.config["VITRINA_DATABASE"], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        collected, took = _elapsed(client.post, "/v1/sites/shop/collect", data=_batch(0))
        assert collected.status_code == 202 and took < HANG  # the busy timeout is bounded: spooled
        tag, took = _elapsed(client.get, "/v1/sites/shop/tag.js")
        assert tag.status_code == 200 and took < HANG  # readers never wait for a writer (WAL)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    wait_for(lambda: spool.pending(app) == 0, timeout=10, what="the spool's replay")
    hero = client.get("/api/v1/sites/shop/results", headers=auth).get_json()["campaigns"][0]
    assert sum(v["visitors"] for v in hero["variations"]) == 1
