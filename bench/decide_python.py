"""decide_python: server.decisions.decide.decide on the shared 200-campaign bundle, median per call.
Target < 2 ms.

Baseline (same run, same loop, same profiles): json.loads of the POST /decide request body
({visitor_id, attributes}) that such a decision answers, i.e. the least any server-side decision
must do per request; the ratio says how many request parses one decision costs."""
import json
import time

from . import workload
from .common import Row, log, median

CALLS = 2500
MAX_S = 12.0
WARMUP = 200


def run():
    from server.decisions.decide import decide
    data = workload.load()
    bundle, profiles = data["bundle"], data["profiles"]
    bodies = [json.dumps({"visitor_id": p["visitor_id"], "attributes": p["attributes"]}) for p in profiles]
    n = len(profiles)
    clock = time.perf_counter_ns
    for i in range(WARMUP):  # regex translation caches, branch warm-up
        p = profiles[i % n]
        decide(bundle, p["attributes"], p["visitor_id"])
    decide_ns, parse_ns = [], []
    deadline = time.monotonic() + MAX_S
    for i in range(CALLS):
        if time.monotonic() > deadline:
            break
        p, body = profiles[i % n], bodies[i % n]
        t0 = clock()
        json.loads(body)
        t1 = clock()
        decide(bundle, p["attributes"], p["visitor_id"])
        t2 = clock()
        parse_ns.append(t1 - t0)
        decide_ns.append(t2 - t1)
    d, b = median(decide_ns) / 1e3, median(parse_ns) / 1e3
    p90 = sorted(decide_ns)[int(len(decide_ns) * 0.9)] / 1e3
    log(f"{len(decide_ns)} calls over {n} visitor profiles; decide p90 {p90:,.0f} µs; "
        f"request body {sum(map(len, bodies)) // n:,} bytes on average")
    return [Row("decide_python", "decide, 200 campaigns (median/call)", d, "µs", b, "json.loads of the request",
                "< 2,000 µs", d < 2000)]
