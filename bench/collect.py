"""collect: events/s into POST /v1/sites/<site>/collect on the Redis backend, under gunicorn
started with `vitrina serve` (tests.servers.gunicorn_server), rate limits off.

Load: wrk with bench/collect.lua POSTing batches of 20 events (18 exposures + 2 conversions)
pre-generated from the shared 200-campaign workload, with a browser's user agent: each visitor's
exposures carry the variation (or holdout) that bucketing gives it, so collect accepts and counts
them, and what the SDK sends for results' slices (segments matched, acquisition, visits and page
views before); event ids are made unique per request by the Lua script. Ceiling (same run, same redis-server):
`redis-benchmark -P 16 XADD`, the rate at which this Redis appends bare stream entries; every
collected event costs at least one XADD plus its counters. Target: 20,000 events/s."""
import json
import os
import random
import secrets
import subprocess
from pathlib import Path

from . import workload
from .common import (
    Row,
    create_site,
    gunicorn_server,
    log,
    now_ms,
    publish,
    redis_server,
    server_env,
    temp_dir,
    wrk,
)

HERE = Path(__file__).resolve().parent
SITE = "bench"
EVENTS_PER_BATCH = 20
EXPOSURES = 18
VISITORS = 3000
SECONDS = 8
WARMUP_SECONDS = 2
CONNECTIONS = 16
XADD_REQUESTS = 300_000


def _templates(bundle, path):
    """One batch per visitor (event ids left as @ID@-NN for the Lua script to fill)."""
    from server.events.batch import bucketed_assignment
    rng = random.Random(7)
    ts = now_ms()
    campaigns = bundle["campaigns"]
    segments = len(bundle.get("segments") or {})
    with open(path, "w") as f:
        for i in range(VISITORS):
            visitor = f"v1.bench{i:06d}{rng.getrandbits(32):08x}"
            matched = sum(1 << rng.randrange(segments) for _ in range(rng.randint(0, 3))) if segments else 0
            visits = rng.choice([0, 0, 1, 3])
            claims = {"segments": f"{matched:x}"[::-1], "acquisition": rng.choice(["direct", "email", "search"]),
                      "pre": [visits, visits * 4 + rng.randint(0, 3)]}
            events = []
            for c in rng.sample(campaigns, len(campaigns)):
                in_holdout, variation = bucketed_assignment(bundle, c, visitor)
                if variation is None:  # outside the campaign's traffic: no exposure
                    continue
                events.append({"id": f"@ID@-{len(events):02d}", "type": "exposure", "version": 1, "ts": ts,
                               "campaign": c["key"], "variation": None if in_holdout else variation,
                               "holdout": in_holdout, **claims})
                if len(events) == EXPOSURES:
                    break
            events.append({"id": f"@ID@-{len(events):02d}", "type": "conversion", "version": 1, "ts": ts,
                           "goal": "add_to_cart", "value": 0})
            events.append({"id": f"@ID@-{len(events):02d}", "type": "conversion", "version": 1, "ts": ts,
                           "goal": "purchase", "value": round(rng.uniform(10, 200), 2)})
            assert len(events) == EVENTS_PER_BATCH
            f.write(json.dumps({"visitor_id": visitor, "events": events}, separators=(",", ":")) + "\n")


def xadd_ceiling(port):
    """Bare XADD throughput of this redis-server (pipelined 16 deep), in entries/s."""
    out = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-n", str(XADD_REQUESTS),
                          "-P", "16", "-c", "50", "--csv", "XADD", "bench:ceiling", "*", "f", "v"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    row = [l for l in out.splitlines() if l.startswith('"XADD')][-1]
    return float(row.split(",")[1].strip('"'))


def _redis(redis_url):
    import redis
    return redis.Redis.from_url(redis_url, decode_responses=True)


def _seen(redis_url):
    """Event ids recorded so far: the members of the site's dedupe buckets."""
    client = _redis(redis_url)
    return sum(client.scard(key) for key in client.scan_iter(match=f"vitrina:{{{SITE}}}:seen:*"))


def _measure(env, workers, key, config, templates, redis_url, first):
    """One gunicorn with `workers` workers: warm up, then SECONDS of wrk; returns the
    wrk summary and the events Redis recorded meanwhile."""
    with gunicorn_server(env, workers=workers) as url:
        if first:
            publish(url, SITE, key, config)
        target = f"{url}/v1/sites/{SITE}/collect"
        wrk(target, WARMUP_SECONDS, CONNECTIONS, script=HERE / "collect.lua",
            script_args=[str(templates), "w" + secrets.token_hex(3)])
        before = _seen(redis_url)
        _redis(redis_url).config_resetstat()
        s = wrk(target, SECONDS, CONNECTIONS, script=HERE / "collect.lua",
                script_args=[str(templates), "m" + secrets.token_hex(3)])
        recorded = _seen(redis_url) - before
        script = _redis(redis_url).info("commandstats").get("cmdstat_evalsha", {})
    ok_requests = s["requests"] - s["status"]
    if s["status"] or s["errors"] or ok_requests <= 0:
        raise RuntimeError(f"collect refused or failed requests: {s['status']} non-2xx, {s['errors']} socket "
                           f"errors out of {s['requests']}")
    if recorded < 0.99 * ok_requests * EVENTS_PER_BATCH:
        raise RuntimeError(f"Redis recorded {recorded} events for {ok_requests} accepted batches")
    events_s = recorded / (s["duration_us"] / 1e6)
    log(f"{workers} workers, wrk -c {CONNECTIONS}: {s['rps']:,.0f} batches/s = {events_s:,.0f} events/s, "
        f"p50 {s['p50_us'] / 1000:.1f} ms, p99 {s['p99_us'] / 1000:.1f} ms; {recorded:,} events counted in Redis "
        f"in {s['duration_us'] / 1e6:.1f} s; the record script took {script.get('usec_per_call', 0):,.0f} µs "
        f"per batch inside Redis")
    return events_s


def run():
    data = workload.load()
    cores = os.cpu_count() or 1
    # 2 x cores is gunicorn's advice; workers also wait on Redis, so more may do better.
    candidates = [int(w) for w in os.environ.get("BENCH_COLLECT_WORKERS", f"{2 * cores},{4 * cores}").split(",")]
    with temp_dir("vitrina-bench-collect-") as work, redis_server() as (redis_url, redis_port, _):
        ceiling = xadd_ceiling(redis_port)
        log(f"redis-benchmark XADD -P 16: {ceiling:,.0f} entries/s")
        env = server_env(work, redis_url)
        key = create_site(env, SITE)
        templates = work / "batches.jsonl"
        # The workload's bundle is what the server publishes (same site, seeds, weights, version 1).
        _templates(data["bundle"], templates)
        figures = {}
        for i, workers in enumerate(candidates):
            figures[workers] = _measure(env, workers, key, data["config"], templates, redis_url, first=i == 0)
    best = max(figures, key=figures.get)
    events_s = figures[best]
    return [Row("collect", f"collect, Redis, batches of 20 ({best} workers)", events_s, "events/s", ceiling,
                "redis-benchmark XADD", ">= 20,000 events/s", events_s >= 20_000)]
