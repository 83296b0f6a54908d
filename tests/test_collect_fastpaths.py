"""The fast paths of collect give the answers of the plain code they shortcut.

- parse_batch: _valid_batch accepts only batches the full checks accept (and does accept the
  ordinary ones, so the fast path is really taken);
- verify_against_bundles: per-bundle compiled campaigns (cached by bundle object), buckets
  hashed once per seed and visitor, versions loaded once per batch: the same problems as the
  reference (bucketed_assignment for every event, every version loaded for every event);
- collect._bodies: each event's compact JSON, as json.dumps gives it alone;
- the Redis record script: stream entries, and counters identical to SQLite's for large batches
  (many campaigns x goals: the HMGET/HSET chunks)."""
import json
import random
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.cache import Cache
from server.decisions.bucketing import _utf8, hash, hash_from, seed_state
from server.events import batch as ev
from server.events.batch import (
    BatchInvalid,
    _checked_batch,
    _valid_batch,
    bucketed_assignment,
    verify_against_bundles,
)
from server.events.collect import _bodies
from server.store.redis_store import RedisStore
from server.store.sqlite import SQLiteStore

TS = 1763900000000


# --- parse_batch ------------------------------------------------------------------------------

def _exposure(i, **extra):
    return {"id": f"event-{i:04d}", "type": "exposure", "version": 1, "ts": TS, "campaign": "hero",
            "variation": "promo", "holdout": False, **extra}


def _conversion(i, **extra):
    return {"id": f"event-{i:04d}", "type": "conversion", "version": 1, "ts": TS, "goal": "purchase", "value": 3.5,
            **extra}


ODD_VALUES = st.sampled_from([None, True, False, 0, 1, -1, 10**9, 10**9 + 1, 1.0, -0.0, 1e9, 1e9 + 1, float("inf"),
                              float("nan"), 1e999, 10**400, "", "x", "event-0001", "abcdefgh\n", "a" * 64, "a" * 65,
                              "hero", "-x", [], {}, [1], {"a": 1}, 1500000000000, 4100000000001, TS,
                              # feature vectors (the predict module's): good, and each bound crossed
                              {"visit.count": 0.69, "crm.days_since_x": -2.5, "events.Add_to-cart": 25},
                              {"visit.count": 25.01}, {"crm.x": -25.5}, {"Visit": 1}, {"visit.": 1}, {"a.b\n": 1},
                              {"a.b.c": 1}, {"utm": True}, {"utm": "1"}, {"utm": None}, {"a" * 21: 1}, {"a" * 22: 1},
                              {"f_" + chr(97 + i % 26) * (1 + i // 26): 1 for i in range(48)},
                              {"f_" + chr(97 + i % 26) * (1 + i // 26): 1 for i in range(49)}])
FIELDS = ["id", "type", "version", "ts", "campaign", "variation", "holdout", "forced", "goal", "value", "extra",
          "features"]


@st.composite
def batches(draw):
    events = []
    for i in range(draw(st.integers(0, 4))):
        event = _exposure(i) if draw(st.booleans()) else _conversion(i)
        for _ in range(draw(st.integers(0, 2))):
            field = draw(st.sampled_from(FIELDS))
            if draw(st.integers(0, 4)) == 0:
                event.pop(field, None)
            else:
                event[field] = draw(ODD_VALUES)
        events.append(event if draw(st.integers(0, 20)) else draw(ODD_VALUES))
    body = {"visitor_id": draw(st.sampled_from(["visitor-0001", "visitor-0001", "short", "v" * 65, 12345678])),
            "events": events}
    if draw(st.integers(0, 10)) == 0:
        body["extra"] = 1
    if draw(st.integers(0, 5)) == 0:
        body["identity"] = draw(st.sampled_from(["a" * 16, "a" * 512, "a" * 15, "a" * 513, "abc.def_ghi-jkl0", "", None,
                                                 "identity with spaces", 5, "a" * 16 + "\n"]))
    if draw(st.integers(0, 6)) == 0:
        body["features"] = draw(ODD_VALUES)  # the predict module's, for the batch's events
    if draw(st.integers(0, 10)) == 0:
        del body[draw(st.sampled_from(["visitor_id", "events"]))]
    return body


@settings(max_examples=600, deadline=None)
@given(batches())
def test_fast_parse_accepts_only_what_the_full_checks_accept(body):
    if _valid_batch(body):
        assert _checked_batch(body) == (body["visitor_id"], body["events"], body.get("identity"))


def test_fast_parse_takes_ordinary_batches():
    body = {"visitor_id": "v1.0123456789abcdef",
            "events": [_exposure(0), _exposure(1, holdout=True, variation=None), _exposure(2, forced=True),
                       _conversion(3), _conversion(4, value=12), {k: v for k, v in _conversion(5).items() if k != "value"}]}
    assert _valid_batch(body)
    assert ev.parse_batch(json.dumps(body)) == (body["visitor_id"], body["events"], body.get("identity"))
    duplicate = {"visitor_id": "visitor-0001", "events": [_exposure(0), _conversion(0)]}
    assert not _valid_batch(duplicate)
    with pytest.raises(BatchInvalid) as refused:
        ev.parse_batch(json.dumps(duplicate))
    assert refused.value.details == [{"path": "/events/1/id", "message": "the same id appears twice in the batch"}]


# --- bucketing from a seed's state ------------------------------------------------------------

@given(st.text(max_size=12), st.text(max_size=12))
def test_hash_from_a_seed_state_is_hash(seed, visitor_id):
    assert hash_from(seed_state(seed), _utf8(visitor_id)) == hash(seed, visitor_id)


# --- verify_against_bundles -------------------------------------------------------------------

def _reference_verify(events, visitor_id, load_bundle):
    """verify_against_bundles as it was before the caches: everything recomputed per event."""
    problems = []
    for i, event in enumerate(events):
        at = f"/events/{i}"
        bundle = load_bundle(event["version"])
        if bundle is None:
            problems.append({"path": at + "/version", "code": "unknown_version"})
            continue
        if event["type"] == "conversion":
            if event["goal"] not in bundle["goals"]:
                problems.append({"path": at + "/goal", "code": "unknown_goal"})
            continue
        campaign = {c["key"]: c for c in bundle["campaigns"]}.get(event["campaign"])
        if campaign is None:
            problems.append({"path": at + "/campaign", "code": "unknown_campaign"})
        elif not event.get("holdout") and event["variation"] not in {v["key"] for v in campaign["variations"]}:
            problems.append({"path": at + "/variation", "code": "unknown_variation"})
        elif not event.get("forced") and not _reference_consistent(event, visitor_id, campaign, load_bundle):
            problems.append({"path": at + ("/holdout" if event.get("holdout") else "/variation"), "code": "bucketing"})
    return problems


def _reference_consistent(event, visitor_id, campaign, load_bundle):
    wanted = (True, None) if event.get("holdout") else (False, event["variation"])
    for version in range(event["version"], max(0, event["version"] - ev.STICKY_LOOKBACK), -1):
        older = load_bundle(version)
        past = older and {c["key"]: c for c in older["campaigns"]}.get(event["campaign"])
        if not past or past["seed"] != campaign["seed"]:
            break
        in_holdout, variation = bucketed_assignment(older, past, visitor_id)
        if variation is not None and (in_holdout, None if in_holdout else variation) == wanted:
            return True
    return False


def _random_versions(rng, n_versions):
    """Bundles 1..n of one site whose campaigns change weights, traffic, seeds and holdout."""
    versions = {}
    seeds = {f"c{k}": f"c{k}" for k in range(4)}
    for version in range(1, n_versions + 1):
        campaigns = []
        for key in list(seeds):
            if rng.random() < 0.2:
                seeds[key] = f"{key}-{version}"  # restarted
            if rng.random() < 0.15:
                continue  # not live in this version
            n = rng.randint(1, 3)
            weights = [rng.random() for _ in range(n)]
            campaigns.append({"key": key, "seed": seeds[key], "traffic": rng.choice([None, 1, 0.5, rng.random()]),
                              "variations": [{"key": f"v{j}", "weight": w / sum(weights)} for j, w in enumerate(weights)]})
        versions[version] = {"site": "shop", "version": version, "goals": {"purchase": {}},
                             "settings": {"holdout": rng.choice([0, None, 0.1, 0.5])}, "campaigns": campaigns}
    return versions


def test_verify_gives_the_reference_answers():
    outcomes = set()
    for seed in range(200):
        _compare_with_reference(random.Random(seed), outcomes)
    assert outcomes >= {"true", "accepted", "refused", "bucketing", "unknown_version", "unknown_campaign",
                        "unknown_variation", "unknown_goal"}, outcomes


def _compare_with_reference(rng, outcomes):
    versions = _random_versions(rng, rng.randint(1, 4))
    for _ in range(5):
        visitor = f"visitor-{rng.getrandbits(40):010x}"
        events = []
        for i in range(rng.randint(1, 12)):
            version = rng.choice(list(versions) + [len(versions) + 1])
            if rng.random() < 0.15:
                events.append({"id": f"e{i}", "type": "conversion", "version": version,
                               "goal": rng.choice(["purchase", "signup"])})
                continue
            key = rng.choice(["c0", "c1", "c2", "c3", "c9"])
            holdout, variation = rng.random() < 0.2, rng.choice(["v0", "v1", "v2", "v7"])
            source = versions.get(rng.randint(1, version))  # true now, or in an earlier version (sticky)
            campaign = source and next((c for c in source["campaigns"] if c["key"] == key), None)
            if campaign and rng.random() < 0.6:
                holdout, variation = bucketed_assignment(source, campaign, visitor)
                outcomes.add("true")
            events.append({"id": f"e{i}", "type": "exposure", "version": version, "campaign": key,
                           "holdout": holdout, "variation": None if holdout else variation,
                           "forced": rng.random() < 0.05})
        got = [{k: p[k] for k in ("path", "code")} for p in verify_against_bundles(events, visitor, versions.get,
                                                                                       _compiled_cache())]
        assert got == _reference_verify(events, visitor, versions.get)
        outcomes.update(p["code"] for p in got)
        outcomes.add("accepted" if len(got) < len(events) else "refused")


def _bundle_with_weights(weights, version=1):
    return {"site": "shop", "version": version, "goals": {}, "settings": {"holdout": 0},
            "campaigns": [{"key": "cta", "seed": "cta", "traffic": 1,
                           "variations": [{"key": "a", "weight": weights[0]}, {"key": "b", "weight": weights[1]}]}]}


def _bucketed_to(bundle, variation):
    campaign = bundle["campaigns"][0]
    return next(v for v in (f"visitor-{i:05d}" for i in range(10_000))
                if bucketed_assignment(bundle, campaign, v) == (False, variation))


def _compiled_cache():
    return Cache("compiled bundles", 64, "nothing: keyed by the bundle object each entry holds")


def test_compiled_bundles_follow_the_bundle_object_not_its_version():
    # Two bundle objects for the same version (a reloaded cache, another app): each is
    # verified on its own weights, never on the other's compiled campaigns.
    compiled = _compiled_cache()
    all_a, all_b = _bundle_with_weights([1, 0]), _bundle_with_weights([0, 1])
    visitor = "visitor-00001"
    exposure = [{"id": "e1", "type": "exposure", "version": 1, "campaign": "cta", "variation": "a", "holdout": False}]
    assert verify_against_bundles(exposure, visitor, lambda v: all_a, compiled) == []
    assert [p["code"] for p in verify_against_bundles(exposure, visitor, lambda v: all_b, compiled)] == ["bucketing"]
    assert verify_against_bundles(exposure, visitor, lambda v: all_a, compiled) == []
    # many bundles (the cache is bounded and cleared): still each its own answer
    for n in range(200):
        bundle = _bundle_with_weights([1, 0] if n % 2 else [0, 1])
        assert (verify_against_bundles(exposure, visitor, lambda v: bundle, compiled) == []) == bool(n % 2)


def test_buckets_are_per_visitor():
    compiled = _compiled_cache()
    bundle = _bundle_with_weights([0.5, 0.5])
    to_a, to_b = _bucketed_to(bundle, "a"), _bucketed_to(bundle, "b")
    exposure = [{"id": "e1", "type": "exposure", "version": 1, "campaign": "cta", "variation": "a", "holdout": False}]
    assert verify_against_bundles(exposure, to_a, lambda v: bundle, compiled) == []
    assert [p["code"] for p in verify_against_bundles(exposure, to_b, lambda v: bundle, compiled)] == ["bucketing"]
    assert verify_against_bundles(exposure, to_a, lambda v: bundle, compiled) == []


# --- stream bodies ----------------------------------------------------------------------------

def test_bodies_are_each_events_compact_json():
    events = [_exposure(0), _conversion(1, value=1e-7), _exposure(2, holdout=True, variation=None),
              {"id": "event-0003", "type": "conversion", "_json": "stale"}]
    expected = [json.dumps({k: v for k, v in e.items() if k != "_json"}, separators=(",", ":")) for e in events]
    assert _bodies(events) == expected
    assert all("_json" not in e for e in events)
    # a value holding the separator (never in a validated event): encoded one by one
    odd = [_exposure(0, campaign="a},{b"), _conversion(1)]
    assert _bodies(odd) == [json.dumps(e, separators=(",", ":")) for e in odd]


# --- the Redis record script ------------------------------------------------------------------

def _with_json(event):
    event["_json"] = json.dumps(event, separators=(",", ":"))
    return event


def test_stream_holds_each_new_event_once_in_order(redis_url):
    store = RedisStore(redis_url)
    try:
        store.r.flushall()
        store.create_site("shop", "h")
        first = [_with_json(_exposure(0)), _with_json(_conversion(1)), _with_json(_exposure(2, campaign="cta"))]
        assert store.record_events("shop", "visitor-1", first) == 3
        again = [first[1], _with_json(_conversion(3, value=2)), _with_json(_conversion(3, value=2))]
        assert store.record_events("shop", "visitor-1", again) == 1
        # bodies are cut from one argument by UTF-8 length: a caller's non-ASCII body survives
        wide = [dict(_exposure(4), _json='{"note":"é \u2028 ✓"}'), _with_json(_conversion(5))]
        assert store.record_events("shop", "visitor-1", wide) == 2
        entries = [fields for _, fields in store.r.xrange("vitrina:{shop}:events")]
        assert entries == [{"id": e["id"], "visitor": "visitor-1", "type": e["type"], "body": e["_json"]}
                           for e in first + again[1:2] + wide]
    finally:
        store.close()


def test_large_batches_fold_like_sqlite(redis_url, tmp_path):
    # 300 campaigns x 3 goals in one call: more than a chunk of fields in every HMGET/HSET.
    sqlite, redis_store = SQLiteStore(str(tmp_path / "s.sqlite3")), RedisStore(redis_url)
    try:
        site = "s-" + uuid.uuid4().hex[:12]
        rng = random.Random(5)
        batches = []
        for visitor in ("visitor-1", "visitor-2"):
            events = [_exposure(0, id=f"{visitor}-x-{k:04d}", campaign=f"c{k}", variation=rng.choice(["a", "b"]))
                      for k in range(300)]
            batches.append((visitor, events))
            conversions = [_conversion(0, id=f"{visitor}-c-{n:04d}", goal=f"g{n % 3}", value=rng.uniform(-5, 100))
                           for n in range(6)]
            batches.append((visitor, conversions + [_exposure(0, id=f"{visitor}-late", campaign="late")]
                            + [_conversion(0, id=f"{visitor}-c-last", goal="g0", value=0.1)]))
        for store in (sqlite, redis_store):
            store.create_site(site, "hash-" + site)
            for visitor, events in batches:
                assert store.record_events(site, visitor, [_with_json(dict(e)) for e in events]) == len(events)

        def key(c):
            return c["campaign"], c["variation"] or "", c["goal"] or ""
        assert sorted(redis_store.counters(site), key=key) == sorted(sqlite.counters(site), key=key)
        late = [c for c in redis_store.counters(site) if c["campaign"] == "late" and c["goal"]]
        assert [(c["goal"], c["conversions"], c["revenue"]) for c in late] == [("g0", 2, 0.2)]
    finally:
        redis_store.close()


def test_zero_value_conversions_fold_like_sqlite(redis_url, tmp_path):
    # Repeated conversions worth 0 (or -0.0) leave the Redis fields untouched; the counters
    # must still equal SQLite's to the bit (repr tells -0.0 from 0.0).
    sqlite, redis_store = SQLiteStore(str(tmp_path / "z.sqlite3")), RedisStore(redis_url)
    try:
        site = "z-" + uuid.uuid4().hex[:12]
        for store in (sqlite, redis_store):
            store.create_site(site, "hash-" + site)
        rng = random.Random(11)
        n = 0
        for _ in range(120):
            visitor = rng.choice(["visitor-1", "visitor-2", "visitor-3", "visitor-4", "visitor-5"])
            batch = []
            for _ in range(rng.randint(1, 6)):
                n += 1
                if rng.random() < 0.3:
                    batch.append(_exposure(0, id=f"z-{n:06d}", campaign=rng.choice(["c1", "c2", "c3"]),
                                           variation=rng.choice(["a", "b"])))
                else:
                    value = rng.choice([0, 0.0, -0.0, None, 0, 5, 2.5, -3, 1e-300])
                    event = _conversion(0, id=f"z-{n:06d}", goal=rng.choice(["g1", "g2"]), value=value)
                    if value is None:
                        del event["value"]
                    batch.append(event)
            results = {store.record_events(site, visitor, [_with_json(dict(e)) for e in batch])
                       for store in (sqlite, redis_store)}
            assert len(results) == 1
            assert rows(redis_store, site) == rows(sqlite, site)  # after every batch: sums hide steps
    finally:
        redis_store.close()


def rows(store, site):
    return repr(sorted(store.counters(site), key=lambda c: (c["campaign"], c["variation"], c["goal"] or "")))


@pytest.mark.parametrize("path, change", [
    ("/visitor_id", lambda body: body.update(visitor_id="v1.abcdefgh\n")),
    ("/events/0/id", lambda body: body["events"][0].update(id="event-0000\n")),
    ("/events/1/campaign", lambda body: body["events"][1].update(campaign="hero\n")),
    ("/events/0/goal", lambda body: body["events"][0].update(goal="purchase\n")),
])
def test_a_trailing_newline_is_refused(path, change):
    """`$` in a Python pattern also matches before a final newline; ids and names end at \\Z."""
    body = {"visitor_id": "v1.abcdefgh", "events": [_conversion(0), _exposure(1)]}
    assert ev.parse_batch(json.dumps(body))  # accepted as it is
    change(body)
    with pytest.raises(BatchInvalid) as refused:
        ev.parse_batch(json.dumps(body))
    assert [d["path"] for d in refused.value.details] == [path]
