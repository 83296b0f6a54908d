"""results_1m: GET /api/v1/sites/<site>/results for a campaign holding 1,000,000 recorded events
(exposures and conversions of ~100,000 visitors) on a site with 10 segments, on SQLite and on
Redis, through the Flask test client; median of several requests. Targets: < 50 ms for the
results, < 100 ms for `?breakdown=segment` (every slice's comparisons, winners and the summary).
Baseline: GET /healthz, same client, same run.

The events are loaded straight into each store with Store.record_events (one call per visitor
with all its events, as collect does for one batch), both stores loading at once in two
processes; visitors are bucketed as decide() buckets them, and each exposure carries its slices
as collect makes them (server/events/slices.py: 0-3 of the 10 segments, device, country,
acquisition, covariates), so the results look like real ones."""
import json
import multiprocessing
import random
import time

from .common import REPO, SECRET, Row, log, median, redis_server, temp_dir

SITE = "shop"
CAMPAIGN = "cta-wording"  # the demo config's A/B experiment: control vs urgent, holdout 5%
EVENTS = 1_000_000
SEGMENTS = [f"segment-{i}" for i in range(10)]  # added to the demo config's (10 in all with its own)
REQUESTS = 15
LOAD_TIMEOUT_S = 600


def _env(workdir, redis_url):
    env = {"VITRINA_DATABASE": str(workdir / "vitrina.sqlite3"), "VITRINA_SECRET_KEY": SECRET}
    if redis_url:
        env["VITRINA_REDIS_URL"] = redis_url
    return env


def _visitor_batches(bundle):
    """(visitor_id, events) for visitors of CAMPAIGN until EVENTS events in all: 1-12 exposures
    (page views), add_to_cart for ~40% of them, purchases with a value for ~15%."""
    from server.events.batch import bucketed_assignment
    from server.events.slices import covariates, segment_names, visitor_slices
    campaign = next(c for c in bundle["campaigns"] if c["key"] == CAMPAIGN)
    names = segment_names(bundle)
    rng = random.Random(1_000_000)
    ts = int(time.time() * 1000)
    total, i = 0, 0
    while total < EVENTS:
        visitor = f"v1.r1m{i:07d}"
        in_holdout, variation = bucketed_assignment(bundle, campaign, visitor)
        matched = sum(1 << rng.randrange(len(names)) for _ in range(rng.choice([0, 1, 1, 2, 3])))
        visits = rng.choice([0, 0, 0, 1, 2, 5])
        exposure = {"type": "exposure", "version": 1, "ts": ts, "campaign": CAMPAIGN,
                    "variation": None if in_holdout else variation, "holdout": in_holdout,
                    "segments": f"{matched:x}"[::-1], "acquisition": rng.choice(["direct", "email", "search", "paid"]),
                    "pre": [visits, visits * 4 + rng.randint(0, 3)]}
        # the event as collect stores it (its JSON), built once per visitor and reused by id
        exposure_json = json.dumps(exposure, separators=(",", ":"))[1:]
        facts = {"device": rng.choice(["desktop", "mobile", "tablet"]), "country": rng.choice(["FR", "DE", "GB", "US"])}
        extra = {"_slices": visitor_slices(exposure, campaign, names, facts), "_pre": covariates(exposure)}
        events = [dict(exposure, id=f"x{i:07d}-{k:02d}", _json=f'{{"id":"x{i:07d}-{k:02d}",{exposure_json}', **extra)
                  for k in range(rng.randint(1, 12))]
        lift = 1.15 if variation == "urgent" else 1.0
        if rng.random() < 0.4 * lift:
            events += [_conversion(f"a{i:07d}-{k}", ts, "add_to_cart", 0) for k in range(rng.randint(1, 3))]
        if rng.random() < 0.15 * lift:
            events += [_conversion(f"p{i:07d}-{k}", ts, "purchase", round(rng.uniform(15, 240), 2))
                       for k in range(rng.randint(1, 2))]
        events = events[:EVENTS - total]
        total += len(events)
        i += 1
        yield visitor, events


def _conversion(event_id, ts, goal, value):
    event = {"id": event_id, "type": "conversion", "version": 1, "ts": ts, "goal": goal, "value": value}
    event["_json"] = json.dumps(event, separators=(",", ":"))
    return event


def _load(env, queue):
    """In a child process: record EVENTS events into the store `env` names; report (events, s)."""
    try:
        from server import create_app
        from server.configs import publishing
        from server.store import get_store
        app = create_app(env=env)
        with app.app_context():
            bundle, _ = publishing.load_latest(SITE)
            store = get_store()
            t0 = time.monotonic()
            n = 0
            for visitor, events in _visitor_batches(bundle):
                n += store.record_events(SITE, visitor, events)
            queue.put((n, time.monotonic() - t0, None))
    except Exception as e:  # reported to the parent, which raises it
        queue.put((0, 0, repr(e)))


def _prepare(env):
    """Create the site and publish the demo config as version 1; returns the auth headers."""
    from server import create_app
    from server.store import get_store
    from server.web.auth import hash_key, new_api_key
    app = create_app(env=env)
    key = new_api_key()
    with app.app_context():
        get_store().create_site(SITE, hash_key(key))
    client = app.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    config = json.loads((REPO / "server" / "demo" / "config.json").read_text())
    config["segments"].update({name: {"user.tier": name} for name in SEGMENTS[len(config["segments"]):]})
    assert client.put(f"/api/v1/sites/{SITE}/config", json=config, headers=auth).status_code == 200
    assert client.post(f"/api/v1/sites/{SITE}/publish", headers=auth).status_code == 201
    app.extensions["vitrina_store"].close()
    return auth


def _time_results(env, auth):
    from server import create_app
    app = create_app(env=env)
    client = app.test_client()

    def timed(path, headers=None):
        times = []
        for _ in range(REQUESTS + 2):
            t0 = time.perf_counter()
            response = client.get(path, headers=headers)
            times.append(time.perf_counter() - t0)
            assert response.status_code == 200, response.get_data(as_text=True)[:300]
        return median(times[2:]) * 1000, response.get_json()  # the first two warm the caches

    results_ms, data = timed(f"/api/v1/sites/{SITE}/results", auth)
    breakdown_ms, sliced = timed(f"/api/v1/sites/{SITE}/results?breakdown=segment", auth)
    health_ms, _ = timed("/healthz")
    app.extensions["vitrina_store"].close()
    campaign = next(c for c in data["campaigns"] if c["key"] == CAMPAIGN)
    slices = next(c for c in sliced["campaigns"] if c["key"] == CAMPAIGN)["breakdown"]["slices"]
    return results_ms, breakdown_ms, health_ms, campaign, slices


def run():
    rows = []
    ctx = multiprocessing.get_context("spawn")
    with temp_dir("vitrina-bench-r1m-sqlite-") as sqlite_dir, temp_dir("vitrina-bench-r1m-redis-") as redis_dir, \
            redis_server() as (redis_url, _, _):
        backends = {"SQLite": _env(sqlite_dir, None), "Redis": _env(redis_dir, redis_url)}
        auths = {name: _prepare(env) for name, env in backends.items()}
        queues = {name: ctx.Queue() for name in backends}
        procs = {name: ctx.Process(target=_load, args=(env, queues[name])) for name, env in backends.items()}
        for proc in procs.values():
            proc.start()
        loaded = {}
        for name, proc in procs.items():
            n, seconds, error = queues[name].get(timeout=LOAD_TIMEOUT_S)
            proc.join(30)
            if error:
                raise RuntimeError(f"loading {name} failed: {error}")
            if n != EVENTS:
                raise RuntimeError(f"{name}: recorded {n} events, expected {EVENTS}")
            loaded[name] = seconds
        for name, env in backends.items():
            results_ms, breakdown_ms, health_ms, campaign, slices = _time_results(env, auths[name])
            visitors = sum(v["visitors"] for v in campaign["variations"]) + campaign["holdout"]["visitors"]
            comparisons = sum(len(s["comparisons"]) for s in slices)
            log(f"{name}: {EVENTS:,} events loaded in {loaded[name]:.0f} s ({EVENTS / loaded[name]:,.0f} events/s "
                f"through record_events, both stores at once); results: {visitors:,} visitors, "
                f"SRM p={campaign['srm']['p_value']}; by segment: {len(slices)} slices, {comparisons} comparisons")
            rows.append(Row("results_1m", f"GET results, 1M events, {name}", results_ms, "ms", health_ms,
                            "GET /healthz", "< 50 ms", results_ms < 50))
            rows.append(Row("results_1m", f"GET results?breakdown=segment, 1M events, 10 segments, {name}",
                            breakdown_ms, "ms", health_ms, "GET /healthz", "< 100 ms", breakdown_ms < 100))
    return rows
