"""server/configs/latest.py: two LatestVersions over two store instances of one database stand
for two server processes. An announced version is seen by the other at once (SQLite: the
shared stamp file) or within moments (Redis: pub/sub); an unannounced one within MAX_AGE_S."""
import time

import pytest

from server.configs.latest import MAX_AGE_S, LatestVersions
from server.store.redis_store import RedisStore
from server.store.sqlite import SQLiteStore
from tests.servers import redis_server


def _add(store):
    return store.add_version("shop", lambda n: (f'{{"version": {n}}}', f"sig {n}", "2026-11-23T20:00:00Z"))


def _seen_within(watch, version, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if watch.get("shop") == version:
            return True
        time.sleep(0.01)
    return watch.get("shop") == version


@pytest.fixture(params=["sqlite", "redis"])
def stores(request, tmp_path):
    """Two store instances on one database, as two processes have."""
    if request.param == "sqlite":
        path = str(tmp_path / "watch.sqlite3")
        pair = SQLiteStore(path), SQLiteStore(path)
        pair[0].create_site("shop", "hash")
        yield pair
    else:
        with redis_server() as (url, _, _):
            pair = RedisStore(url), RedisStore(url)
            pair[0].create_site("shop", "hash")
            yield pair
    for store in pair:
        store.close()


def test_an_announced_version_reaches_the_other_process(stores):
    publisher, other = LatestVersions(stores[0]), LatestVersions(stores[1])
    assert other.get("shop") is None and publisher.get("shop") is None
    for expected in (1, 2, 3):
        assert _add(stores[0]) == expected
        publisher.announce("shop")
        assert publisher.get("shop") == expected  # the publishing process at once
        assert _seen_within(other, expected, 0.5)


def test_an_unannounced_version_is_seen_within_the_age_bound(stores):
    other = LatestVersions(stores[1])
    assert other.get("shop") is None
    for _ in range(3):  # memoised: repeated reads do not go to the store
        assert other.get("shop") is None
    _add(stores[0])  # a version added without announcing it (a process killed right after its commit)
    started = time.monotonic()
    assert _seen_within(other, 1, MAX_AGE_S + 0.5)
    assert time.monotonic() - started <= MAX_AGE_S + 0.5


def test_the_memo_does_not_read_the_store_per_call(tmp_path):
    store = SQLiteStore(str(tmp_path / "calls.sqlite3"))
    store.create_site("shop", "hash")
    _add(store)
    reads = []
    real = store.latest_version
    store.latest_version = lambda site: reads.append(site) or real(site)
    watch = LatestVersions(store)
    assert [watch.get("shop") for _ in range(50)] == [1] * 50
    assert len(reads) <= 2  # once, or twice if the one-second bound ticked over meanwhile
    store.close()
