"""redis_memory: Redis memory per million events recorded through the real store
(`RedisStore.record_events`, the collect script), on a real redis-server.

One recording of EVENTS events (~130,000 visitors: 1-6 page views each exposing two campaigns,
add_to_cart for 40%, a purchase for 10%; ids as the tag makes them), `used_memory` before and
after, split by key kind with MEMORY USAGE. Then, same run, same data:
- baseline, without expiry: every key's time to live removed (PERSIST), which is what the
  store kept for ever before retention: event ids and visitor state grow with every event;
- with expiry, once the windows have passed: the keys that have a time to live (dedupe buckets,
  visitor hashes) made to expire now (PEXPIRE 1: the end of the window, brought forward) and
  gone; what is left (the stream, trimmed at its entry count, and the counters) is what stays.
The event ids and visitor hashes must all carry a time to live (checked; a key without one
fails the benchmark). Target: what stays once the windows have passed, leaving out the stream
(bounded by its length, not by time), is at most 1% of what stays for ever without expiry."""
import os
import random
import time

from .common import Row, log, redis_server

SITE = "shop"
EVENTS = int(os.environ.get("VITRINA_BENCH_MEMORY_EVENTS", 1_000_000))
CAMPAIGNS = (("hero-newsletter", ("control", "promo")), ("cta-wording", ("control", "urgent")))
PER_MILLION = 1_000_000


def _batches(events, seed=20261130):
    """(visitor_id, events) with collect's event shape (`_json` as collect hands it over)."""
    from server.store.redis_store import _compact
    rng = random.Random(seed)
    ts = int(time.time() * 1000)
    total = 0
    while total < events:
        visitor = "v1." + rng.randbytes(12).hex()
        batch = []
        for _ in range(rng.randint(1, 6)):
            for campaign, variations in CAMPAIGNS:
                batch.append({"id": rng.randbytes(10).hex(), "type": "exposure", "version": 1, "ts": ts,
                              "campaign": campaign, "variation": rng.choice(variations), "holdout": False})
        if rng.random() < 0.4:
            batch += [{"id": rng.randbytes(10).hex(), "type": "conversion", "version": 1, "ts": ts,
                       "goal": "add_to_cart"} for _ in range(rng.randint(1, 2))]
        if rng.random() < 0.1:
            batch.append({"id": rng.randbytes(10).hex(), "type": "conversion", "version": 1, "ts": ts,
                          "goal": "purchase", "value": round(rng.uniform(15, 240), 2)})
        batch = batch[:events - total]
        for event in batch:
            event["_json"] = _compact(event)
        total += len(batch)
        yield visitor, batch


def _used(client):
    return client.info("memory")["used_memory"]


def _keys(client, pattern):
    return list(client.scan_iter(match=pattern, count=10_000))


def _each(client, keys, command):
    """Run command(pipe, key) for every key; returns the answers."""
    answers = []
    for start in range(0, len(keys), 10_000):
        pipe = client.pipeline(transaction=False)
        for key in keys[start:start + 10_000]:
            command(pipe, key)
        answers += pipe.execute()
    return answers


def _expire_now(client, keys):
    """The end of their window brought forward: the keys expire now; returns when they are gone."""
    _each(client, keys, lambda pipe, key: pipe.pexpire(key, 1))
    time.sleep(0.05)
    deadline = time.monotonic() + 120
    while any(_each(client, keys, lambda pipe, key: pipe.exists(key))):  # an access expires a key at once
        if time.monotonic() > deadline:
            raise RuntimeError("expired keys did not go within 2 minutes")
        time.sleep(0.2)


def measure(redis_url, events=EVENTS):
    """{figure: bytes of used_memory} for `events` events recorded into the redis-server at
    redis_url (flushed first). Each part is measured by what used_memory drops when it goes."""
    from server.store.redis_store import RedisStore
    store = RedisStore(redis_url, timeout_s=30)
    client = store.r
    client.flushall()
    store.create_site(SITE, "bench-key-hash")
    before = _used(client)
    t0 = time.monotonic()
    recorded = sum(store.record_events(SITE, visitor, batch) for visitor, batch in _batches(events))
    if recorded != events:
        raise RuntimeError(f"recorded {recorded} events, expected {events}")
    log(f"recorded {events:,} events in {time.monotonic() - t0:.0f} s")
    live = _used(client) - before
    seen, visitors = _keys(client, f"vitrina:{{{SITE}}}:seen:*"), _keys(client, f"vitrina:{{{SITE}}}:visitor:*")
    ttls = _each(client, seen + visitors, lambda pipe, key: pipe.pttl(key))
    lasting = [key for key, ttl in zip(seen + visitors, ttls) if ttl < 0]
    if not seen or not visitors or lasting:
        raise RuntimeError(f"keys without a time to live: {lasting[:5]} ({len(lasting)}), or none recorded")
    _each(client, seen + visitors, lambda pipe, key: pipe.persist(key))
    without_expiry = _used(client) - before
    _expire_now(client, seen)
    after_ids = _used(client) - before
    _expire_now(client, visitors)
    after_windows = _used(client) - before
    client.delete(f"vitrina:{{{SITE}}}:events")
    rest = _used(client) - before
    store.close()
    return {"events": events, "visitors": len(visitors), "live": live, "without_expiry": without_expiry,
            "ids": without_expiry - after_ids, "visitor_state": after_ids - after_windows,
            "after_windows": after_windows, "stream": after_windows - rest, "rest": rest}


def run():
    with redis_server() as (redis_url, _, _):
        f = measure(redis_url)
    scale = PER_MILLION / f["events"]
    mb = lambda n: n * scale / 1e6  # noqa: E731 -- MB per million events
    note = (f"{f['events']:,} events from {f['visitors']:,} visitors; the stream ({mb(f['stream']):.1f} MB per 1M "
            f"entries) is trimmed at 1,000,000 entries, and stays; the rest is counters")
    stays_for_ever = f["without_expiry"] - f["stream"]
    return [
        Row("redis_memory", "stays per 1M events once the windows passed (stream aside)", mb(f["rest"]), "MB",
            mb(stays_for_ever), "without expiry: kept for ever", "≤ 0.01× baseline",
            f["rest"] <= 0.01 * stays_for_ever, note),
        Row("redis_memory", "per 1M events within the windows (all, stream included)", mb(f["live"]), "MB",
            mb(f["without_expiry"]), "the same keys without a time to live",
            note="the difference is Redis's bookkeeping of the times to live"),
        Row("redis_memory", "event ids per 1M events (gone after the dedupe window)", mb(f["ids"]), "MB"),
        Row("redis_memory", "visitor state per 1M events (gone after VITRINA_VISITOR_DAYS idle)",
            mb(f["visitor_state"]), "MB"),
    ]
