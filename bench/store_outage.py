"""store_outage: latency of tag.js and collect while the store does not answer, against the same
with the store up, in the same run (docs/DESIGN.md "Serving through a store outage").

`vitrina serve` (2 x cores workers) on a real redis-server; two wrk processes at once, one on
tag.js (gzip) and one POSTing correctly bucketed collect batches (bench/collect.lua, the shared
200-campaign workload): SECONDS with Redis up, then with Redis stopped (SIGSTOP: the worst
outage, as every call waits its timeout where a dead server refuses at once), FINDING_SECONDS
first (each worker finds the store away: what is in flight then waits the store's timeout once)
and SECONDS after, then resumed (SIGCONT). While it is stopped, tag.js comes from memory and
collect spools to disk; every answer must stay 2xx. Targets: p99 while stopped within 2x its
figure with Redis up, and no request near a second (the e2e test's hang bound), the first
seconds included."""
import os
import secrets
import signal
import threading
from pathlib import Path

from . import workload
from .collect import _templates
from .common import (
    Row,
    create_site,
    gunicorn_server,
    log,
    publish,
    redis_server,
    server_env,
    temp_dir,
    wrk,
)

HERE = Path(__file__).resolve().parent
SITE = "bench"
SECONDS = 4
FINDING_SECONDS = 2
CONNECTIONS = 8
HANG_MS = 1000


def _both(url, templates, seconds):
    """wrk on tag.js and on collect at the same time; returns (tag summary, collect summary)."""
    found = {}

    def tag():
        found["tag"] = wrk(f"{url}/v1/sites/{SITE}/tag.js", seconds, CONNECTIONS,
                           headers=["Accept-Encoding: gzip, deflate, br"])

    def collect():
        found["collect"] = wrk(f"{url}/v1/sites/{SITE}/collect", seconds, CONNECTIONS, script=HERE / "collect.lua",
                               script_args=[str(templates), "o" + secrets.token_hex(3)])
    threads = [threading.Thread(target=tag), threading.Thread(target=collect)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, summary in found.items():
        if summary["status"] or summary["errors"]:
            raise RuntimeError(f"{name}: {summary['status']} non-2xx answers, {summary['errors']} socket errors")
    return found["tag"], found["collect"]


def _log(label, tag, collect):
    log(f"{label}: tag.js {tag['rps']:,.0f} req/s p50 {tag['p50_us'] / 1000:.2f} ms p99 {tag['p99_us'] / 1000:.2f} ms "
        f"max {tag['max_us'] / 1000:.0f} ms; collect {collect['rps']:,.0f} req/s p50 {collect['p50_us'] / 1000:.2f} ms "
        f"p99 {collect['p99_us'] / 1000:.2f} ms max {collect['max_us'] / 1000:.0f} ms")


def run():
    data = workload.load()
    workers = 2 * (os.cpu_count() or 1)
    with temp_dir("vitrina-bench-outage-") as work, redis_server() as (redis_url, _, redis_process):
        env = server_env(work, redis_url)
        key = create_site(env, SITE)
        templates = work / "batches.jsonl"
        _templates(data["bundle"], templates)
        with gunicorn_server(env, workers=workers) as url:
            publish(url, SITE, key, data["config"])
            _both(url, templates, 1)  # warm: every worker has the version in memory
            up = _both(url, templates, SECONDS)
            _log("Redis up", *up)
            redis_process.send_signal(signal.SIGSTOP)
            try:
                # the first seconds: each worker finds the store away, and what is in flight then
                # waits the store's timeout once; then the outage as it lasts
                finding = _both(url, templates, FINDING_SECONDS)
                stopped = _both(url, templates, SECONDS)
            finally:
                redis_process.send_signal(signal.SIGCONT)
            _log(f"Redis stopped (SIGSTOP), its first {FINDING_SECONDS} s", *finding)
            _log("Redis stopped (SIGSTOP), then", *stopped)
    rows = []
    for index, name in enumerate(("tag.js", "collect")):
        base, stop, found = up[index], stopped[index], finding[index]
        rows += [
            Row("store_outage", f"{name} p50, Redis stopped", stop["p50_us"] / 1000, "ms", base["p50_us"] / 1000,
                "Redis up"),
            Row("store_outage", f"{name} p99, Redis stopped", stop["p99_us"] / 1000, "ms", base["p99_us"] / 1000,
                "Redis up", "<= 2× up", stop["p99_us"] <= 2 * base["p99_us"]),
            Row("store_outage", f"{name} max, first {FINDING_SECONDS} s stopped", found["max_us"] / 1000, "ms",
                base["max_us"] / 1000, "Redis up", f"< {HANG_MS} ms", found["max_us"] / 1000 < HANG_MS),
            Row("store_outage", f"{name} max, Redis stopped", stop["max_us"] / 1000, "ms", base["max_us"] / 1000,
                "Redis up", f"< {HANG_MS} ms", stop["max_us"] / 1000 < HANG_MS),
        ]
    return rows
