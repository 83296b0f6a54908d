"""One suite for every store backend: SQLite (embedded default) and Redis (real redis-server,
and a real 3-master Redis Cluster). Both must give the same answers to the same calls."""
import json
import threading
import time
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from servers import redis_cluster, redis_server

from server.store import ApiKey, KeyExists, SiteExists, UserExists, draft_etag
from server.store.base import COUNTER_METRICS, SLICE_DIMENSIONS
from server.store.redis_store import SCHEMA_VERSION, RedisStore
from server.store.sqlite import MIGRATIONS, SQLiteStore


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        yield SQLiteStore(str(tmp_path / "store.sqlite3"))
        return
    store = RedisStore(request.getfixturevalue("redis_url"))
    store.r.flushall()
    yield store
    store.close()


def exposure(event_id, campaign, variation, holdout=False, day=None, channel=None, slices=(), pre=None):
    event = {"id": event_id, "type": "exposure", "version": 1, "ts": 1763900000000,
             "campaign": campaign, "variation": None if holdout else variation, "holdout": holdout}
    if channel is not None:
        event["channel"] = channel
    return {**_event(event, day), "_slices": list(slices), "_pre": pre}  # as collect adds them (server/events/slices.py)


def conversion(event_id, goal, value=None, day=None):
    event = {"id": event_id, "type": "conversion", "version": 1, "ts": 1763900000000, "goal": goal}
    if value is not None:
        event["value"] = value
    return _event(event, day)


def _event(event, day=None):
    event["_json"] = json.dumps(event, separators=(",", ":"))  # as collect hands them over
    if day is not None:
        event["_day"] = day
    return event


def by_key(counters):
    """{(campaign, variation, goal): counter} for readable assertions."""
    return {(c["campaign"], c["variation"], c["goal"]): c for c in counters}


def basic_scenario(store, site="shop"):
    """Every interface method once; used for each backend and for Redis Cluster."""
    store.create_site(site, f"hash-{site}")
    assert store.site_exists(site) and site in store.list_sites()
    assert store.key_for_hash(f"hash-{site}").site == site
    store.save_draft(site, '{"campaigns": []}')
    assert store.get_draft(site) == '{"campaigns": []}'
    assert store.add_version(site, lambda n: (f"payload {n}", f"sig {n}", "2026-11-23T17:00:00Z")) == 1
    assert store.get_version(site) == (1, "payload 1", "sig 1", "2026-11-23T17:00:00Z")
    assert list(store.list_versions(site)) == [(1, "2026-11-23T17:00:00Z")]
    events = [exposure("e-000001", "hero", "promo"), conversion("e-000002", "purchase", 12.5)]
    assert store.record_events(site, "visitor-1", events) == 2
    assert store.record_events(site, "visitor-1", events) == 0
    counters = by_key(store.counters(site))
    assert counters[("hero", "promo", None)]["visitors"] == 1
    purchase = counters[("hero", "promo", "purchase")]
    assert (purchase["conversions"], purchase["revenue"], purchase["revenue_sq"]) == (1, 12.5, 156.25)
    sliced = [exposure("e-000010", "hero", "control", slices=[("segment", "vip"), ("device.type", "mobile")], pre=(1, 4)),
              order("e-000011", "purchase", 2.0, "o-1")]
    assert store.record_events(site, "visitor-3", sliced) == 2
    (vip,) = [r for r in store.slice_counters(site, "segment") if r["goal"] == "purchase"]
    assert (vip["value"], vip["variation"], vip["conversions"], vip["revenue"]) == ("vip", "control", 1, 2.0)
    # every sum of the campaign's counter, CUPED's and the orders too, in each of the visitor's slices
    assert (vip["orders"], vip["pre_conversions"], vip["pre_revenue"]) == (1, [1, 4], [2.0, 8.0])
    (vip_visitors,) = [r for r in store.slice_counters(site, "segment") if r["goal"] is None]
    assert (vip_visitors["pre_visitors"], vip_visitors["pre_sum"], vip_visitors["pre_products"]) == (1, [1, 4],
                                                                                                   [[1, 4], [4, 16]])
    assert {r["value"] for r in store.slice_counters(site, "device.type")} == {"mobile"}
    assert store.slice_counters(site, "geo.country") == []
    assert by_key(store.counters(site))[("hero", "control", None)]["pre_sum"] == [1, 4]
    logged, missed = store.events_after(site, None, 3)
    assert [e["id"] for e in logged] == ["e-000001", "e-000002", "e-000010"] and not missed
    assert [e["id"] for e in store.events_after(site, logged[-1]["cursor"], 10)[0]] == ["e-000011"]
    store.count_exclusions(site, {"bot": 2})
    store.count_exclusions(site, {"bot": 1, "internal": 4})
    assert store.exclusions(site) == {"bot": 3, "internal": 4}
    assert store.add_version(site, lambda n: (f"payload {n}", f"sig {n}", "2026-11-23T18:00:00Z"),
                             '{"published_by":"system"}') == 2
    assert store.version_meta(site, [1, 2, 3]) == {2: '{"published_by":"system"}'}
    assert store.upsert_products(site, [("sku-1", '{"id":"sku-1"}'), ("sku-2", '{"id":"sku-2"}')]) == 2
    assert store.get_products(site, ["sku-2", "sku-9"]) == {"sku-2": '{"id":"sku-2"}'}
    assert store.list_products(site, "sku-1") == [("sku-2", '{"id":"sku-2"}')]
    assert store.record_interactions(site, [("e-000003", 1.0, "v:visitor-1", "s:1", "view", '["sku-1"]')]) == 1
    assert list(store.interactions(site, 0)) == [(1.0, "v:visitor-1", "s:1", "view", '["sku-1"]')]
    store.write_rankings(site, [("bt:sku-1", '[["sku-2",1]]')], built_at=5.0)
    assert store.rankings(site, ["bt:sku-1", "bt:sku-2"]) == {"bt:sku-1": '[["sku-2",1]]'}
    assert store.delete_products(site, ["sku-1"]) == 1 and store.count_products(site) == 1
    assert store.put_identity(site, '{"salt":"s"}', if_absent=True) and store.get_identity(site) == '{"salt":"s"}'
    assert store.upsert_customers(site, [("c1.a", '{"tier":"gold"}'), ("c1.b", "{}")], mark="m") == 2
    assert store.get_customers(site, ["c1.a", "c1.b"]) == {"c1.a": '{"tier":"gold"}', "c1.b": "{}"}
    store.link_visitor(site, "c1.a", "visitor-1")
    assert store.linked_visitors(site, "c1.a") == ["visitor-1"]
    assert store.erase_units(site, ["c1.a"], ["c1.a", "visitor-1"]) == {"customers": 1, "events": 2, "interactions": 1}
    assert store.count_customers(site) == 1 and store.delete_customers_unmarked(site, "m") == 0
    assert store.record_events(site, "visitor-2", [exposure("e-000004", "hero", "promo", day="2026-11-23")]) == 1
    assert store.daily_counters(site, "hero") == [{"day": "2026-11-23", "variation": "promo", "goal": None,
                                                   "visitors": 1, "conversions": 0}]
    assert store.save_draft(site, "{}", if_etag=draft_etag('{"campaigns": []}'))
    store.create_user(f"ann@{site}.example")
    store.set_role(site, f"ann@{site}.example", "owner")
    assert store.roles_of(f"ann@{site}.example") == {site: "owner"}
    store.add_audit(site, '{"action":"x"}')
    assert store.audit_log(site) == ['{"action":"x"}']
    assert store.ping()


def test_basic_scenario(store):
    basic_scenario(store)


def test_duplicate_site_is_refused_and_keeps_its_key(store):
    store.create_site("shop", "hash-1")
    with pytest.raises(SiteExists):
        store.create_site("shop", "hash-2")
    assert store.key_for_hash("hash-1").site == "shop"
    assert store.key_for_hash("hash-2") is None
    assert [k.name for k in store.list_keys("shop")] == ["default"]


def test_sites_and_key_lookup(store):
    assert store.list_sites() == [] and not store.site_exists("shop")
    before = time.time()
    store.create_site("shop", "hash-shop")
    store.create_site("alpha", "hash-alpha")
    store.add_key("shop", "ci", "publish", "hash-shop-2")
    assert store.list_sites() == ["alpha", "shop"]
    assert store.site_exists("alpha") and not store.site_exists("beta")
    owner = store.key_for_hash("hash-shop")
    assert (owner.site, owner.name, owner.scope, owner.last_used_at) == ("shop", "default", "owner", None)
    assert before <= owner.created_at <= time.time()
    assert (store.key_for_hash("hash-shop-2").site, store.key_for_hash("hash-shop-2").scope) == ("shop", "publish")
    assert store.key_for_hash("hash-alpha").site == "alpha"
    assert store.key_for_hash("unknown") is None


def test_keys_are_named_per_site_listed_oldest_first_and_revoked_at_once(store):
    store.create_site("shop", "hash-owner")
    store.create_site("alpha", "hash-alpha")
    store.add_key("shop", "ci", "publish", "hash-ci")
    store.add_key("shop", "dashboard", "read", "hash-dash")
    store.add_key("alpha", "ci", "read", "hash-alpha-ci")  # names are per site
    with pytest.raises(KeyExists):
        store.add_key("shop", "ci", "read", "hash-other")
    assert store.key_for_hash("hash-other") is None  # the refused key opens nothing
    keys = store.list_keys("shop")
    assert [(k.name, k.scope) for k in keys] == [("default", "owner"), ("ci", "publish"), ("dashboard", "read")]
    assert all(isinstance(k, ApiKey) and k.site == "shop" for k in keys)
    assert [k.name for k in store.list_keys("alpha")] == ["default", "ci"]
    assert store.list_keys("nothing") == []
    assert store.revoke_key("shop", "ci") is True
    assert store.key_for_hash("hash-ci") is None
    assert store.revoke_key("shop", "ci") is False and store.revoke_key("nothing", "ci") is False
    assert [k.name for k in store.list_keys("shop")] == ["default", "dashboard"]
    assert store.key_for_hash("hash-alpha-ci").site == "alpha"  # alpha's key of that name stays
    store.add_key("shop", "ci", "read", "hash-ci-2")  # the name is free again
    assert store.key_for_hash("hash-ci-2").scope == "read"


def test_last_use_of_a_key(store):
    store.create_site("shop", "hash-owner")
    store.add_key("shop", "ci", "publish", "hash-ci")
    store.touch_key("hash-ci", 1763900000.5)
    assert store.key_for_hash("hash-ci").last_used_at == 1763900000.5
    assert store.key_for_hash("hash-owner").last_used_at is None
    assert [k.last_used_at for k in store.list_keys("shop")] == [None, 1763900000.5]
    store.revoke_key("shop", "ci")
    store.touch_key("hash-ci", 1763900001.0)  # a request that looked the key up just before
    assert store.key_for_hash("hash-ci") is None and len(store.list_keys("shop")) == 1


def test_an_unknown_huge_version_is_none(store):
    store.create_site("shop", "h")
    store.add_version("shop", lambda n: ("p", "s", "at"))
    assert store.get_version("shop", 2**63) is None and store.get_version("shop", 10**30) is None


def test_draft_round_trip(store):
    store.create_site("shop", "h")
    assert store.get_draft("shop") is None
    store.save_draft("shop", '{"a":1}')
    store.save_draft("shop", '{"a":2,"text":"é \\u2028"}')
    assert store.get_draft("shop") == '{"a":2,"text":"é \\u2028"}'
    assert store.get_draft("other") is None


def test_a_draft_saved_with_a_stale_etag_is_refused_and_changes_nothing(store):
    store.create_site("shop", "h")
    assert store.save_draft("shop", '{"a":1}', if_etag=draft_etag(None))  # no draft yet: the empty tag
    first = draft_etag('{"a":1}')
    assert store.save_draft("shop", '{"a":2}', if_etag=first)
    assert not store.save_draft("shop", '{"a":3}', if_etag=first)  # someone saved in between
    assert store.get_draft("shop") == '{"a":2}'
    assert store.save_draft("shop", '{"a":4}')  # without a tag: saved whatever is there
    assert not store.save_draft("other", '{"a":1}', if_etag=first)
    assert draft_etag('{"a":2}') != draft_etag('{"a":1}') and len(draft_etag(None)) == 40


def test_concurrent_saves_with_the_same_etag_store_exactly_one(store):
    store.create_site("shop", "h")
    store.save_draft("shop", "{}")
    tag = draft_etag("{}")
    results = []

    def save(n):
        results.append((n, store.save_draft("shop", f'{{"n":{n}}}', if_etag=tag)))
    threads = [threading.Thread(target=save, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [n for n, ok in results if ok]
    assert len(winners) == 1 and store.get_draft("shop") == f'{{"n":{winners[0]}}}'


def test_users_roles_and_sessions(store):
    assert store.get_user("ann@shop.example") is None
    store.create_user("ann@shop.example")
    with pytest.raises(UserExists):
        store.create_user("ann@shop.example")
    user = store.get_user("ann@shop.example")
    assert (user.email, user.password_hash, user.sessions_epoch) == ("ann@shop.example", None, 0)
    assert abs(user.created_at - time.time()) < 60
    store.set_password("ann@shop.example", "$argon2id$hash")
    user = store.get_user("ann@shop.example")
    assert user.password_hash == "$argon2id$hash" and user.sessions_epoch == 1  # old sessions are void
    assert store.end_sessions("ann@shop.example") == 2
    assert store.end_sessions("nobody@shop.example") is None
    store.set_role("shop", "ann@shop.example", "editor")
    store.set_role("books", "ann@shop.example", "viewer")
    store.set_role("shop", "ann@shop.example", "owner")  # replaces
    store.set_role("shop", "bob@shop.example", "viewer")
    assert store.roles_of("ann@shop.example") == {"books": "viewer", "shop": "owner"}
    assert [tuple(row) for row in store.site_users("shop")] == [("ann@shop.example", "owner"),
                                                                ("bob@shop.example", "viewer")]
    assert store.remove_role("shop", "bob@shop.example") and not store.remove_role("shop", "bob@shop.example")
    assert store.roles_of("bob@shop.example") == {}


def test_the_audit_log_is_per_site_newest_first_and_bounded_by_the_caller(store):
    for n in range(5):
        store.add_audit("shop", json.dumps({"n": n}))
    store.add_audit("books", '{"n": "other"}')
    assert [json.loads(e)["n"] for e in store.audit_log("shop")] == [4, 3, 2, 1, 0]
    assert [json.loads(e)["n"] for e in store.audit_log("shop", limit=2)] == [4, 3]
    assert store.audit_log("none") == []


def test_daily_counters_count_each_first_exposure_and_conversion_on_its_day(store):
    store.create_site("shop", "h")
    store.record_events("shop", "v-1", [exposure("e-1", "hero", "promo", day="2026-03-01"),
                                        conversion("e-2", "buy", 5, day="2026-03-01")])
    store.record_events("shop", "v-1", [conversion("e-3", "buy", 5, day="2026-03-02")])  # a repeat: no new conversion
    store.record_events("shop", "v-2", [exposure("e-4", "hero", None, holdout=True, day="2026-03-02"),
                                        exposure("e-5", "hero", "promo", day="2026-03-02"),  # first wins
                                        exposure("e-6", "cta", "control", day="2026-03-02"),
                                        conversion("e-7", "buy", day="2026-03-02")])
    store.record_events("shop", "v-3", [exposure("e-8", "hero", "promo")])  # no day: counted in no day
    rows = sorted(store.daily_counters("shop", "hero"), key=lambda r: (r["day"], r["variation"] or "", r["goal"] or ""))
    assert rows == [
        {"day": "2026-03-01", "variation": "promo", "goal": None, "visitors": 1, "conversions": 0},
        {"day": "2026-03-01", "variation": "promo", "goal": "buy", "visitors": 0, "conversions": 1},
        {"day": "2026-03-02", "variation": None, "goal": None, "visitors": 1, "conversions": 0},
        {"day": "2026-03-02", "variation": None, "goal": "buy", "visitors": 0, "conversions": 1},
    ]
    assert by_key(store.counters("shop"))[("hero", "promo", None)]["visitors"] == 2
    assert store.daily_counters("shop", "nothing") == []


def test_versions_are_numbered_per_site_and_listed_newest_first(store):
    for site in ("shop", "alpha"):
        store.create_site(site, "h-" + site)
    seen = []

    def make(n):
        seen.append(n)
        return f"payload {n}", f"sig {n}", f"2026-11-23T17:00:0{n}Z"

    assert [store.add_version("shop", make) for _ in range(3)] == [1, 2, 3]
    assert store.add_version("alpha", make) == 1
    assert seen == [1, 2, 3, 1]
    assert [tuple(r) for r in store.list_versions("shop")] == [
        (3, "2026-11-23T17:00:03Z"), (2, "2026-11-23T17:00:02Z"), (1, "2026-11-23T17:00:01Z")]
    assert list(store.list_versions("nothing")) == []


def test_get_version_latest_specific_and_missing(store):
    store.create_site("shop", "h")
    assert store.get_version("shop") is None
    assert store.get_version("shop", 1) is None
    for _ in range(2):
        store.add_version("shop", lambda n: (f"payload {n}", f"sig {n}", f"at {n}"))
    assert tuple(store.get_version("shop")) == (2, "payload 2", "sig 2", "at 2")
    assert tuple(store.get_version("shop", 1)) == (1, "payload 1", "sig 1", "at 1")
    assert store.get_version("shop", 3) is None
    assert store.get_version("other") is None


def test_revisions_are_numbered_per_site_and_each_sees_the_one_before(store):
    for site in ("shop", "alpha"):
        store.create_site(site, "h-" + site)
    assert store.get_revision("shop") is None and store.latest_revision("shop") is None
    before = []

    def make(n):
        before.append(store.get_revision("shop") and store.get_revision("shop")[0])
        return 7, f"payload {n}", f"sig {n}", f"at {n}"

    assert [store.add_revision("shop", make) for _ in range(3)] == [1, 2, 3]
    assert before == [None, 1, 2]  # make_payload reads the latest, which is n - 1
    assert store.add_revision("alpha", lambda n: (1, "p", "s", "at")) == 1
    assert tuple(store.get_revision("shop")) == (3, 7, "payload 3", "sig 3", "at 3")
    assert tuple(store.get_revision("shop", 2)) == (2, 7, "payload 2", "sig 2", "at 2")
    assert store.latest_revision("shop") == 3 and store.latest_revision("alpha") == 1
    assert store.get_revision("shop", 4) is None and store.get_revision("shop", 2**70) is None
    with pytest.raises(RuntimeError):
        store.add_revision("shop", lambda n: (_ for _ in ()).throw(RuntimeError("no")))
    assert store.latest_revision("shop") == 3


def test_concurrent_revisions_get_distinct_consecutive_numbers(store):
    store.create_site("shop", "h")
    results = []

    def make(n):
        time.sleep(0.001)
        return 1, f"payload {n}", "sig", "at"

    workers = [threading.Thread(target=lambda: results.extend(store.add_revision("shop", make) for _ in range(4)))
               for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(results) == list(range(1, 17))
    assert all(store.get_revision("shop", n)[2] == f"payload {n}" for n in range(1, 17))


def test_an_assignments_label_keeps_slice_and_revision_in_every_counter_it_feeds(store):
    """Adaptive exposures are stored with the label web|<revision>|<slice> as their channel: the
    visitor's later conversions count under it; channel filters read the label's channel part."""
    store.create_site("shop", "h")
    store.record_events("shop", "v1.aaaaaaaa", [exposure("e1", "hero", "b", channel="web|3|segment:vip"),
                                                 conversion("c1", "purchase", 10)])
    store.record_events("shop", "v1.bbbbbbbb", [exposure("e2", "hero", "b", channel="web|0|device.type=mobile")])
    store.record_events("shop", "v1.cccccccc", [exposure("e3", "hero", "b"), conversion("c3", "purchase", 5)])
    store.record_events("shop", "v1.aaaaaaaa", [exposure("e4", "hero", "c", channel="web|4|default")])  # sticky
    labelled = {(r["channel"], r["goal"]): (r["visitors"], r["conversions"], r["revenue"])
                for r in store.labelled_counters("shop")}
    assert labelled == {("web|3|segment:vip", None): (1, 0, 0.0), ("web|3|segment:vip", "purchase"): (0, 1, 10.0),
                        ("web|0|device.type=mobile", None): (1, 0, 0.0), ("web", None): (1, 0, 0.0),
                        ("web", "purchase"): (0, 1, 5.0)}
    for channel in (None, "web"):
        merged = by_key(store.counters("shop", channel))
        assert merged[("hero", "b", None)]["visitors"] == 3
        assert (merged[("hero", "b", "purchase")]["conversions"], merged[("hero", "b", "purchase")]["revenue"]) == (2, 15.0)
    assert store.counters("shop", "email") == []


def test_failed_payload_leaves_no_version(store):
    store.create_site("shop", "h")

    def broken(n):
        raise RuntimeError("compile failed")

    with pytest.raises(RuntimeError):
        store.add_version("shop", broken)
    assert store.get_version("shop") is None
    assert store.add_version("shop", lambda n: ("p", "s", "at")) == 1


def test_concurrent_publishes_get_distinct_consecutive_versions(store):
    store.create_site("shop", "h")
    threads, per_thread = 6, 5
    results, errors = [], []

    def make(n):
        time.sleep(0.001)  # widen the window between allocating and storing
        return f"payload {n}", "sig", "at"

    def publish():
        try:
            for _ in range(per_thread):
                results.append(store.add_version("shop", make))
        except Exception as e:  # surfaced by the assertion below
            errors.append(e)

    workers = [threading.Thread(target=publish) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert sorted(results) == list(range(1, threads * per_thread + 1))
    assert [v for v, _ in store.list_versions("shop")] == list(range(threads * per_thread, 0, -1))
    assert all(store.get_version("shop", n)[1] == f"payload {n}" for n in results)


def test_events_are_idempotent_by_id(store):
    store.create_site("shop", "h")
    batch = [exposure("e-000001", "hero", "promo"), conversion("e-000002", "purchase", 10)]
    assert store.record_events("shop", "visitor-1", batch) == 2
    assert store.record_events("shop", "visitor-1", batch) == 0
    # an id already seen is skipped even inside a new batch, even for another visitor
    again = [conversion("e-000002", "purchase", 10), conversion("e-000003", "purchase", 5)]
    assert store.record_events("shop", "visitor-2", again) == 1
    assert store.record_events("shop", "visitor-1", [conversion("e-000004", "purchase", 1)] * 2) == 1
    counters = by_key(store.counters("shop"))
    assert counters[("hero", "promo", None)]["visitors"] == 1
    assert counters[("hero", "promo", "purchase")]["conversions"] == 1
    assert counters[("hero", "promo", "purchase")]["revenue"] == 11.0
    assert store.record_events("shop", "visitor-1", []) == 0


def test_event_ids_are_per_site(store):
    for site in ("shop", "alpha"):
        store.create_site(site, "h-" + site)
        assert store.record_events(site, "visitor-1", [exposure("e-000001", "hero", "promo")]) == 1
    assert by_key(store.counters("alpha"))[("hero", "promo", None)]["visitors"] == 1
    assert store.counters("nothing") == []


def test_first_variation_wins(store):
    store.create_site("shop", "h")
    store.record_events("shop", "visitor-1", [exposure("e-000001", "hero", "promo")])
    store.record_events("shop", "visitor-1", [exposure("e-000002", "hero", "control"),
                                              exposure("e-000003", "hero", "promo")])
    store.record_events("shop", "visitor-2", [exposure("e-000004", "hero", "control")])
    store.record_events("shop", "visitor-1", [conversion("e-000005", "purchase", 3)])
    counters = by_key(store.counters("shop"))
    assert counters[("hero", "promo", None)]["visitors"] == 1
    assert counters[("hero", "control", None)]["visitors"] == 1
    assert counters[("hero", "promo", "purchase")]["conversions"] == 1
    assert ("hero", "control", "purchase") not in counters


def test_holdout_exposures_and_conversions_count_as_holdout(store):
    store.create_site("shop", "h")
    store.record_events("shop", "visitor-1", [exposure("e-000001", "hero", None, holdout=True),
                                              exposure("e-000002", "hero", "promo")])
    store.record_events("shop", "visitor-2", [exposure("e-000003", "hero", None, holdout=True)])
    store.record_events("shop", "visitor-1", [conversion("e-000004", "purchase", 7.5)])
    counters = by_key(store.counters("shop"))
    assert counters[("hero", None, None)]["visitors"] == 2
    assert ("hero", "promo", None) not in counters
    holdout = counters[("hero", None, "purchase")]
    assert (holdout["conversions"], holdout["revenue"]) == (1, 7.5)


def test_conversion_before_exposure_is_not_attributed(store):
    store.create_site("shop", "h")
    store.record_events("shop", "visitor-1", [conversion("e-000001", "purchase", 20)])
    assert store.counters("shop") == []
    store.record_events("shop", "visitor-1", [exposure("e-000002", "hero", "promo")])
    store.record_events("shop", "visitor-1", [conversion("e-000003", "purchase", 5)])
    purchase = by_key(store.counters("shop"))[("hero", "promo", "purchase")]
    assert (purchase["conversions"], purchase["revenue"], purchase["revenue_sq"]) == (1, 5.0, 25.0)


def test_conversion_counts_once_per_visitor_revenue_sums_and_spreads_over_campaigns(store):
    store.create_site("shop", "h")
    store.record_events("shop", "visitor-1", [exposure("e-000001", "hero", "promo"),
                                              exposure("e-000002", "cta", "control")])
    store.record_events("shop", "visitor-1", [conversion("e-000003", "purchase", 10),
                                              conversion("e-000004", "purchase", 2.5),
                                              conversion("e-000005", "add_to_cart")])
    counters = by_key(store.counters("shop"))
    for key in (("hero", "promo", "purchase"), ("cta", "control", "purchase")):
        assert (counters[key]["conversions"], counters[key]["revenue"], counters[key]["visitors"]) == (1, 12.5, 0)
    assert counters[("hero", "promo", "add_to_cart")]["conversions"] == 1
    assert counters[("hero", "promo", "add_to_cart")]["revenue"] == 0.0
    assert set(counters[("hero", "promo", "purchase")]) == {
        "campaign", "variation", "goal", "visitors", "conversions", "revenue", "revenue_sq", "orders", "orders_sq",
        "revenue_orders"}
    assert counters[("hero", "promo", "purchase")]["orders"] == 0  # no order ids: no orders


def order(event_id, goal, value, order_id, campaign=None, day=None):
    event = {"id": event_id, "type": "conversion", "version": 1, "ts": 1763900000000, "goal": goal, "value": value,
             "order_id": order_id}
    if campaign is not None:
        event["campaign"] = campaign
    return _event(event, day)


def test_orders_are_counted_once_per_visitor_goal_and_order_id(store):
    store.create_site("shop", "h")
    store.record_events("shop", "visitor-1", [exposure("e-000001", "hero", "promo")])
    store.record_events("shop", "visitor-1", [order("e-000002", "purchase", 30, "T-1"),
                                              order("e-000003", "purchase", 30, "T-1"),  # the page reloaded
                                              order("e-000004", "purchase", 10, "T-2")])
    store.record_events("shop", "visitor-1", [order("e-000005", "purchase", 30, "T-1")])  # a later page
    store.record_events("shop", "visitor-2", [exposure("e-000006", "hero", "promo"),
                                              order("e-000007", "purchase", 5, "T-1")])  # another visitor's T-1
    purchase = by_key(store.counters("shop"))[("hero", "promo", "purchase")]
    assert (purchase["conversions"], purchase["revenue"], purchase["orders"]) == (2, 45.0, 3)
    assert purchase["orders_sq"] == 2 ** 2 + 1 ** 2
    assert purchase["revenue_orders"] == 40 * 2 + 5 * 1  # sum over visitors of revenue x orders
    assert purchase["revenue_sq"] == 40 ** 2 + 5 ** 2


def test_a_conversion_naming_a_campaign_counts_for_that_campaign_alone(store):
    store.create_site("shop", "h")
    store.record_events("shop", "visitor-1", [exposure("e-000001", "hero", "promo"),
                                              exposure("e-000002", "reco", "bought")])
    store.record_events("shop", "visitor-1", [order("e-000003", "recommendation_purchase", 12, "T-9", "reco"),
                                              order("e-000004", "recommendation_purchase", 1, "T-8", "gone")])
    counters = by_key(store.counters("shop"))
    assert counters[("reco", "bought", "recommendation_purchase")]["revenue"] == 12.0
    assert counters[("reco", "bought", "recommendation_purchase")]["orders"] == 1
    assert ("hero", "promo", "recommendation_purchase") not in counters


def test_revenue_sq_is_the_sum_over_visitors_of_squared_revenue(store):
    store.create_site("shop", "h")
    spends = {"visitor-1": [10, 5], "visitor-2": [2.5], "visitor-3": [-4, 1.25, 0.75]}
    n = 0
    for visitor, values in spends.items():
        n += 1
        store.record_events("shop", visitor, [exposure(f"x-{n:06d}", "hero", "promo")])
        for value in values:
            n += 1
            store.record_events("shop", visitor, [conversion(f"c-{n:06d}", "purchase", value)])
    purchase = by_key(store.counters("shop"))[("hero", "promo", "purchase")]
    assert purchase["conversions"] == 3
    assert purchase["revenue"] == sum(sum(v) for v in spends.values())
    assert purchase["revenue_sq"] == 15 ** 2 + 2.5 ** 2 + (-2) ** 2


def test_latest_version_is_a_cheap_read(store):
    store.create_site("shop", "hash-shop")
    assert store.latest_version("shop") is None
    for n in (1, 2):
        store.add_version("shop", lambda v: (json.dumps({"version": v}), "sig", "2026-11-23T00:00:00Z"))
    assert store.latest_version("shop") == 2 and store.latest_version("other") is None


def test_rejections_are_counted_per_site_and_reason(store):
    assert store.rejections("shop") == {}
    store.count_rejections("shop", {"bucketing": 2, "unknown_version": 1})
    store.count_rejections("shop", {"bucketing": 3})
    store.count_rejections("other", {"invalid": 1})
    assert store.rejections("shop") == {"bucketing": 5, "unknown_version": 1}
    assert store.rejections("other") == {"invalid": 1}


LEGACY_SQLITE = """
CREATE TABLE sites (site TEXT PRIMARY KEY, created_at REAL NOT NULL);
CREATE TABLE api_keys (key_hash TEXT PRIMARY KEY, site TEXT NOT NULL, created_at REAL NOT NULL);
INSERT INTO sites VALUES ('shop', 1700000000), ('alpha', 1700000001);
INSERT INTO api_keys VALUES ('hash-shop-2', 'shop', 1700000005), ('hash-shop', 'shop', 1700000000),
                            ('hash-alpha', 'alpha', 1700000001);
"""


def _legacy_keys_are_named(store):
    assert [(k.name, k.scope) for k in store.list_keys("shop")] == [("default", "owner"), ("default-2", "owner")]
    assert store.key_for_hash("hash-shop").name == "default"
    assert store.key_for_hash("hash-shop-2").name == "default-2"
    assert (store.key_for_hash("hash-alpha").name, store.key_for_hash("hash-alpha").scope) == ("default", "owner")
    store.add_key("shop", "ci", "read", "hash-ci")  # new keys on the upgraded store
    assert store.key_for_hash("hash-ci").scope == "read"


def test_sqlite_keys_from_before_names_become_owner_keys_named_default(tmp_path):
    import sqlite3
    path = str(tmp_path / "old.sqlite3")
    with sqlite3.connect(path) as db:
        db.executescript(LEGACY_SQLITE)
    stores = [SQLiteStore(path) for _ in range(2)]  # the second finds the upgrade done
    _legacy_keys_are_named(stores[1])
    assert stores[0].key_for_hash("hash-shop").created_at == 1700000000
    for store in stores:
        store.close()


def test_redis_keys_from_before_names_become_owner_keys_named_default(redis_url):
    import redis
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushall()
    client.set("vitrina:{shop}:site", "1700000000.0")
    client.set("vitrina:{alpha}:site", "1700000001.0")
    client.sadd("vitrina:sites", "shop", "alpha")
    for key_hash, site in (("hash-shop", "shop"), ("hash-shop-2", "shop"), ("hash-alpha", "alpha")):
        client.set(f"vitrina:{{key:{key_hash}}}:site", site)
    stores = []
    starting = [threading.Thread(target=lambda: stores.append(RedisStore(redis_url))) for _ in range(3)]
    for thread in starting:  # several processes starting at once all run the upgrade
        thread.start()
    for thread in starting:
        thread.join()
    _legacy_keys_are_named(stores[0])
    assert stores[1].key_for_hash("hash-shop").created_at == 1700000000.0
    assert client.keys("vitrina:{key:*}:site") == []  # the old lookup keys are gone
    assert client.get("vitrina:schema") == str(SCHEMA_VERSION)
    for store in stores:
        store.close()
    client.close()


def _layout_2_fields(rows, fifth, metrics):
    """A counters hash of Redis layout 2 (a field per metric) holding counter rows."""
    fields = {}
    for row in rows:
        extra = "" if row[fifth] == "web" and fifth == "channel" else "\0" + row[fifth]
        part = f"{row['campaign']}\0{row['variation'] or ''}\0{row['goal'] or ''}{extra}"
        for metric in metrics:
            if row.get(metric):
                fields[f"{metric}\0{part}"] = repr(row[metric])
    return fields


def test_redis_counters_of_layout_2_are_packed_once_by_processes_upgrading_at_once(redis_url, tmp_path):
    """Layout 2 kept a field per metric (`counters`, `slices:<dimension>`); the upgrade packs them
    into `totals` rows. Its counters hold what SQLite holds for the same events (slices then had
    4 metrics); after the upgrade, by several processes at once, Redis reads the same, and the
    same later events of a new visitor keep both backends equal."""
    import redis
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushall()
    sqlite = SQLiteStore(str(tmp_path / "store.sqlite3"))
    sqlite.create_site("shop", "h")
    first = [("visitor-1", [exposure("e-000001", "hero", "promo", slices=[("segment", "vip"), ("visit.new", "true")]),
                            order("e-000002", "purchase", 12.25, "T-1")]),
             ("c1.customer", [exposure("e-000003", "hero", None, holdout=True, channel="email"),
                              conversion("e-000004", "purchase", 0.1)])]
    for visitor, events in first:
        sqlite.record_events("shop", visitor, events)
    client.set("vitrina:{shop}:site", "1700000000.0")
    client.hset("vitrina:{shop}:counters", mapping=_layout_2_fields(sqlite.labelled_counters("shop"), "channel",
                                                                    COUNTER_METRICS))
    slice_metrics = ("visitors", "conversions", "revenue", "revenue_sq")
    for dimension in ("segment", "visit.new"):
        client.hset(f"vitrina:{{shop}}:slices:{dimension}",
                    mapping=_layout_2_fields(sqlite.slice_counters("shop", dimension), "value", slice_metrics))
    client.set("vitrina:schema", 2)
    stores = [RedisStore(redis_url) for _ in range(3)]
    read = []
    reading = [threading.Thread(target=lambda s=s: read.append(_sorted(s.labelled_counters("shop")))) for s in stores]
    for thread in reading:  # several processes at once: each hash is moved once
        thread.start()
    for thread in reading:
        thread.join()
    expected = _sorted(sqlite.labelled_counters("shop"))
    assert read == [expected] * 3 and client.get("vitrina:schema") == str(SCHEMA_VERSION)
    assert client.keys("vitrina:{shop}:counters") == client.keys("vitrina:{shop}:slices:*") == []
    (vip_purchase,) = [r for r in stores[0].slice_counters("shop", "segment") if r["goal"] == "purchase"]
    assert (vip_purchase["conversions"], vip_purchase["revenue"], vip_purchase["orders"]) == (1, 12.25, 0)
    later = [("visitor-2", [exposure("e-000006", "hero", "promo", slices=[("segment", "vip")], pre=(1, 2)),
                            conversion("e-000007", "purchase", 3)]),
             ("visitor-2", [order("e-000008", "purchase", 1.5, "T-2")])]
    for visitor, events in later:
        assert sqlite.record_events("shop", visitor, events) == stores[1].record_events("shop", visitor, events)
    assert _sorted(stores[2].labelled_counters("shop")) == _sorted(sqlite.labelled_counters("shop"))
    for dimension in SLICE_DIMENSIONS:
        redis_slices = sorted(stores[0].slice_counters("shop", dimension), key=_slice_key)
        sqlite_slices = sorted(sqlite.slice_counters("shop", dimension), key=_slice_key)
        assert [{m: r[m] for m in slice_metrics} for r in redis_slices] == \
            [{m: r[m] for m in slice_metrics} for r in sqlite_slices]
    for store in stores:
        store.close()
    sqlite.close()
    client.close()


def test_sqlite_slice_counters_of_step_5_gain_every_metric(tmp_path):
    """Step 5's slice counters had visitors, conversions and revenue only: step 6 adds orders and
    CUPED's sums, kept from then on; the rows already counted stay."""
    import sqlite3
    path = str(tmp_path / "step5.sqlite3")
    SQLiteStore(path).close()
    with sqlite3.connect(path) as db:
        db.executescript("""
DROP TABLE slice_counters;
CREATE TABLE slice_counters (site TEXT NOT NULL, dimension TEXT NOT NULL, campaign TEXT NOT NULL, value TEXT NOT NULL,
  variation TEXT NOT NULL, goal TEXT NOT NULL, visitors INTEGER NOT NULL DEFAULT 0,
  conversions INTEGER NOT NULL DEFAULT 0, revenue REAL NOT NULL DEFAULT 0, revenue_sq REAL NOT NULL DEFAULT 0,
  PRIMARY KEY (site, dimension, campaign, value, variation, goal)) WITHOUT ROWID;
INSERT INTO slice_counters (site, dimension, campaign, value, variation, goal, visitors)
  VALUES ('shop', 'segment', 'hero', 'vip', 'promo', '', 3);
PRAGMA user_version = 5;
""")
    store = SQLiteStore(path)
    try:
        store.record_events("shop", "visitor-1", [exposure("e-000001", "hero", "promo", slices=[("segment", "vip")],
                                                           pre=(2, 5)), order("e-000002", "purchase", 4, "T-1")])
        rows = {r["goal"]: r for r in store.slice_counters("shop", "segment")}
        assert (rows[None]["visitors"], rows[None]["pre_visitors"], rows[None]["pre_sum"]) == (4, 1, [2, 5])
        assert (rows["purchase"]["orders"], rows["purchase"]["pre_revenue"]) == (1, [8.0, 20.0])
        assert store._db().execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    finally:
        store.close()


def test_ping(store):
    assert store.ping() is True


def test_unix_socket_url(tmp_path):
    socket = tmp_path / "redis.sock"
    with redis_server(("--unixsocket", str(socket))):
        store = RedisStore(f"unix://{socket}")
        try:
            basic_scenario(store)
        finally:
            store.close()


# The same random event sequence through both backends gives identical counters.

VISITORS = ["visitor-a", "visitor-b", "visitor-c"]
event_ids = st.integers(0, 30).map(lambda i: f"event-{i:04d}")  # small pool: duplicates happen
days = st.sampled_from([None, "2026-03-01", "2026-03-02"])
slice_lists = st.lists(st.sampled_from([("segment", "vip"), ("segment", "new"), ("device.type", "mobile"),
                                        ("geo.country", "FR"), ("acquisition", "email"), ("visit.new", "true")]),
                       unique=True, max_size=4)
covariates = st.one_of(st.none(), st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)))
exposures = st.builds(lambda i, c, v, d, ch, sl, pre: exposure(i, c, v, holdout=v is None, day=d, channel=ch,
                                                               slices=sl, pre=pre),
                      event_ids, st.sampled_from(["hero", "cta"]), st.sampled_from(["control", "promo", None]), days,
                      st.sampled_from([None, None, "email"]), slice_lists, covariates)
values = st.one_of(st.none(), st.integers(-100, 1000),
                   st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False))
conversions = st.builds(conversion, event_ids, st.sampled_from(["purchase", "add_to_cart"]), values, days)
orders = st.builds(order, event_ids, st.sampled_from(["purchase", "add_to_cart"]), values.map(lambda v: v or 0),
                   st.sampled_from(["T-1", "T-2", "T-3"]), st.sampled_from([None, "hero", "cta"]), days)
batches = st.lists(st.tuples(st.sampled_from(VISITORS), st.lists(st.one_of(exposures, conversions, orders),
                                                                  min_size=1, max_size=5)), max_size=25)


@pytest.fixture(scope="module")
def both(tmp_path_factory, redis_url):
    redis_store = RedisStore(redis_url)
    yield SQLiteStore(str(tmp_path_factory.mktemp("sqlite") / "store.sqlite3")), redis_store
    redis_store.close()


def _sorted(counters):
    return sorted(counters, key=lambda c: (c["campaign"], c["variation"] or "", c["goal"] or ""))


@settings(max_examples=30, deadline=None)
@given(batches=batches)
def test_backends_fold_the_same_events_into_the_same_counters(both, batches):
    site = "s-" + uuid.uuid4().hex[:12]  # a fresh site per example: no flush needed
    for store in both:
        store.create_site(site, "hash-" + site)
    for visitor, events in batches:
        assert len({store.record_events(site, visitor, events) for store in both}) == 1
    for channel in (None, "web", "email"):
        sqlite_counters, redis_counters = (_sorted(store.counters(site, channel)) for store in both)
        assert redis_counters == sqlite_counters
    for campaign in ("hero", "cta"):
        sqlite_daily, redis_daily = (sorted(store.daily_counters(site, campaign), key=lambda r: (
            r["day"], r["variation"] or "", r["goal"] or "")) for store in both)
        assert redis_daily == sqlite_daily
    for dimension in SLICE_DIMENSIONS:
        sqlite_slices, redis_slices = (sorted(store.slice_counters(site, dimension), key=_slice_key) for store in both)
        assert redis_slices == sqlite_slices


def _slice_key(row):
    return row["value"], row["campaign"], row["variation"] or "", row["goal"] or ""


def test_redis_cluster():
    with redis_cluster() as (url, ports):
        store = RedisStore(url)
        try:
            # several sites: their hash tags spread them over the masters
            sites = [f"site-{i}" for i in range(6)]
            for site in sites:
                basic_scenario(store, site)
            assert store.list_sites() == sites
            nodes = {store.r.get_node_from_key(f"vitrina:{{{site}}}:totals").name for site in sites}
            assert len(nodes) > 1
        finally:
            store.close()


# Catalogue, interactions, rankings, merchandising, locks (server/catalog, server/recs)

def products(*ids, body="{}"):
    return [(pid, f'{{"id":"{pid}"{body[1:]}' if body != "{}" else f'{{"id":"{pid}"}}') for pid in ids]


def test_products_upsert_read_page_and_count(store):
    assert store.count_products("shop") == 0 and store.list_products("shop") == []
    assert store.upsert_products("shop", products("b", "a", "c/1", "a.2")) == 4
    store.upsert_products("shop", [("a", '{"id":"a","title":"new"}')])
    assert store.get_products("shop", ["a", "zz", "a"]) == {"a": '{"id":"a","title":"new"}'}
    assert [pid for pid, _ in store.list_products("shop")] == ["a", "a.2", "b", "c/1"]  # byte order
    assert [pid for pid, _ in store.list_products("shop", after="a", limit=2)] == ["a.2", "b"]
    assert store.list_products("shop", after="c/1") == []
    assert store.count_products("shop") == 4 and store.count_products("other") == 0
    assert store.get_products("other", ["a"]) == {}


def test_delete_products_counts_only_existing_ones(store):
    store.upsert_products("shop", products("a", "b"))
    assert store.delete_products("shop", ["a", "a", "missing"]) == 1
    assert store.delete_products("shop", []) == 0
    assert [pid for pid, _ in store.list_products("shop")] == ["b"]


def test_a_full_import_removes_what_it_did_not_store(store):
    store.upsert_products("shop", products(*(f"old-{i:04d}" for i in range(1200)), "kept"))
    store.upsert_products("other", products("old-0001"))
    store.upsert_products("shop", products("kept", "new"), mark="m1")
    assert store.delete_products_unmarked("shop", "m1") == 1200
    assert [pid for pid, _ in store.list_products("shop")] == ["kept", "new"]
    assert store.get_products("shop", ["old-0001"]) == {}
    assert store.count_products("other") == 1  # other sites untouched
    # the mark is forgotten: the next full import with another mark starts afresh
    store.upsert_products("shop", products("new"), mark="m2")
    assert store.delete_products_unmarked("shop", "m2") == 1
    assert store.count_products("shop") == 1


def test_many_products_round_trip(store):
    rows = [(f"sku-{i:05d}", json.dumps({"id": f"sku-{i:05d}", "title": "é" * (i % 7)})) for i in range(2500)]
    assert store.upsert_products("shop", rows) == 2500
    assert store.get_products("shop", [pid for pid, _ in rows]) == dict(rows)
    paged, after = [], ""
    while True:
        page = store.list_products("shop", after, 1000)
        if not page:
            break
        paged += page
        after = page[-1][0]
    assert paged == rows


def test_interactions_are_idempotent_by_key_and_filtered_by_time(store):
    rows = [("e-000001", 100.0, "v:a", "s:1", "view", '["x"]'), ("o:order-1", 50.5, "c:7", "o:order-1", "purchase",
                                                                   '["x","y"]')]
    assert store.record_interactions("shop", rows) == 2
    assert store.record_interactions("shop", rows + [("e-000002", 200.0, "v:a", "s:2", "cart", '["y"]')]) == 1
    assert sorted(store.interactions("shop", 0)) == [
        (50.5, "c:7", "o:order-1", "purchase", '["x","y"]'), (100.0, "v:a", "s:1", "view", '["x"]'),
        (200.0, "v:a", "s:2", "cart", '["y"]')]
    assert sorted(t for t, *_ in store.interactions("shop", 100.0)) == [100.0, 200.0]
    assert list(store.interactions("other", 0)) == []
    assert store.recs_status("shop")["signals_at"] is not None


def test_many_interactions_are_all_read_back(store):
    rows = [(f"e-{i:06d}", float(i), f"v:{i % 97}", f"s:{i % 13}", "view", f'["p{i % 50}"]') for i in range(12_345)]
    assert store.record_interactions("shop", rows) == len(rows)
    assert sorted(store.interactions("shop", 0)) == sorted(r[1:] for r in rows)


def test_rankings_are_replaced_whole(store):
    store.write_rankings("shop", [(f"bt:{i}", f"[{i}]") for i in range(2100)] + [("bs", "[]")], built_at=10.0)
    assert store.rankings("shop", ["bt:5", "bt:2099", "bs", "nope"]) == {"bt:5": "[5]", "bt:2099": "[2099]", "bs": "[]"}
    store.write_rankings("shop", iter([("bt:5", "[55]"), ("tr", "[1]")]), built_at=20.0)
    assert store.rankings("shop", ["bt:5", "bt:6", "bs", "tr"]) == {"bt:5": "[55]", "tr": "[1]"}
    assert store.recs_status("shop")["built_at"] == 20.0
    store.write_rankings("shop", [], built_at=30.0)
    assert store.rankings("shop", ["bt:5", "tr"]) == {}
    assert store.rankings("other", ["bt:5"]) == {}


def test_recs_status_notes_each_kind_of_input(store):
    assert store.recs_status("shop") == {"imports_at": None, "signals_at": None, "built_at": None}
    before = time.time()
    store.touch_recs_inputs("shop", "imports")
    status = store.recs_status("shop")
    assert status["imports_at"] >= before and status["signals_at"] is None
    store.touch_recs_inputs("shop", "signals")
    assert store.recs_status("shop")["signals_at"] >= status["imports_at"]
    with pytest.raises(ValueError):
        store.touch_recs_inputs("shop", "other")


def test_merchandising_round_trip(store):
    assert store.get_merchandising("shop") is None
    store.save_merchandising("shop", '{"rules":[]}')
    store.save_merchandising("shop", '{"rules":[{"pin":"a"}]}')
    assert store.get_merchandising("shop") == '{"rules":[{"pin":"a"}]}'
    assert store.get_merchandising("other") is None


def test_a_lock_has_one_holder_until_released_or_expired(store):
    assert store.acquire_lock("recs:shop", "node-a", 30)
    assert not store.acquire_lock("recs:shop", "node-b", 30)
    assert store.acquire_lock("recs:shop", "node-a", 30)  # the holder extends it
    assert store.acquire_lock("recs:other", "node-b", 30)  # locks are independent
    assert not store.release_lock("recs:shop", "node-b")
    assert store.release_lock("recs:shop", "node-a")
    assert not store.release_lock("recs:shop", "node-a")
    assert store.acquire_lock("recs:shop", "node-b", 0.2)
    time.sleep(0.35)
    assert store.acquire_lock("recs:shop", "node-a", 30)  # expired: free again


def test_of_workers_racing_for_a_lock_exactly_one_wins(store):
    winners, start = [], threading.Barrier(8)

    def race(owner):
        start.wait()
        if store.acquire_lock("recs:shop", owner, 30):
            winners.append(owner)

    threads = [threading.Thread(target=race, args=(f"worker-{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1


# The raw event log (GET .../events): pages by position, nothing lost nor read twice

def test_the_event_log_pages_without_loss_or_duplicates_while_events_arrive(store):
    store.create_site("shop", "h")
    written, stop = [], threading.Event()

    def writer():
        for n in range(60):
            batch = [exposure(f"e-{n:03d}-{k}", "hero", "promo") for k in range(5)] + [conversion(f"c-{n:03d}", "buy", 1)]
            store.record_events("shop", f"visitor-{n:03d}", batch)
            written.extend(e["id"] for e in batch)
        stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    read, cursor, idle = [], None, 0
    while idle < 2:  # until a page comes back empty after the writer is done
        done = stop.is_set()
        page, missed = store.events_after("shop", cursor, 7)
        assert not missed and len(page) <= 7
        read += [e["id"] for e in page]
        cursor = page[-1]["cursor"] if page else cursor
        idle = idle + 1 if not page and done else 0
    thread.join()
    assert read == written  # every event once, in the order it was written
    assert store.events_after("shop", cursor, 7) == ([], False)
    with pytest.raises(ValueError):
        store.events_after("shop", "not a cursor", 7)


def test_a_trimmed_redis_log_says_events_were_missed(redis_url):
    store = RedisStore(redis_url, stream_maxlen=100)
    try:
        store.r.flushall()
        store.create_site("shop", "h")
        for n in range(30):
            store.record_events("shop", f"visitor-{n:03d}", [exposure(f"e-{n:03d}-{k}", "hero", "promo")
                                                              for k in range(40)])
        page, missed = store.events_after("shop", None, 10)
        assert missed and page[0]["id"] != "e-000-0"  # the oldest entries are gone, and the reader is told
        tail = store.events_after("shop", page[-1]["cursor"], 5000)
        assert tail[1] is False and tail[0][-1]["id"] == "e-029-39"
    finally:
        store.close()


def test_product_activity_counts_recent_views_and_purchases_once_per_visitor_and_hour(store):
    now = time.time()
    rows = [(f"k-{i}", now, f"v:visitor-{i % 3}", "s:x", "view", '["sku-1","sku-2"]') for i in range(30)]
    rows += [("o:1", now - 3600, "c:alice", "o:1", "purchase", '["sku-1"]'),
             ("o:2", now - 2 * 86400, "c:bob", "o:2", "purchase", '["sku-1"]'),  # out of the window
             ("k-cart", now, "v:visitor-9", "s:y", "cart", '["sku-1"]')]  # carts are not counted
    assert store.record_interactions("shop", rows) == 33
    assert store.record_interactions("shop", rows) == 0  # nothing counted twice either
    assert store.product_activity("shop", "sku-1", now) == {"views_24h": 3, "purchases_24h": 1}
    assert store.product_activity("shop", "sku-2", now) == {"views_24h": 3, "purchases_24h": 0}
    assert store.product_activity("shop", "sku-1", now + 86400) == {"views_24h": 0, "purchases_24h": 0}
    assert store.product_activity("other", "sku-1", now) == {"views_24h": 0, "purchases_24h": 0}


# Channels, identity records, customers, identity links and erasure (server/identity)

def test_an_email_exposure_counts_in_its_channel_and_so_do_later_conversions(store):
    store.record_events("shop", "c1.customer", [exposure("e-000001", "winback", "offer", channel="email")])
    store.record_events("shop", "visitor-1", [exposure("e-000002", "winback", "control")])
    store.record_events("shop", "c1.customer", [conversion("e-000003", "purchase", 40),
                                                exposure("e-000004", "winback", "control")])  # first wins
    store.record_events("shop", "visitor-1", [conversion("e-000005", "purchase", 10)])
    email, web, every = (by_key(store.counters("shop", channel)) for channel in ("email", "web", None))
    assert email[("winback", "offer", None)]["visitors"] == 1
    assert email[("winback", "offer", "purchase")]["revenue"] == 40.0
    assert ("winback", "control", None) not in email
    assert web[("winback", "control", "purchase")]["revenue"] == 10.0 and ("winback", "offer", None) not in web
    assert every[("winback", "offer", None)]["visitors"] == every[("winback", "control", None)]["visitors"] == 1
    assert set(every[("winback", "offer", "purchase")]) == {
        "campaign", "variation", "goal", "visitors", "conversions", "revenue", "revenue_sq", "orders", "orders_sq",
        "revenue_orders"}
    assert store.counters("shop", "sms") == []



def test_covariates_sum_over_channels_and_slices_count_what_carries_them(store):
    """A web exposure carries slices and covariates, an email one neither: each channel keeps
    its own sums, both channels' rows add up (an arm mixing them has fewer `pre_visitors` than
    visitors, so results leave CUPED out), and the slices hold the web visitor only, with its
    CUPED sums."""
    store.record_events("shop", "visitor-1", [exposure("e-000001", "winback", "offer", slices=[("segment", "vip")],
                                                        pre=(2, 9)), conversion("e-000002", "purchase", 10)])
    store.record_events("shop", "c1.customer", [exposure("e-000003", "winback", "offer", channel="email"),
                                                conversion("e-000004", "purchase", 30)])
    web, email, every = (by_key(store.counters("shop", channel)) for channel in ("web", "email", None))
    assert (web[("winback", "offer", None)]["pre_visitors"], web[("winback", "offer", None)]["pre_sum"]) == (1, [2, 9])
    assert "pre_sum" not in email[("winback", "offer", None)]
    assert web[("winback", "offer", "purchase")]["pre_revenue"] == [20.0, 90.0]
    visitors = every[("winback", "offer", None)]
    assert (visitors["visitors"], visitors["pre_visitors"], visitors["pre_products"]) == (2, 1, [[4, 18], [18, 81]])
    purchase = every[("winback", "offer", "purchase")]
    assert (purchase["conversions"], purchase["revenue"], purchase["pre_conversions"]) == (2, 40.0, [2, 9])
    (vip,) = [r for r in store.slice_counters("shop", "segment") if r["goal"] == "purchase"]
    assert (vip["value"], vip["conversions"], vip["revenue"], vip["pre_revenue"]) == ("vip", 1, 10.0, [20.0, 90.0])
    (vip_visitors,) = [r for r in store.slice_counters("shop", "segment") if r["goal"] is None]
    assert (vip_visitors["visitors"], vip_visitors["pre_visitors"]) == (1, 1)  # the web visitor only: CUPED applies

def test_the_identity_record_is_stored_once_unless_replaced(store):
    assert store.get_identity("shop") is None
    assert store.put_identity("shop", '{"salt":"a"}', if_absent=True) is True
    assert store.put_identity("shop", '{"salt":"b"}', if_absent=True) is False
    assert store.get_identity("shop") == '{"salt":"a"}'
    assert store.put_identity("shop", '{"salt":"c"}') is True
    assert store.get_identity("shop") == '{"salt":"c"}' and store.get_identity("other") is None


def test_customers_upsert_read_iterate_and_a_full_import_replaces(store):
    rows = [(f"c1.{i:032x}", json.dumps({"tier": "gold" if i % 2 else "silver"})) for i in range(1500)]
    assert store.upsert_customers("shop", rows) == 1500
    assert store.count_customers("shop") == 1500 and store.count_customers("other") == 0
    assert store.get_customers("shop", [rows[3][0], "c1.none"]) == {rows[3][0]: rows[3][1]}
    assert list(store.iter_customers("shop")) == rows
    kept = [(rows[0][0], '{"tier":"new"}'), ("c1.fresh", "{}")]
    store.upsert_customers("shop", kept, mark="m1")
    assert store.delete_customers_unmarked("shop", "m1") == 1499
    assert list(store.iter_customers("shop")) == kept
    assert store.get_crm_schema("shop") is None
    store.save_crm_schema("shop", '{"tier":{"string":2}}')
    assert store.get_crm_schema("shop") == '{"tier":{"string":2}}'


def test_erasure_removes_a_customer_their_links_and_raw_traces_but_keeps_counters(store):
    store.create_site("shop", "h")
    store.upsert_customers("shop", [("c1.gold", '{"tier":"gold"}'), ("c1.other", '{"tier":"silver"}')])
    for visitor in ("visitor-phone", "visitor-desktop"):
        store.link_visitor("shop", "c1.gold", visitor)
        store.link_visitor("shop", "c1.gold", visitor)  # idempotent
    store.link_visitor("shop", "c1.other", "visitor-desktop")  # a shared computer
    assert store.linked_visitors("shop", "c1.gold") == ["visitor-desktop", "visitor-phone"]
    store.record_events("shop", "c1.gold", [exposure("e-000001", "loyalty", "gold"), conversion("e-000002", "buy", 5)])
    store.record_events("shop", "visitor-phone", [exposure("e-000003", "hero", "promo"), order("e-000004", "buy", 5, "T-1")])
    store.record_events("shop", "visitor-stranger", [exposure("e-000005", "hero", "promo")])
    now = time.time()
    store.record_interactions("shop", [("e-000006", 1.0, "v:visitor-phone", "s:1", "view", '["x"]'),
                                       ("o:1", 2.0, "c:c1.gold", "o:1", "purchase", '["x"]'),
                                       ("e-000007", 3.0, "v:visitor-stranger", "s:1", "view", '["x"]'),
                                       ("e-000010", now, "v:visitor-phone", "s:2", "view", '["y"]'),
                                       ("e-000011", now, "v:visitor-stranger", "s:2", "view", '["y"]')])
    before = _sorted(store.counters("shop"))
    erased = store.erase_units("shop", ["c1.gold"], ["c1.gold", "visitor-phone", "visitor-desktop"])
    assert erased == {"customers": 1, "events": 4, "interactions": 3}
    assert store.get_customers("shop", ["c1.gold", "c1.other"]) == {"c1.other": '{"tier":"silver"}'}
    assert store.linked_visitors("shop", "c1.gold") == [] and store.linked_visitors("shop", "c1.other") == []
    assert _sorted(store.counters("shop")) == before  # aggregates stay
    assert [who for _, who, *_ in store.interactions("shop", 0)] == ["v:visitor-stranger"] * 2
    assert _raw_visitors(store, "shop") == ["visitor-stranger"]
    assert _raw_activity_visitors(store, "shop", now) == ["v:visitor-stranger"]  # who was counted goes...
    assert store.product_activity("shop", "y", now) == {"views_24h": 2, "purchases_24h": 0}  # ...the count stays
    # the erased events' ids are still known: a retry is not counted again...
    assert store.record_events("shop", "visitor-phone", [exposure("e-000003", "hero", "promo")]) == 0
    # ...while the erased visitor's assignment is gone: as a new visitor, it counts anew
    assert store.record_events("shop", "visitor-phone", [exposure("e-000008", "hero", "control")]) == 1
    assert by_key(store.counters("shop"))[("hero", "control", None)]["visitors"] == 1
    # and its order ids with it: the same order id is a new order of the new visitor
    store.record_events("shop", "visitor-phone", [order("e-000009", "buy", 5, "T-1")])
    assert by_key(store.counters("shop"))[("hero", "control", "buy")]["orders"] == 1
    assert store.erase_units("shop", ["c1.gold"], ["c1.gold"]) == {"customers": 0, "events": 0, "interactions": 0}


def _raw_visitors(store, site):
    """The visitor of every raw event still holding one."""
    if isinstance(store, SQLiteStore):
        rows = store._db().execute("SELECT visitor_id FROM events WHERE site=? AND visitor_id!=''", (site,))
        return sorted(row[0] for row in rows)
    return sorted(fields["visitor"] for _, fields in store.r.xrange(f"vitrina:{{{site}}}:events"))


def _raw_activity_visitors(store, site, now):
    """Who is remembered as counted in the live activity of the current hour."""
    hour = int(now // 3600)
    if isinstance(store, SQLiteStore):
        rows = store._db().execute("SELECT who FROM product_hits WHERE site=? AND hour=?", (site, hour))
        return sorted(row[0] for row in rows)
    return sorted(member.split("\0")[1] for member in store.r.smembers(f"vitrina:{{{site}}}:ph:{hour}"))


def test_sqlite_counters_from_before_channels_and_orders_are_web_and_count_orders_from_then_on(tmp_path):
    import sqlite3
    path = str(tmp_path / "old.sqlite3")
    with sqlite3.connect(path) as db:
        db.executescript("""
CREATE TABLE assignments (site TEXT NOT NULL, visitor_id TEXT NOT NULL, campaign TEXT NOT NULL,
  variation TEXT NOT NULL, PRIMARY KEY (site, visitor_id, campaign));
CREATE TABLE counters (site TEXT NOT NULL, campaign TEXT NOT NULL, variation TEXT NOT NULL, goal TEXT NOT NULL,
  visitors INTEGER NOT NULL DEFAULT 0, conversions INTEGER NOT NULL DEFAULT 0, revenue REAL NOT NULL DEFAULT 0,
  revenue_sq REAL NOT NULL DEFAULT 0, PRIMARY KEY (site, campaign, variation, goal));
CREATE TABLE conversion_state (site TEXT NOT NULL, campaign TEXT NOT NULL, goal TEXT NOT NULL,
  visitor_id TEXT NOT NULL, revenue REAL NOT NULL, PRIMARY KEY (site, campaign, goal, visitor_id));
INSERT INTO assignments VALUES ('shop', 'visitor-1', 'hero', 'promo');
INSERT INTO counters VALUES ('shop', 'hero', 'promo', '', 1, 0, 0, 0);
INSERT INTO counters VALUES ('shop', 'hero', 'promo', 'purchase', 0, 1, 4, 16);
INSERT INTO conversion_state VALUES ('shop', 'hero', 'purchase', 'visitor-1', 4);
PRAGMA user_version = 1;
""")
    store = SQLiteStore(path)
    try:
        store.record_events("shop", "visitor-1", [order("e-000001", "purchase", 2, "T-1")])
        web = by_key(store.counters("shop", "web"))
        purchase = web[("hero", "promo", "purchase")]
        assert web[("hero", "promo", None)]["visitors"] == 1
        assert (purchase["conversions"], purchase["revenue"], purchase["revenue_sq"]) == (1, 6, 36)
        assert (purchase["orders"], purchase["orders_sq"], purchase["revenue_orders"]) == (1, 1, 6)
        assert store.counters("shop", "email") == []
    finally:
        store.close()


def test_sqlite_from_before_slices_gains_slices_covariates_and_version_meta(tmp_path):
    import sqlite3
    path = str(tmp_path / "channels.sqlite3")
    with sqlite3.connect(path) as db:
        db.executescript("""
CREATE TABLE versions (site TEXT NOT NULL, version INTEGER NOT NULL, payload TEXT NOT NULL, signature TEXT NOT NULL,
  published_at TEXT NOT NULL, PRIMARY KEY (site, version));
CREATE TABLE assignments (site TEXT NOT NULL, visitor_id TEXT NOT NULL, campaign TEXT NOT NULL,
  variation TEXT NOT NULL, channel TEXT NOT NULL DEFAULT 'web', PRIMARY KEY (site, visitor_id, campaign));
CREATE TABLE counters (site TEXT NOT NULL, campaign TEXT NOT NULL, variation TEXT NOT NULL, goal TEXT NOT NULL,
  channel TEXT NOT NULL DEFAULT 'web', visitors INTEGER NOT NULL DEFAULT 0, conversions INTEGER NOT NULL DEFAULT 0,
  revenue REAL NOT NULL DEFAULT 0, revenue_sq REAL NOT NULL DEFAULT 0,
  PRIMARY KEY (site, campaign, variation, goal, channel));
INSERT INTO assignments VALUES ('shop', 'visitor-1', 'hero', 'promo', 'web');
INSERT INTO counters VALUES ('shop', 'hero', 'promo', '', 'web', 1, 0, 0, 0);
PRAGMA user_version = 2;
""")
    store = SQLiteStore(path)
    try:
        store.record_events("shop", "visitor-1", [conversion("e-000001", "purchase", 2)])
        store.record_events("shop", "visitor-2", [exposure("e-000002", "hero", "promo", slices=[("segment", "vip")],
                                                           pre=(1, 3))])
        visitors = by_key(store.counters("shop"))[("hero", "promo", None)]
        assert (visitors["visitors"], visitors["pre_visitors"], visitors["pre_sum"]) == (2, 1, [1, 3])
        assert [r["value"] for r in store.slice_counters("shop", "segment")] == ["vip"]
        assert store.add_version("shop", lambda n: ("p", "s", "2026-11-23T17:00:00Z"), '{"note":"x"}') == 1
        assert store.version_meta("shop", [1]) == {1: '{"note":"x"}'}
    finally:
        store.close()


# A database at step 3 of either layout that had one: orders (main's) or slices and covariates
_STEP_3_LAYOUTS = {
    "orders": """
CREATE TABLE versions (site TEXT NOT NULL, version INTEGER NOT NULL, payload TEXT NOT NULL, signature TEXT NOT NULL,
  published_at TEXT NOT NULL, PRIMARY KEY (site, version));
CREATE TABLE assignments (site TEXT NOT NULL, visitor_id TEXT NOT NULL, campaign TEXT NOT NULL,
  variation TEXT NOT NULL, channel TEXT NOT NULL DEFAULT 'web', PRIMARY KEY (site, visitor_id, campaign));
CREATE TABLE conversion_state (site TEXT NOT NULL, campaign TEXT NOT NULL, goal TEXT NOT NULL,
  visitor_id TEXT NOT NULL, revenue REAL NOT NULL, orders INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (site, campaign, goal, visitor_id));
CREATE TABLE counters (site TEXT NOT NULL, campaign TEXT NOT NULL, variation TEXT NOT NULL, goal TEXT NOT NULL,
  channel TEXT NOT NULL DEFAULT 'web', visitors INTEGER NOT NULL DEFAULT 0, conversions INTEGER NOT NULL DEFAULT 0,
  revenue REAL NOT NULL DEFAULT 0, revenue_sq REAL NOT NULL DEFAULT 0,
  orders INTEGER NOT NULL DEFAULT 0, orders_sq INTEGER NOT NULL DEFAULT 0, revenue_orders REAL NOT NULL DEFAULT 0,
  PRIMARY KEY (site, campaign, variation, goal, channel));
INSERT INTO assignments VALUES ('shop', 'visitor-1', 'hero', 'promo', 'web');
INSERT INTO counters VALUES ('shop', 'hero', 'promo', '', 'web', 1, 0, 0, 0, 0, 0, 0);
INSERT INTO counters VALUES ('shop', 'hero', 'promo', 'purchase', 'web', 0, 1, 4, 16, 1, 1, 4);
INSERT INTO conversion_state VALUES ('shop', 'hero', 'purchase', 'visitor-1', 4, 1);
PRAGMA user_version = 3;
""",
    "slices": """
CREATE TABLE versions (site TEXT NOT NULL, version INTEGER NOT NULL, payload TEXT NOT NULL, signature TEXT NOT NULL,
  published_at TEXT NOT NULL, meta TEXT, PRIMARY KEY (site, version));
CREATE TABLE assignments (site TEXT NOT NULL, visitor_id TEXT NOT NULL, campaign TEXT NOT NULL,
  variation TEXT NOT NULL, channel TEXT NOT NULL DEFAULT 'web', slices TEXT NOT NULL DEFAULT '', pre TEXT,
  PRIMARY KEY (site, visitor_id, campaign));
CREATE TABLE conversion_state (site TEXT NOT NULL, campaign TEXT NOT NULL, goal TEXT NOT NULL,
  visitor_id TEXT NOT NULL, revenue REAL NOT NULL, PRIMARY KEY (site, campaign, goal, visitor_id));
CREATE TABLE counters (site TEXT NOT NULL, campaign TEXT NOT NULL, variation TEXT NOT NULL, goal TEXT NOT NULL,
  channel TEXT NOT NULL DEFAULT 'web', visitors INTEGER NOT NULL DEFAULT 0, conversions INTEGER NOT NULL DEFAULT 0,
  revenue REAL NOT NULL DEFAULT 0, revenue_sq REAL NOT NULL DEFAULT 0, pre_visitors INTEGER NOT NULL DEFAULT 0,
  pre_sum_0 INTEGER NOT NULL DEFAULT 0, pre_sum_1 INTEGER NOT NULL DEFAULT 0, pre_xx_0_0 INTEGER NOT NULL DEFAULT 0,
  pre_xx_0_1 INTEGER NOT NULL DEFAULT 0, pre_xx_1_1 INTEGER NOT NULL DEFAULT 0, pre_conv_0 INTEGER NOT NULL DEFAULT 0,
  pre_conv_1 INTEGER NOT NULL DEFAULT 0, pre_rev_0 REAL NOT NULL DEFAULT 0, pre_rev_1 REAL NOT NULL DEFAULT 0,
  PRIMARY KEY (site, campaign, variation, goal, channel));
INSERT INTO assignments VALUES ('shop', 'visitor-1', 'hero', 'promo', 'web', '', NULL);
INSERT INTO counters (site, campaign, variation, goal, channel, visitors) VALUES ('shop', 'hero', 'promo', '', 'web', 1);
INSERT INTO counters (site, campaign, variation, goal, channel, conversions, revenue, revenue_sq)
  VALUES ('shop', 'hero', 'promo', 'purchase', 'web', 1, 4, 16);
INSERT INTO conversion_state VALUES ('shop', 'hero', 'purchase', 'visitor-1', 4);
PRAGMA user_version = 3;
""",
}


@pytest.mark.parametrize("layout", sorted(_STEP_3_LAYOUTS))
def test_sqlite_at_step_3_of_either_layout_gains_orders_slices_covariates_and_version_meta(tmp_path, layout):
    import sqlite3
    path = str(tmp_path / f"{layout}.sqlite3")
    with sqlite3.connect(path) as db:
        db.executescript(_STEP_3_LAYOUTS[layout])
    store = SQLiteStore(path)
    try:
        store.record_events("shop", "visitor-1", [order("e-000001", "purchase", 2, "T-2")])
        store.record_events("shop", "visitor-2", [exposure("e-000002", "hero", "promo", slices=[("segment", "vip")],
                                                           pre=(1, 3))])
        store.record_events("shop", "visitor-2", [order("e-000003", "purchase", 5, "T-3")])
        counters = by_key(store.counters("shop"))
        visitors, purchase = counters[("hero", "promo", None)], counters[("hero", "promo", "purchase")]
        assert (visitors["visitors"], visitors["pre_visitors"], visitors["pre_sum"]) == (2, 1, [1, 3])
        assert (purchase["conversions"], purchase["revenue"], purchase["revenue_sq"]) == (2, 11, 36 + 25)
        orders_before = 1 if layout == "orders" else 0  # the first purchase's order, when it was counted
        assert purchase["orders"] == orders_before + 2
        assert purchase["pre_conversions"] == [1, 3] and purchase["pre_revenue"] == [5, 15]
        slices = {r["value"]: r for r in store.slice_counters("shop", "segment") if r["goal"] == "purchase"}
        assert list(slices) == ["vip"] and (slices["vip"]["conversions"], slices["vip"]["revenue"]) == (1, 5)
        assert store.add_version("shop", lambda n: ("p", "s", "2026-11-23T17:00:00Z"), '{"note":"x"}') == 1
        assert store.version_meta("shop", [1]) == {1: '{"note":"x"}'}
        assert store._db().execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    finally:
        store.close()


# Retention: event ids are remembered for the dedupe window, visitor state for its time to live
# (Redis: expiring keys; SQLite keeps both on disk for ever). Short windows, real redis-server.
WINDOW_S = 1.2  # 4 buckets of 300 ms


@pytest.fixture(params=["sqlite", "redis"])
def short_window(request, tmp_path):
    if request.param == "sqlite":
        yield SQLiteStore(str(tmp_path / "store.sqlite3"))
        return
    store = RedisStore(request.getfixturevalue("redis_url"), dedupe_window_s=WINDOW_S, visitor_ttl_s=60)
    store.r.flushall()
    yield store
    store.close()


def test_retries_within_the_window_count_once_while_buckets_turn_over(short_window):
    """Eight senders retry the same batches, at once and again and again for about a window,
    while the newest bucket changes several times: every id counts exactly once."""
    store = short_window
    store.create_site("shop", "h")
    batches = [(f"visitor-{v}", [exposure(f"e-{v:03d}-x", "hero", "promo"),
                                 conversion(f"e-{v:03d}-c", "purchase", 2.5)]) for v in range(20)]
    recorded, errors = [], []
    # One deadline for all, checked before each send: a thread that starts late, or a loaded
    # machine's slow loop, must not send past the window, where ids are forgotten by design.
    deadline = time.monotonic() + WINDOW_S * 0.75

    def sender(offset):
        try:
            while time.monotonic() < deadline:
                for visitor, events in batches[offset:] + batches[:offset]:
                    if time.monotonic() < deadline:
                        recorded.append(store.record_events("shop", visitor, events))
                time.sleep(0.05)
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append(e)

    threads = [threading.Thread(target=sender, args=(n * 2,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and sum(recorded) == 40 and len(recorded) > 160
    counters = by_key(store.counters("shop"))
    assert counters[("hero", "promo", None)]["visitors"] == 20
    assert counters[("hero", "promo", "purchase")]["conversions"] == 20
    assert counters[("hero", "promo", "purchase")]["revenue"] == 50.0


def test_redis_forgets_event_ids_and_idle_visitors_after_their_windows(redis_url):
    store = RedisStore(redis_url, dedupe_window_s=0.8, visitor_ttl_s=0.8)  # 200 ms buckets
    store.r.flushall()
    store.create_site("shop", "h")
    batch = [exposure("e-000001", "hero", "promo"), conversion("e-000002", "purchase", 10)]
    assert store.record_events("shop", "visitor-1", batch) == 2
    assert store.record_interactions("shop", [("e-000003", 1.0, "v:a", "s:1", "view", '["x"]'),
                                              ("o:order-1", 2.0, "c:7", "o:order-1", "purchase", '["x"]')]) == 2
    buckets = store.r.keys("vitrina:{shop}:seen*")
    assert len(buckets) in (1, 2)  # the batches may fall on both sides of a bucket's end
    assert store.r.sunion(buckets) == {"e-000001", "e-000002", "e-000003"}
    for key in buckets + ["vitrina:{shop}:visitor:visitor-1"]:
        assert 0 < store.r.pttl(key) <= 800 + 200 + 200  # window, a bucket, the clock margin
    assert store.r.pttl("vitrina:{shop}:orders") == -1  # imported orders are kept for ever
    time.sleep(1.3)
    assert store.r.keys("vitrina:{shop}:seen*") == []
    assert not store.r.exists("vitrina:{shop}:visitor:visitor-1")
    counters = by_key(store.counters("shop"))  # aggregates stay
    assert counters[("hero", "promo", None)]["visitors"] == 1
    assert counters[("hero", "promo", "purchase")]["revenue"] == 10.0
    # past the window the ids are forgotten (collect refuses events that old: server/events/batch.py)
    assert store.record_events("shop", "visitor-1", batch) == 2
    assert store.record_interactions("shop", [("o:order-1", 2.0, "c:7", "o:order-1", "purchase", '["x"]')]) == 0
    store.close()


def test_an_active_visitor_keeps_their_assignment(redis_url):
    store = RedisStore(redis_url, visitor_ttl_s=0.6)
    store.r.flushall()
    store.create_site("shop", "h")
    for n in range(5):  # a page view every 300 ms for 1.5 s: each recorded event pushes the expiry back
        store.record_events("shop", "visitor-1", [exposure(f"e-{n:06d}", "hero", "promo" if n == 0 else "control")])
        time.sleep(0.3)
    assert store.r.hget("vitrina:{shop}:visitor:visitor-1", "a\0hero") == "promo"
    assert by_key(store.counters("shop"))[("hero", "promo", None)]["visitors"] == 1
    assert ("hero", "control", None) not in by_key(store.counters("shop"))
    store.close()


def test_the_event_ids_from_before_buckets_are_still_looked_up_then_expire(redis_url):
    client = RedisStore(redis_url).r
    client.flushall()
    client.sadd("vitrina:{shop}:seen", "e-000001", "o:order-1", "o:order-2")
    client.set("vitrina:schema", 1)
    store = RedisStore(redis_url, dedupe_window_s=0.8)
    store.create_site("shop", "h")  # a first key operation runs the upgrade
    assert client.get("vitrina:schema") == str(SCHEMA_VERSION)
    assert client.smembers("vitrina:{shop}:orders") == {"o:order-1", "o:order-2"}
    assert 0 < client.pttl("vitrina:{shop}:seen") <= 1000
    assert store.record_events("shop", "visitor-1", [exposure("e-000001", "hero", "promo")]) == 0
    assert store.record_interactions("shop", [("o:order-2", 2.0, "c:7", "o:order-2", "purchase", '["x"]')]) == 0
    time.sleep(1.1)
    assert not client.exists("vitrina:{shop}:seen")
    assert store.record_interactions("shop", [("o:order-1", 2.0, "c:7", "o:order-1", "purchase", '["x"]')]) == 0
    store.close()
    client.close()


def test_the_memory_benchmark_measures_expiring_keys_at_small_size(redis_url):
    """bench/redis_memory.py at 3,000 events, as a correctness check only (its figures are the
    benchmark's): every event id and visitor hash gets a time to live (it fails otherwise), and
    once they are gone only the stream and the counters are left."""
    from bench.redis_memory import measure
    figures = measure(redis_url, events=3_000)
    assert figures["visitors"] > 300 and figures["ids"] > 3_000 * 20 and figures["visitor_state"] > 0
    assert figures["stream"] > 3_000 * 50
    assert figures["after_windows"] < figures["without_expiry"] - figures["ids"] / 2
    assert figures["rest"] < figures["ids"] + figures["visitor_state"]


def _feature_row(event_id, ts, kind="exposure", goal=None, **features):
    return {"id": event_id, "ts": ts, "kind": kind, "goal": goal,
            "features": json.dumps(features or {"visit.count": 0.69})}


def test_feature_rows_come_back_oldest_first_newest_kept(store):
    store.create_site("shop", "h")
    store.record_features("shop", "v1.a", [_feature_row("e1", 1000, **{"visit.pageviews": 1.1}),
                                           _feature_row("e2", 2000, "conversion", "purchase")])
    store.record_features("shop", "v1.b", [_feature_row("e3", 3000, utm=1)])
    rows = store.feature_rows("shop")
    assert [(r["id"], r["visitor"], r["ts"], r["kind"], r["goal"]) for r in rows] == [
        ("e1", "v1.a", 1000, "exposure", None), ("e2", "v1.a", 2000, "conversion", "purchase"),
        ("e3", "v1.b", 3000, "exposure", None)]
    assert rows[0]["features"] == {"visit.pageviews": 1.1} and rows[2]["features"] == {"utm": 1}
    assert [r["id"] for r in store.feature_rows("shop", limit=2)] == ["e2", "e3"]
    assert store.feature_rows("other") == []


def test_erasure_removes_a_visitors_feature_rows(store):
    store.create_site("shop", "h")
    store.record_features("shop", "v1.gone", [_feature_row("e1", 1000)])
    store.record_features("shop", "v1.kept", [_feature_row("e2", 2000)])
    store.erase_units("shop", [], ["v1.gone"])
    assert [r["visitor"] for r in store.feature_rows("shop")] == ["v1.kept"]


def test_model_reports_are_per_site_and_goal_and_replaced(store):
    store.create_site("shop", "h")
    assert store.model_reports("shop") == {}
    store.save_model("shop", "purchase", '{"auc": 0.6}')
    store.save_model("shop", "signup", '{"auc": 0.7}')
    store.save_model("shop", "purchase", '{"auc": 0.8}')
    assert store.model_reports("shop") == {"purchase": '{"auc": 0.8}', "signup": '{"auc": 0.7}'}
    assert store.model_reports("other") == {}
